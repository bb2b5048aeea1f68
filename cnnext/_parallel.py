"""How many threads cnnext's own kernels use, and splitting a batch over them.

The kernels that do not call BLAS (pooling, direct convolution) run on
Python threads: each thread runs a compiled kernel on its own slice of the
batch with the GIL released. Python threads were chosen over an OpenMP
runtime because they do not spin while waiting (so they never fight
OpenBLAS's own threads for the two cores of a small machine), need no
runtime library in the wheel, and survive ``fork``.

Kernels that do call BLAS leave the threading to BLAS (limit it with
threadpoolctl), so that one thread pool owns the cores at a time.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Below this many output elements a call runs on the calling thread: handing
# work to a pool costs tens of microseconds.
MIN_ELEMENTS_PER_THREAD = 1 << 16


def _default_num_threads():
    """OMP_NUM_THREADS if set (the usual way to limit numeric libraries), else
    the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_num_threads = _default_num_threads()
_executor = None
_executor_lock = threading.Lock()


def get_num_threads():
    """The number of threads cnnext's own kernels use."""
    return _num_threads


def set_num_threads(num_threads):
    """Set the number of threads cnnext's own kernels use (>= 1).

    The default is ``OMP_NUM_THREADS`` when set, else the number of CPUs
    available. BLAS (used by large convolutions) keeps its own setting;
    limit it with threadpoolctl.
    """
    global _num_threads, _executor
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise TypeError(f"num_threads must be an integer; got "
                        f"{type(num_threads).__name__} {num_threads!r}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1; got {num_threads}")
    with _executor_lock:
        _num_threads = num_threads
        if _executor is not None:
            _executor.shutdown(wait=False)
            _executor = None


def _forget_executor_after_fork():
    # A forked child has none of the parent's threads.
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_executor_after_fork)


def _get_executor():
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=max(_num_threads - 1, 1),
                                           thread_name_prefix="cnnext")
        return _executor


def for_batch_slices(kernel, m, n_elements):
    """Call ``kernel(start, stop)`` over contiguous slices covering range(m).

    One slice per thread, at most ``get_num_threads()``, fewer for small work;
    the calling thread runs the first slice itself. ``kernel`` must release
    the GIL for the slices to run in parallel.
    """
    n_parts = min(_num_threads, m, max(1, n_elements // MIN_ELEMENTS_PER_THREAD))
    if n_parts <= 1:
        kernel(0, m)
        return
    bounds = [m * k // n_parts for k in range(n_parts + 1)]
    executor = _get_executor()
    futures = [executor.submit(kernel, bounds[k], bounds[k + 1])
               for k in range(1, n_parts)]
    kernel(bounds[0], bounds[1])
    for future in futures:
        future.result()
