"""Output sizes of convolution and pooling: the one place the formulas live.

Everything in cnnext that needs an output size (the public functions'
validation, the layers' shape inference, the benchmark's cases) calls these.
The general formula is :func:`output_size`; the assignment's square,
symmetric, undilated ones are its special cases, kept as they are because
a seed-sized call's validation is the hot path.
"""
from typing import NamedTuple, Tuple

import numpy as np


def output_size(n_prev, f, pad_before, pad_after, stride, dilation=1):
    """Output length along one axis: windows of ``f`` taps ``dilation``
    apart, every ``stride`` positions, over the input padded by
    ``pad_before`` and ``pad_after``:
    ``floor((n_prev + pad_before + pad_after - dilation*(f-1) - 1) / stride) + 1``
    (PyTorch's and TensorFlow's rule; the assignment's with dilation 1)."""
    return (n_prev + pad_before + pad_after - dilation * (f - 1) - 1) // stride + 1


def same_padding(n_prev, f, stride, dilation=1):
    """``(pad_before, pad_after)`` of TensorFlow's ``padding='same'``: the
    output has ``ceil(n_prev / stride)`` positions, and the odd extra row or
    column of padding goes after (bottom, right), as Keras does."""
    n_out = -(-n_prev // stride)
    total = max((n_out - 1) * stride + dilation * (f - 1) + 1 - n_prev, 0)
    return total // 2, total - total // 2


class Geometry(NamedTuple):
    """A convolution's or pooling's geometry, every option made explicit:
    ``f``, ``stride`` and ``dilation`` as (height, width) pairs, ``pad`` as
    (top, bottom, left, right), ``groups`` (1 for pooling), ``out_hw`` the
    output's (n_H, n_W); ``square``: whether the assignment's (f, stride,
    pad) describe it (square, one stride, even padding, undilated, one
    group), the geometry of the compiled kernels. A field, not a property:
    it is read on every seed-sized call."""
    f: Tuple[int, int]
    stride: Tuple[int, int]
    pad: Tuple[int, int, int, int]
    dilation: Tuple[int, int]
    groups: int
    out_hw: Tuple[int, int]
    square: bool


def geometry(in_hw, f, stride, pad, dilation, groups=1):
    """The :class:`Geometry` of windows ``f`` over an input of ``in_hw``;
    ``pad`` a 4-tuple, or ``"same"`` (TensorFlow's rule) or ``"valid"``."""
    if pad == "same":
        pad = (*same_padding(in_hw[0], f[0], stride[0], dilation[0]),
               *same_padding(in_hw[1], f[1], stride[1], dilation[1]))
    elif pad == "valid":
        pad = (0, 0, 0, 0)
    out_hw = (output_size(in_hw[0], f[0], pad[0], pad[1], stride[0], dilation[0]),
              output_size(in_hw[1], f[1], pad[2], pad[3], stride[1], dilation[1]))
    # With one window along an axis its stride is never taken: capped at the
    # padded length then (still one window), so that a stride up to
    # sys.maxsize overflows no index.
    padded = (in_hw[0] + pad[0] + pad[1], in_hw[1] + pad[2] + pad[3])
    stride = tuple(min(s, max(n_pad, 1)) if n == 1 else s
                   for n, s, n_pad in zip(out_hw, stride, padded))
    square = (f[0] == f[1] and stride[0] == stride[1] and pad[0] == pad[1] == pad[2] == pad[3]
              and tuple(dilation) == (1, 1) and groups == 1)
    return Geometry(tuple(f), stride, tuple(pad), tuple(dilation), groups, out_hw, square)


def conv_output_size(n_prev, f, pad, stride):
    """Output length along one axis of a convolution: the assignment's
    ``floor((n_prev - f + 2*pad) / stride) + 1``."""
    return output_size(n_prev, f, pad, pad, stride)


def pool_output_size(n_prev, f, stride):
    """Output length along one axis of a pooling (no padding):
    ``floor((n_prev - f) / stride) + 1``."""
    return conv_output_size(n_prev, f, 0, stride)


def conv_output_hw(n_H_prev, n_W_prev, f, pad, stride):
    """``(n_H, n_W)`` of a convolution: :func:`conv_output_size` on both axes,
    in one call (the validation of a seed-sized call is this module's hot
    path: a call per axis cost 3-5% of a 4 us pooling call)."""
    return ((n_H_prev - f + 2 * pad) // stride + 1, (n_W_prev - f + 2 * pad) // stride + 1)


def pool_output_hw(n_H_prev, n_W_prev, f, stride):
    """``(n_H, n_W)`` of a pooling: :func:`pool_output_size` on both axes."""
    return ((n_H_prev - f) // stride + 1, (n_W_prev - f) // stride + 1)


def conv_output_shape(input_shape, f, n_C, pad, stride):
    """``(n_H, n_W, n_C)`` of a convolution of images of shape
    ``input_shape = (n_H_prev, n_W_prev, n_C_prev)``."""
    H, W = input_shape[0], input_shape[1]
    return (conv_output_size(H, f, pad, stride), conv_output_size(W, f, pad, stride), n_C)


def pool_output_shape(input_shape, f, stride):
    """``(n_H, n_W, n_C)`` of a pooling of images of shape ``input_shape``."""
    H, W, C = input_shape
    return (pool_output_size(H, f, stride), pool_output_size(W, f, stride), C)


def window_counts(n_prev, f, pad_before, stride, dilation, n_out):
    """How many of each window's ``f`` taps fall on the input (not on the
    padding) along one axis, as an (n_out,) integer array: window ``y``'s
    taps are ``y*stride - pad_before + k*dilation`` for ``k < f``."""
    start = np.arange(n_out, dtype=np.int64) * stride - pad_before
    first = np.maximum(0, -(start // dilation))              # ceil(-start / dilation)
    last = np.minimum(f - 1, (n_prev - 1 - start) // dilation)
    return np.maximum(last - first + 1, 0)
