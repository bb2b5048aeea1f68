"""Argument checks of cnnext's public functions, kept apart from the API.

Each error names the argument, what was expected and what came. Every check
runs before any kernel: the kernels assume valid input. The fast paths at
the top of some helpers exist because, on a seed-sized call, validation
costs more than the kernel.
"""
from collections.abc import Mapping
from functools import lru_cache
import numbers
import sys

import numpy as np

from ._geometry import Geometry, conv_output_hw, geometry, window_counts

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


def _check_known_keys(hparameters, known, who):
    """An unknown key is an error: a misspelt or unsupported option (say
    'dilatation') must not be silently ignored."""
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


_CONV_KEYS = ("stride", "pad", "dilation", "groups")
_POOL_KEYS = ("f", "stride", "pad", "dilation", "count_include_pad")
_PAD_FORMS = ("an int", "(p_h, p_w)", "(top, bottom, left, right)", "'same'", "'valid'")


@lru_cache(maxsize=256)
def _square_geometry(H, Wd, f, stride, pad):
    """The Geometry of the assignment's hyperparameters (cached: it is on
    the path of every seed-sized call)."""
    return Geometry((f, f), (stride, stride), (pad,) * 4, (1, 1), 1,
                    conv_output_hw(H, Wd, f, pad, stride), True)


def _int_value(value, what, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer; got {type(value).__name__} {value!r}")
    value = int(value)
    if not minimum <= value <= sys.maxsize:
        raise ValueError(f"{what} must be >= {minimum}" + (f" and <= sys.maxsize"
                         if value > sys.maxsize else "") + f"; got {value}")
    return value


def _pair(hparameters, key, minimum, default=None):
    """hparameters[key] as (height, width): an int for both, or two ints."""
    value = hparameters[key] if key in hparameters else default
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"hparameters[{key!r}] must be an int or a pair "
                             f"(height, width); got {value!r}")
        return tuple(_int_value(v, f"hparameters[{key!r}][{i}]", minimum)
                     for i, v in enumerate(value))
    value = _int_value(value, f"hparameters[{key!r}]", minimum)
    return value, value


def _padding(hparameters):
    """hparameters['pad'] as (top, bottom, left, right), or 'same' / 'valid'."""
    value = hparameters.get("pad", 0)
    if isinstance(value, str):
        if value.lower() not in ("same", "valid"):
            raise ValueError(f"hparameters['pad'] must be one of {', '.join(_PAD_FORMS)}; "
                             f"got the string {value!r}")
        return value.lower()
    if isinstance(value, (tuple, list)):
        if len(value) not in (2, 4):
            raise ValueError(f"hparameters['pad'] must be one of {', '.join(_PAD_FORMS)}; "
                             f"got a sequence of length {len(value)}: {value!r}")
        pads = tuple(_int_value(v, f"hparameters['pad'][{i}]", 0) for i, v in enumerate(value))
        return pads if len(pads) == 4 else (pads[0], pads[0], pads[1], pads[1])
    value = _int_value(value, "hparameters['pad']", 0)
    return (value,) * 4


# A padded axis longer than this is refused (a copy that size is padding).
_MAX_AXIS = 2**31 - 1


def _check_windows_fit(geo, H, Wd, what, who):
    (f_h, f_w), (d_h, d_w), (t, b_, l, r) = geo.f, geo.dilation, geo.pad
    if not geo.square and max(H + t + b_, Wd + l + r) > _MAX_AXIS:
        raise ValueError(f"hparameters['pad'] = {geo.pad} (top, bottom, left, right) would "
                         f"make the padded input {H + t + b_} x {Wd + l + r}: more than "
                         f"2**31 - 1 along an axis")
    span_h, span_w = d_h * (f_h - 1) + 1, d_w * (f_w - 1) + 1
    if span_h > H + t + b_ or span_w > Wd + l + r:
        size = f"f={f_h}" if f_h == f_w else f"f=({f_h}, {f_w})"
        if (d_h, d_w) != (1, 1):
            size += f", dilation {geo.dilation}: it spans {span_h} x {span_w}"
        raise ValueError(
            f"the {what} ({size}) is larger than the padded input of {who}: "
            f"{H + t + b_} x {Wd + l + r} (n_H_prev = {H}, n_W_prev = {Wd}, pad (top, "
            f"bottom, left, right) = {geo.pad})")


def _check_mapping(hparameters, keys_wanted):
    if not isinstance(hparameters, Mapping):
        raise TypeError(f"hparameters must be a dict with keys {keys_wanted}; "
                        f"got {type(hparameters).__name__}")


def _conv_geometry(A_prev, W, b, hparameters):
    """Validate a convolution's arguments; return (A, W, b, geometry,
    out_shape), b as (1, 1, 1, n_C) or None."""
    A = _as_real_array(A_prev, "A_prev")
    W = _as_real_array(W, "W")
    _check_4d(A, "A_prev", "(m, n_H_prev, n_W_prev, n_C_prev)")
    _check_4d(W, "W", "(f_h, f_w, n_C_prev / groups, n_C)")
    m, H, Wd, C = A.shape
    f_h, f_w, C_w, n_C = W.shape
    if f_h < 1 or f_w < 1:
        raise ValueError(f"W must have shape (f_h, f_w, n_C_prev / groups, n_C) with "
                         f"f_h, f_w >= 1; got shape {W.shape}")
    # The assignment's plain dict of two ints: its checks, and nothing more.
    if (type(hparameters) is dict and len(hparameters) == 2 and f_h == f_w and C_w == C
            and type(hparameters.get("stride")) is int and type(hparameters.get("pad")) is int
            and 1 <= hparameters["stride"] <= sys.maxsize and 0 <= hparameters["pad"] <= sys.maxsize):
        pad = hparameters["pad"]
        geo = _square_geometry(H, Wd, f_h, hparameters["stride"], pad)
        if f_h > H + 2 * pad or f_h > Wd + 2 * pad:
            _check_windows_fit(geo, H, Wd, "filter", "conv_forward")
    else:
        geo = _general_conv_geometry(A.shape, W.shape, hparameters)
        _check_windows_fit(geo, H, Wd, "filter", "conv_forward")
    n_H, n_W = geo.out_hw
    return A, W, _conv_bias(b, n_C), geo, (m, n_H, n_W, n_C)


