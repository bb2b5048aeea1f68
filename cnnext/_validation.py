"""Argument checks of cnnext's public functions, kept apart from the API.

Each error names the argument, what was expected and what came. Every check
runs before any kernel: the kernels assume valid input. The fast paths at
the top of some helpers exist because, on a seed-sized call, validation
costs more than the kernel.
"""
from collections.abc import Mapping
import numbers
import sys

import numpy as np

from ._geometry import conv_output_hw, pool_output_hw

_POOL_MODES = ("max", "average")
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def _as_real_array(x, name):
    """``np.asarray(x)``, refusing dtypes that have no real arithmetic."""
    if type(x) is np.ndarray:
        arr = x  # what np.asarray returns, without its call
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array; could not convert "
                            f"{type(x).__name__}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (float, integer or "
                        f"bool); got dtype {arr.dtype}")
    return arr


def _compute_dtype(*arrays):
    """The float dtype a computation on ``arrays`` runs and returns in."""
    # Small calls are dominated by this: skip the promotion when every input
    # already has the same float32 or float64 dtype (the result_type then).
    dtype = getattr(arrays[0], "dtype", None)
    if dtype is _FLOAT32 or dtype is _FLOAT64:
        for arr in arrays:
            if getattr(arr, "dtype", None) is not dtype:
                break
        else:
            return dtype
    dtype = np.result_type(*arrays)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype {dtype} is not supported; use float32 or float64")
    return dtype


def _specialized(kernel, dtype):
    """The float32 or float64 version of a fused Cython kernel: calling it
    skips Cython's dispatch on the arguments' types, which costs about as
    much as a seed-sized call's work."""
    return kernel["float" if dtype.itemsize == 4 else "double"]


def _check_4d(arr, name, axes):
    if arr.ndim != 4:
        raise ValueError(f"{name} must be a 4-D array of shape {axes}; got a "
                         f"{arr.ndim}-D array of shape {arr.shape}")


def _int_param(hparameters, key, minimum, keys_wanted, who):
    """hparameters[key] as a Python int >= minimum."""
    # The usual plain dict of plain ints passes every check below, which cost
    # more than the kernel on a small call.
    if type(hparameters) is dict:
        value = hparameters.get(key)
        if type(value) is int and minimum <= value <= sys.maxsize:
            return value
    if not isinstance(hparameters, Mapping):
        raise TypeError(f"hparameters must be a dict with keys {keys_wanted}; "
                        f"got {type(hparameters).__name__}")
    if key not in hparameters:
        raise ValueError(f"hparameters is missing the key {key!r} needed by "
                         f"{who} (expected keys {keys_wanted}); got keys "
                         f"{sorted(map(str, hparameters))}")
    value = hparameters[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"hparameters[{key!r}] must be an integer; got "
                        f"{type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"hparameters[{key!r}] must be >= {minimum}; got {value}")
    if value > sys.maxsize:
        raise ValueError(f"hparameters[{key!r}] must be <= sys.maxsize = "
                         f"{sys.maxsize}; got {value}")
    return value


def _check_known_keys(hparameters, known, who):
    """An unknown key is an error: a misspelt or unsupported option (say
    'dilation') must not be silently ignored."""
    if len(hparameters) != len(known):  # the usual exact dict costs one len()
        unknown = sorted(map(str, set(hparameters) - set(known)))
        if unknown:
            raise ValueError(f"hparameters has unknown key(s) {', '.join(map(repr, unknown))} "
                             f"for {who}; the known keys are "
                             f"{', '.join(map(repr, known))}")


def _check_mode(mode):
    if not isinstance(mode, str):
        raise TypeError(f"mode must be the string 'max' or 'average'; got "
                        f"{type(mode).__name__} {mode!r}")
    if mode not in _POOL_MODES:
        raise ValueError(f"mode must be 'max' or 'average'; got {mode!r}")


def _check_cache(cache, length, contents, producer):
    if not isinstance(cache, (tuple, list)) or len(cache) != length:
        got = (f"a {type(cache).__name__} of length {len(cache)}"
               if isinstance(cache, (tuple, list)) else type(cache).__name__)
        raise ValueError(f"cache must be the {contents} tuple returned by "
                         f"{producer}; got {got}")


def _check_grad_shape(grad, name, expected, producer):
    if grad.shape != expected:
        raise ValueError(f"{name} must have the shape of {producer}'s output, "
                         f"{expected}; got {grad.shape}")


def _conv_geometry(A_prev, W, b, hparameters):
    """Validate a convolution's arguments; return (A, W, b, stride, pad, out_shape)."""
    A = _as_real_array(A_prev, "A_prev")
    W = _as_real_array(W, "W")
    b = _as_real_array(b, "b")
    _check_4d(A, "A_prev", "(m, n_H_prev, n_W_prev, n_C_prev)")
    _check_4d(W, "W", "(f, f, n_C_prev, n_C)")
    f, f_w, C_w, n_C = W.shape
    if f != f_w or f < 1:
        raise ValueError(f"W must hold square filters of shape (f, f, n_C_prev, "
                         f"n_C) with f >= 1; got shape {W.shape}")
    m, H, Wd, C = A.shape
    if C_w != C:
        raise ValueError(f"W has {C_w} input channels (W.shape[2]) but A_prev "
                         f"has {C} (A_prev.shape[3]); they must match")
    if b.shape != (1, 1, 1, n_C):
        raise ValueError(f"b must have shape (1, 1, 1, n_C) = (1, 1, 1, {n_C}) "
                         f"to match W's {n_C} filters; got shape {b.shape}")
    keys = "'stride' and 'pad'"
    stride = _int_param(hparameters, "stride", 1, keys, "conv_forward")
    pad = _int_param(hparameters, "pad", 0, keys, "conv_forward")
    _check_known_keys(hparameters, ("stride", "pad"), "conv_forward")
    if f > H + 2 * pad or f > Wd + 2 * pad:
        raise ValueError(f"the filter (f={f}) is larger than the padded input: "
                         f"n_H_prev + 2*pad = {H + 2 * pad}, n_W_prev + 2*pad = "
                         f"{Wd + 2 * pad}")
    n_H, n_W = conv_output_hw(H, Wd, f, pad, stride)
    return A, W, b, stride, pad, (m, n_H, n_W, n_C)


def _pool_geometry(A_prev, hparameters):
    """Validate a pooling's arguments; return (A, f, stride, out_shape)."""
    A = _as_real_array(A_prev, "A_prev")
    _check_4d(A, "A_prev", "(m, n_H_prev, n_W_prev, n_C_prev)")
    keys = "'f' and 'stride'"
    f = _int_param(hparameters, "f", 1, keys, "pool_forward")
    stride = _int_param(hparameters, "stride", 1, keys, "pool_forward")
    _check_known_keys(hparameters, ("f", "stride"), "pool_forward")
    m, H, Wd, C = A.shape
    if f > H or f > Wd:
        raise ValueError(f"the pooling window (f={f}) is larger than the input: "
                         f"n_H_prev = {H}, n_W_prev = {Wd}")
    n_H, n_W = pool_output_hw(H, Wd, f, stride)
    return A, f, stride, (m, n_H, n_W, C)
