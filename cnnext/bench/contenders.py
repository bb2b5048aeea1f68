"""Who is timed against cnnext, in report order, and the call of each that a
row times.

A contender is a module with ``conv_forward``, ``conv_backward``,
``pool_forward`` and ``pool_backward`` that take cnnext's arguments and
return its results as NHWC numpy arrays (cnnext itself is one). If some work
must stay outside the timing, the module defines ``prepare_args(op, args)``,
which returns the arguments to time the call with (torch's max-pool indices).
Adding a contender is writing such a module and naming it in ``MODULES``.
"""
import functools
import importlib

# name -> module, in report order. cnnext first: the others are checked
# against its results.
MODULES = {
    "cnnext": "cnnext",
    "torch": "cnnext.bench.torch_cpu",        # needs PyTorch
    "numpy": "cnnext.bench.numpy_vectorised",
    "seed": "cnnext.bench.seed_loops",        # timed on a subsample (``limit``)
}
CONTENDERS = tuple(MODULES)
FUNCTION_OF_OP = {"conv_fwd": "conv_forward", "conv_bwd": "conv_backward",
                  "max_fwd": "pool_forward", "max_bwd": "pool_backward",
                  "avg_fwd": "pool_forward", "avg_bwd": "pool_backward"}


def load(leave_out=()):
    """``{name: module}`` of the contenders that can run here, in report
    order: those not in ``leave_out`` whose module imports (torch's needs
    PyTorch).

    Examples
    --------
    >>> list(load(leave_out=("torch",)))
    ['cnnext', 'numpy', 'seed']
    """
    found = {}
    for name, module in MODULES.items():
        if name in leave_out:
            continue
        try:
            found[name] = importlib.import_module(module)
        except ImportError:  # an optional library that is not installed
            continue
    return found


def call_of(module, op, args):
    """The call of ``module``'s function for ``op`` on ``args`` that a row
    times; keywords (the seed loops' ``limit``) are passed through."""
    prepare = getattr(module, "prepare_args", None)
    if prepare is not None:
        args = prepare(op, args)
    # partial, not a lambda: measured a little cheaper per call, and the
    # seed-sized rows time calls of a few microseconds.
    return functools.partial(getattr(module, FUNCTION_OF_OP[op]), *args)
