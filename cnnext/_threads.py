"""The thread policy of cnnext, in one place: how many threads there are,
how to limit every thread pool for a while, and how a command re-starts
Python when a pool can only be sized from the environment.

Three kinds of thread pool run cnnext's work:

* cnnext's own kernel threads (:mod:`cnnext._parallel`), sized by
  :func:`cnnext.set_num_threads` or the :func:`threads` context manager;
* BLAS (the GEMMs of wide convolutions) and any OpenMP runtime, which
  threadpoolctl can resize while the process runs;
* without threadpoolctl, BLAS reads ``OPENBLAS_NUM_THREADS`` and the like
  only when numpy loads, so a command that must set them (``cnnext train
  --threads``) or unset them (``cnnext-bench`` and ``OPENBLAS_CORETYPE``)
  runs Python again with the environment it needs: :func:`reexec`.
"""
from contextlib import contextmanager
import os
import sys

from ._parallel import available_cpus, get_num_threads, set_num_threads  # noqa: F401

# The variables numeric libraries read their thread count from at load time.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@contextmanager
def threads(num_threads):
    """Run the block with cnnext's kernels on ``num_threads`` threads.

    The setting of :func:`cnnext.set_num_threads` is restored on leaving,
    also on an exception. It is process-wide, like ``set_num_threads``:
    other Python threads see it too while the block runs, and two threads
    whose blocks overlap restore each other's settings (set it from one
    thread, e.g. the main one). Calls running on other threads are safe
    while it changes. BLAS keeps its own limit (set it with threadpoolctl's
    ``threadpool_limits``).

    Parameters
    ----------
    num_threads : int
        >= 1.

    Examples
    --------
    >>> import cnnext
    >>> before = cnnext.get_num_threads()
    >>> with cnnext.threads(1):
    ...     cnnext.get_num_threads()
    1
    >>> cnnext.get_num_threads() == before
    True
    """
    before = get_num_threads()
    set_num_threads(num_threads)  # validates num_threads
    try:
        yield
    finally:
        set_num_threads(before)


def threadpoolctl_or_none():
    """The threadpoolctl module, or None where it is not installed."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


class Limits:
    """Thread limits set for a while; :meth:`restore` undoes them in reverse
    order, so that in-process callers get their thread pools back."""

    def __init__(self):
        self._undo = []

    def add(self, undo):
        self._undo.append(undo)

    def __bool__(self):
        return bool(self._undo)

    def restore(self):
        while self._undo:
            self._undo.pop()()


def limit_all_threads(num_threads, blas_only=False):
    """Limit cnnext's kernel threads, BLAS and OpenMP to ``num_threads``.

    BLAS and OpenMP are limited through threadpoolctl, when it is installed;
    with ``blas_only`` only BLAS is, and cnnext's threads keep their count.

    Returns
    -------
    limits : Limits
        Call ``limits.restore()`` to undo. ``limits.pools_limited`` says
        whether threadpoolctl limited the loaded pools (False without it: then
        only :func:`reexec` with :data:`THREAD_VARS` set can size them).
    """
    limits = Limits()
    tpc = threadpoolctl_or_none()
    limits.pools_limited = tpc is not None
    if tpc is not None:
        limiter = tpc.threadpool_limits(limits=num_threads,
                                        user_api="blas" if blas_only else None)
        limits.add(limiter.restore_original_limits)
    if not blas_only:
        before = get_num_threads()
        set_num_threads(num_threads)
        limits.add(lambda: set_num_threads(before))
    return limits


def thread_env_is(num_threads):
    """Whether every variable of :data:`THREAD_VARS` already says ``num_threads``."""
    return all(os.environ.get(v) == str(num_threads) for v in THREAD_VARS)


def reexec(module, argv, set_env=None, unset_env=(), mark=None):
    """Replace this process by ``python -m module *argv`` with the environment
    changed: ``set_env`` (a dict) set, the names in ``unset_env`` removed.

    For settings that libraries read only when they load. ``mark``, if given,
    is the name of a variable set to a description of the change (e.g. what
    was unset), so the new process can report it. Does not return.
    """
    env = {k: v for k, v in os.environ.items() if k not in unset_env}
    env.update(set_env or {})
    if mark is not None:
        removed = [f"{k}={os.environ[k]}" for k in unset_env if k in os.environ]
        added = [f"{k}={v}" for k, v in (set_env or {}).items()]
        env[mark] = " ".join(removed + added)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)
