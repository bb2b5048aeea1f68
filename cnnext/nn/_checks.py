"""Argument checks shared by the layers, the loss, the model and the optimizers.

Each returns the checked value in its canonical form or raises a ValueError or
TypeError that names the argument, what was expected and what came.
"""
import numbers

import numpy as np


def check_int(value, name, minimum):
    """``value`` as a Python int >= ``minimum``; bools are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def check_dtype(dtype):
    """``dtype`` as a :class:`numpy.dtype`, float32 or float64."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {dtype}")
    return dtype


def describe_batch(shape, example_shape):
    """The "got ..." half of the error for an input of ``shape`` where a batch
    ``(m,) + example_shape`` was expected, with the fix when the input is one of
    two common mistakes: a single example (no batch axis) or a channels-first
    (NCHW) array.

    The NCHW hint is given only when ``shape`` is exactly the channels-first
    permutation of the expected NHWC shape, so it never suggests a transpose
    that would not fit.
    """
    shape, example_shape = tuple(shape), tuple(example_shape)
    if shape == example_shape:
        dims = ", ".join(map(str, shape))
        return (f"got a single example of shape {shape}: the batch axis is missing; "
                f"add it with X[None] or X.reshape(1, {dims}) for a batch of one")
    if len(example_shape) == 3:
        H, W, C = example_shape
        if len(shape) == 4 and shape[1:] == (C, H, W):
            return (f"got a batch of shape {shape}, which is channels-first (NCHW); "
                    f"cnnext wants channels-last (NHWC) batches (m, n_H, n_W, n_C): "
                    f"convert with X.transpose(0, 2, 3, 1)")
        if shape == (C, H, W):
            return (f"got a single channels-first (CHW) example of shape {shape}; "
                    f"cnnext wants channels-last (NHWC) batches (m, n_H, n_W, n_C): "
                    f"convert with X.transpose(1, 2, 0)[None]")
    return f"got a batch of shape {shape}"


def check_real(value, name, low, high, *, low_open=False, high_open=False):
    """``value`` as a Python float in the interval from ``low`` to ``high``
    (``None``: unbounded), each end closed unless ``low_open``/``high_open``;
    bools, strings and NaN are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} "
                        f"{value!r}")
    value = float(value)
    ok = value == value  # not NaN
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        if high is None:
            expected = f"{'>' if low_open else '>='} {low}"
        elif low is None:
            expected = f"{'<' if high_open else '<='} {high}"
        else:
            expected = (f"in {'(' if low_open else '['}{low}, {high}"
                        f"{')' if high_open else ']'}")
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return value


def check_bool(value, name):
    """``value`` as a Python bool; only True, False and numpy bools pass (a
    string such as ``"False"`` would otherwise be truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__} "
                        f"{value!r}")
    return bool(value)
