"""Who is timed against cnnext, in report order, and the call of each that a
row times.

A contender is a module with ``conv_forward``, ``conv_backward``,
``pool_forward`` and ``pool_backward`` that take cnnext's arguments and
return its results as NHWC numpy arrays (cnnext itself is one). If some work
must stay outside the timing, the module defines ``prepare_args(op, args)``,
which returns the arguments to time the call with (torch's max-pool indices,
ONNX Runtime's session and NCHW input, JAX's device arrays), and then
``to_cnnext(op, result)`` if the timed call's result is not yet cnnext's
(NCHW, jax arrays): it is applied, untimed, before the check. A contender
that runs only some rows defines ``supports(op, dtype, args)`` (``args``
cnnext's arguments of the row, whose geometry it may not run); one that takes a
thread count other than through threadpoolctl defines ``set_threads(n)``;
``versions()`` gives the versions the report header prints.
Adding a contender is writing such a module and naming it in ``MODULES``.
"""
import functools
import importlib
import os
import sys

# name -> module, in report order. cnnext first: the others are checked
# against its results.
MODULES = {
    "cnnext": "cnnext",
    "torch": "cnnext.bench.torch_cpu",        # needs PyTorch
    "onnx": "cnnext.bench.onnx_runtime",      # needs onnx and onnxruntime
    "jax": "cnnext.bench.jax_xla",            # needs jax
    "numpy": "cnnext.bench.numpy_vectorised",
    "seed": "cnnext.bench.seed_loops",        # timed on a subsample (``limit``)
}
CONTENDERS = tuple(MODULES)
FUNCTION_OF_OP = {"conv_fwd": "conv_forward", "conv_bwd": "conv_backward",
                  "max_fwd": "pool_forward", "max_bwd": "pool_backward",
                  "avg_fwd": "pool_forward", "avg_bwd": "pool_backward"}


def xla_flags(threads):
    """The XLA_FLAGS that hold XLA's CPU backend to ``threads`` threads."""
    return (f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
            f"intra_op_parallelism_threads={threads}")


def _hold_xla_threads(threads):
    """Set XLA_FLAGS so that jax, imported next, runs ``threads`` threads.

    XLA reads the flags once, when jax first creates its CPU client; if jax
    is imported already, nothing changes (the report prints XLA_FLAGS).
    """
    if "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" in flags:  # the user's choice stays
        return
    os.environ["XLA_FLAGS"] = (flags + " " + xla_flags(threads)).strip()


def load(leave_out=(), threads=None):
    """``{name: module}`` of the contenders that can run here, in report
    order: those not in ``leave_out`` whose module imports (torch's needs
    PyTorch, onnx's onnx and onnxruntime, jax's jax). With ``threads``,
    those that take a thread count of their own get it (XLA_FLAGS before jax
    is imported, ``set_threads`` after).

    Examples
    --------
    >>> list(load(leave_out=("torch", "onnx", "jax")))
    ['cnnext', 'numpy', 'seed']
    """
    found = {}
    for name, module in MODULES.items():
        if name in leave_out:
            continue
        if name == "jax" and threads is not None:
            _hold_xla_threads(threads)
        try:
            found[name] = importlib.import_module(module)
        except ImportError:  # an optional library that is not installed
            continue
        if threads is not None and hasattr(found[name], "set_threads"):
            found[name].set_threads(threads)
    return found


def supports(module, op, dtype, args=None):
    """Whether ``module`` runs rows of ``op`` in ``dtype`` on cnnext's
    ``args`` (ONNX Runtime: float32 forwards only; the seed loops and numpy:
    the assignment's geometry only). ``args`` None asks about the op and
    dtype alone."""
    check = getattr(module, "supports", None)
    return check is None or check(op, dtype, args)


def call_of(module, op, args):
    """The call of ``module``'s function for ``op`` on ``args`` that a row
    times; keywords (the seed loops' ``limit``) are passed through."""
    prepare = getattr(module, "prepare_args", None)  # untimed
    if prepare is not None:
        args = prepare(op, args)
    # partial, not a lambda: measured a little cheaper per call, and the
    # seed-sized rows time calls of a few microseconds.
    return functools.partial(getattr(module, FUNCTION_OF_OP[op]), *args)
