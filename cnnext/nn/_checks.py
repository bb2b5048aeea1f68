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
