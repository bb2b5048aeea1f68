"""Argument checks shared by the layers, the model and the optimizers.

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

