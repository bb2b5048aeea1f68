"""How many threads cnnext's own kernels use, and splitting a batch over them.

The kernels that do not call BLAS (pooling, direct convolution) run on
Python threads: each thread runs a compiled kernel on its own slice of the
batch with the GIL released. Python threads were chosen over an OpenMP
runtime because they do not spin while waiting (so they never fight
OpenBLAS's own threads for the two cores of a small machine), need no
runtime library in the wheel, and survive ``fork``.

Kernels that call BLAS (im2row convolution) split their work the same way
when threadpoolctl is installed: BLAS is set to one thread for the duration
of the call and every cnnext thread runs its own single-threaded GEMMs, so
that one thread pool owns the cores at a time and the im2row copies run in
parallel too. Without threadpoolctl they run on one thread and leave the
parallelism to BLAS.
"""
from contextlib import contextmanager
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Below this much work per thread (elements touched) a call runs on the
# calling thread: handing work to a pool costs tens of microseconds.
MIN_WORK_PER_THREAD = 1 << 18


def available_cpus():
    """The CPUs this process may run on (its affinity mask where the OS has
    one, as on Linux; else every CPU of the machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def _default_num_threads():
    """OMP_NUM_THREADS if set (the usual way to limit numeric libraries), else
    the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return available_cpus()


_num_threads = _default_num_threads()
_executor = None
_executor_lock = threading.Lock()


def get_num_threads():
    """The number of threads cnnext's own kernels use.

    Examples
    --------
    >>> import cnnext
    >>> cnnext.get_num_threads() >= 1
    True
    """
    return _num_threads


def set_num_threads(num_threads):
    """Set the number of threads cnnext's own kernels use (>= 1).

    The default is ``OMP_NUM_THREADS`` when set, else the number of CPUs
    available. BLAS (used by large convolutions) keeps its own setting;
    limit it with threadpoolctl. :func:`cnnext.threads` sets it for a block.

    Examples
    --------
    >>> import cnnext
    >>> before = cnnext.get_num_threads()
    >>> cnnext.set_num_threads(1)
    >>> cnnext.get_num_threads()
    1
    >>> cnnext.set_num_threads(before)
    """
    global _num_threads, _executor
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise TypeError(f"num_threads must be an integer; got "
                        f"{type(num_threads).__name__} {num_threads!r}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1; got {num_threads}")
    with _executor_lock:
        _num_threads = num_threads
        # Dropped, not shut down: a call on another thread may hold it and
        # still submit to it (shut down, that raised RuntimeError). Its idle
        # workers exit once the last call using it lets go of it.
        _executor = None


def _forget_executor_after_fork():
    # A forked child has none of the parent's threads, and no call in flight.
    global _executor, _executor_lock, _blas_lock, _blas_users
    _executor = None
    _executor_lock = threading.Lock()
    _blas_lock = threading.Lock()
    _blas_users = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_executor_after_fork)


def _get_executor():
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=max(_num_threads - 1, 1),
                                           thread_name_prefix="cnnext")
        return _executor


def for_slices(kernel, n, work, min_work=MIN_WORK_PER_THREAD, calls_blas=False):
    """Call ``kernel(start, stop)`` over contiguous slices covering range(n).

    One slice per thread, at most ``get_num_threads()``, and none smaller
    than ``min_work`` of the ``work`` units; the calling thread runs the
    first slice itself. ``kernel`` must release the GIL for the slices to run
    in parallel. With ``calls_blas``, BLAS is single-threaded meanwhile (see
    the module docstring) and the user's BLAS thread limit caps the count.
    """
    if _one_slice(n, work, min_work):
        kernel(0, n)
        return
    run_parts(kernel, n, min(_num_threads, n, work // max(min_work, 1)), calls_blas)


def run_parts(kernel, n, n_parts, calls_blas=False):
    """Call ``kernel(start, stop)`` over ``n_parts`` contiguous slices covering
    range(n), one per thread, the calling thread running the first: a cut
    decided beforehand (the convolution plans of ``_plan.py``). With
    ``calls_blas`` as in :func:`for_slices`.
    """
    if not calls_blas:
        if n_parts <= 1 or n < 2:
            kernel(0, n)
        else:
            _run_slices(kernel, n, n_parts)
        return
    # BLAS on one thread even when the plan runs one part: the plan decides
    # the threads, and a GEMM's bits must not depend on how many threads
    # BLAS would give it (numpy 1.26's OpenBLAS on an Intel Xeon, model 207,
    # rounded sgemm differently on 2 threads than on 1).
    with _blas_single_threaded() as blas_cap:
        if blas_cap is None or n_parts <= 1 or n < 2:
            kernel(0, n)  # without control, BLAS keeps its own threads
        else:
            _run_slices(kernel, n, min(n_parts, blas_cap))


def for_batch(kernel, batch, args, work, min_work=MIN_WORK_PER_THREAD):
    """Call ``kernel(*batch, *args)``, the arrays of ``batch`` cut along their
    first axis into slices as :func:`for_slices` cuts range(n)."""
    n = batch[0].shape[0]
    if _one_slice(n, work, min_work):
        kernel(*batch, *args)  # a small call: no closure, no slicing
        return
    for_slices(lambda i0, i1: kernel(*[x[i0:i1] for x in batch], *args),
               n, work, min_work)


def _one_slice(n, work, min_work):
    """Whether range(n) runs as one slice: one thread, one item, or less than
    two slices' worth of work."""
    return _num_threads < 2 or n < 2 or work < 2 * max(min_work, 1)


def _run_slices(kernel, n, n_parts):
    if n_parts <= 1:
        kernel(0, n)
        return
    bounds = [n * k // n_parts for k in range(n_parts + 1)]
    executor = _get_executor()
    futures = [executor.submit(kernel, bounds[k], bounds[k + 1])
               for k in range(1, n_parts)]
    try:
        kernel(bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()


_blas_libs = None
_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved = ()


def _blas_controllers():
    """threadpoolctl's controllers of the loaded BLAS libraries, or []."""
    global _blas_libs
    if _blas_libs is None:
        try:
            import threadpoolctl
            _blas_libs = threadpoolctl.ThreadpoolController().select(
                user_api="blas").lib_controllers
        except Exception:  # not installed, or an unknown BLAS
            _blas_libs = []
    return _blas_libs


@contextmanager
def _blas_single_threaded():
    """Hold BLAS at one thread; yield the user's BLAS thread count (None if
    BLAS threads cannot be controlled here).

    Calls from several Python threads nest: the first saves the BLAS setting,
    the last one out restores it.
    """
    global _blas_users, _blas_saved
    libs = _blas_controllers()
    if not libs:
        yield None
        return
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = tuple(lib.get_num_threads() for lib in libs)
            for lib in libs:
                lib.set_num_threads(1)
        _blas_users += 1
        user_limit = max(_blas_saved)
    try:
        yield user_limit
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, n_threads in zip(libs, _blas_saved):
                    lib.set_num_threads(n_threads)