def _check_keys(hparameters, known, required, who):
    """hparameters is a mapping of known keys holding every required one."""
    keys = ", ".join(map(repr, known))
    _check_mapping(hparameters, keys)
    _check_known_keys(hparameters, known, who)
    for key in required:
        if key not in hparameters:
            raise ValueError(f"hparameters is missing the key {key!r} needed by "
                             f"{who} (known keys {keys}); got keys "
                             f"{sorted(map(str, hparameters))}")


def _general_conv_geometry(A_shape, W_shape, hparameters):
    _check_keys(hparameters, _CONV_KEYS, ("stride", "pad"), "conv_forward")
    stride = _pair(hparameters, "stride", 1)
    dilation = _pair(hparameters, "dilation", 1, default=1)
    pad = _padding(hparameters)
    groups = _int_value(hparameters.get("groups", 1), "hparameters['groups']", 1)
    _, H, Wd, C = A_shape
    f_h, f_w, C_w, n_C = W_shape
    if C % groups or n_C % groups:
        raise ValueError(f"hparameters['groups'] = {groups} must divide both the input "
                         f"channels (A_prev.shape[3] = {C}) and the filters "
                         f"(W.shape[3] = {n_C})")
    if C_w * groups != C:
        raise ValueError(f"W has {C_w} input channels per filter (W.shape[2]); with "
                         f"groups = {groups} and A_prev's {C} channels it must have "
                         f"{C // groups} (n_C_prev / groups)")
    return geometry((H, Wd), (f_h, f_w), stride, pad, dilation, groups)


def _conv_bias(b, n_C):
    """b as (1, 1, 1, n_C), from that shape or (n_C,); None stays None."""
    if b is None:
        return None
    b = _as_real_array(b, "b")
    if b.shape == (1, 1, 1, n_C):
        return b
    if b.shape == (n_C,):
        return b.reshape(1, 1, 1, n_C)
    raise ValueError(f"b must have shape (1, 1, 1, n_C) = (1, 1, 1, {n_C}) or ({n_C},) "
                     f"to match W's {n_C} filters, or be None; got shape {b.shape}")


def _pool_geometry(A_prev, hparameters, mode="max"):
    """Validate a pooling's arguments; return (A, geometry, out_shape,
    count_include_pad). ``geometry.square``: the pooling kernels take it
    (square, one stride, undilated and unpadded)."""
    A = _as_real_array(A_prev, "A_prev")
    _check_4d(A, "A_prev", "(m, n_H_prev, n_W_prev, n_C_prev)")
    m, H, Wd, C = A.shape
    if (type(hparameters) is dict and len(hparameters) == 2
            and type(hparameters.get("f")) is int and type(hparameters.get("stride")) is int
            and 1 <= hparameters["f"] <= sys.maxsize
            and 1 <= hparameters["stride"] <= sys.maxsize):
        f = hparameters["f"]
        geo = _square_geometry(H, Wd, f, hparameters["stride"], 0)
        if f > H or f > Wd:
            _check_windows_fit(geo, H, Wd, "pooling window", "pool_forward")
        n_H, n_W = geo.out_hw
        return A, geo, (m, n_H, n_W, C), False
    else:
        _check_keys(hparameters, _POOL_KEYS, ("f", "stride"), "pool_forward")
        count_include_pad = hparameters.get("count_include_pad", False)
        if not isinstance(count_include_pad, (bool, np.bool_)):
            raise TypeError(f"hparameters['count_include_pad'] must be True or False; got "
                            f"{type(count_include_pad).__name__} {count_include_pad!r}")
        if "count_include_pad" in hparameters and mode != "average":
            raise ValueError("hparameters['count_include_pad'] applies to mode='average' "
                             f"only; got it with mode={mode!r}")
        geo = geometry((H, Wd), _pair(hparameters, "f", 1), _pair(hparameters, "stride", 1),
                       _padding(hparameters), _pair(hparameters, "dilation", 1, default=1))
    _check_windows_fit(geo, H, Wd, "pooling window", "pool_forward")
    if geo.pad != (0, 0, 0, 0):
        _check_no_window_is_all_padding(geo, H, Wd)
        geo = geo._replace(square=False)  # the pooling kernels do not pad
    return A, geo, (m, *geo.out_hw, C), bool(count_include_pad)


def _check_no_window_is_all_padding(geo, H, Wd):
    """A pooling window of padding alone has no max and no average."""
    for axis, n in ((0, H), (1, Wd)):
        span = geo.dilation[axis] * (geo.f[axis] - 1) + 1
        before, after = geo.pad[2 * axis], geo.pad[2 * axis + 1]
        if max(before, after) >= span or not window_counts(
                n, geo.f[axis], before, geo.stride[axis], geo.dilation[axis],
                geo.out_hw[axis]).all():
            raise ValueError(f"with pad (top, bottom, left, right) = {geo.pad}, some pooling "
                             f"windows along {('n_H', 'n_W')[axis]} cover only padding; "
                             f"each pad must be smaller than the window ({span} along it)")
