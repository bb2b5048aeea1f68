"""The geometry of a benchmark row, normalised as cnnext normalises it, so
that every contender computes the same problem.

:func:`conv_geometry` and :func:`pool_geometry` turn a hparameters dict into
a :class:`cnnext._geometry.Geometry` (f, stride and dilation pairs, pad as
(top, bottom, left, right), groups, out_hw) with cnnext's own helpers
(``_pair``, ``_padding``, ``geometry``: ``"same"`` is TensorFlow's rule);
:func:`is_assignment_geometry` tells the rows of the assignment's geometry
(square filter, int stride and pad, one group; pooling without padding),
the only ones the seed loops and the numpy contender run.
"""
import numpy as np

from .._geometry import Geometry, geometry, window_counts
from .._validation import _pair, _padding


def conv_geometry(A_shape, W_shape, hparameters):
    """The Geometry of ``conv_forward(A, W, b, hparameters)``."""
    if isinstance(hparameters, Geometry):
        return hparameters
    f_h, f_w, C_w, _ = W_shape
    groups = int(hparameters.get("groups", 1))
    assert C_w * groups == A_shape[3], (A_shape, W_shape, groups)
    return geometry(tuple(A_shape[1:3]), (f_h, f_w), _pair(hparameters, "stride", 1),
                    _padding(hparameters), _pair(hparameters, "dilation", 1, default=1),
                    groups)


def pool_geometry(A_shape, hparameters):
    """The Geometry of ``pool_forward(A, hparameters, mode)``."""
    if isinstance(hparameters, Geometry):
        return hparameters
    return geometry(tuple(A_shape[1:3]), _pair(hparameters, "f", 1),
                    _pair(hparameters, "stride", 1), _padding(hparameters),
                    _pair(hparameters, "dilation", 1, default=1))


def _plain_ints(hparameters, keys):
    return (isinstance(hparameters, dict) and set(hparameters) == set(keys)
            and all(type(hparameters[k]) is int for k in keys))


def is_assignment_geometry(op, args):
    """Whether the row of ``op`` on cnnext's ``args`` has the assignment's
    geometry: conv ``{"stride": int, "pad": int}`` with a square W over all
    the input channels, pool ``{"f": int, "stride": int}``."""
    if op.startswith("conv"):
        A, W, _, hp = args if op == "conv_fwd" else args[1]
        return (_plain_ints(hp, ("stride", "pad")) and W.shape[0] == W.shape[1]
                and W.shape[2] == A.shape[3])
    A, hp = (args[0], args[1]) if op.endswith("fwd") else args[1]
    return _plain_ints(hp, ("f", "stride"))


def even_padding(geo):
    """(p_h, p_w) if the padding is the same on both sides of each axis,
    else None."""
    t, b, l, r = geo.pad
    return (t, l) if (t, l) == (b, r) else None


def pool_counts(A_shape, geo):
    """(n_H, n_W) array: how many input entries (not padding) each pooling
    window covers, what cnnext's average divides by."""
    (f_h, f_w), (s_h, s_w), (d_h, d_w) = geo.f, geo.stride, geo.dilation
    t, _, l, _ = geo.pad
    n_H, n_W = geo.out_hw
    return np.outer(window_counts(A_shape[1], f_h, t, s_h, d_h, n_H),
                    window_counts(A_shape[2], f_w, l, s_w, d_w, n_W))
