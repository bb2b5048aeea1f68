"""Convolution and pooling of any geometry: rectangular windows, a stride
and a dilation per axis, uneven padding, groups.

The compiled kernels (``_conv``, ``_pool``) take the assignment's geometry
(square, one stride, even padding); everything else runs here, on numpy's
compiled loops and BLAS: a padded copy of the input, then per window tap a
strided view of it (tap (i, j) of every window is one view), so that no
Python loop runs over pixels. Convolutions gather those views into an
im2row matrix for one GEMM per group (in blocks of images, to bound the
scratch memory), except depthwise ones (one input channel per group): those
with one filter per channel (MobileNet's) run on compiled kernels
(``_depthwise.h``) that skip the padding's taps rather than copy the input,
with a channel multiplier they add tap after tap. The arguments are
validated (``_validation``);
``geo`` is their :class:`~cnnext._geometry.Geometry`.
"""
import numpy as np

from . import _conv, _pool
from ._geometry import window_counts
from ._parallel import for_batch
from ._validation import _specialized

# The im2row matrix of one block of images stays under this many bytes.
SCRATCH_BYTES = 32 << 20


def _padded(A, pad, fill, dtype):
    top, bottom, left, right = pad
    m, H, Wd, C = A.shape
    out = np.full((m, H + top + bottom, Wd + left + right, C), fill, dtype=dtype)
    out[:, top:top + H, left:left + Wd] = A
    return out


def _tap(padded, geo, i, j):
    """Tap (i, j) of every window: a (m, n_H, n_W, C) view of ``padded``."""
    (s_h, s_w), (d_h, d_w), (n_H, n_W) = geo.stride, geo.dilation, geo.out_hw
    y, x = i * d_h, j * d_w
    return padded[:, y:y + s_h * (n_H - 1) + 1:s_h, x:x + s_w * (n_W - 1) + 1:s_w]


def _taps(geo):
    return [(i, j) for i in range(geo.f[0]) for j in range(geo.f[1])]


def _image_blocks(m, bytes_per_image):
    step = max(1, SCRATCH_BYTES // max(bytes_per_image, 1))
    return [(i, min(i + step, m)) for i in range(0, m, step)]


def _windows(padded, geo):
    """Every window as a (m, n_H, n_W, f_h, f_w, C) view (no copy)."""
    m, _, _, C = padded.shape
    sm, sh, sw, sc = padded.strides
    (s_h, s_w), (d_h, d_w) = geo.stride, geo.dilation
    return np.lib.stride_tricks.as_strided(
        padded, (m, *geo.out_hw, *geo.f, C),
        (sm, s_h * sh, s_w * sw, d_h * sh, d_w * sw, sc), writeable=False)


def _is_depthwise(geo, C):
    return geo.groups == C and C > 1


def _geometry_args(geo):
    top, _, left, _ = geo.pad
    return (*geo.f, *geo.stride, *geo.dilation, top, left)


def _phases_suit(geo, W):
    """Whether a dilated convolution splits into undilated ones (below)."""
    return (geo.dilation != (1, 1) and geo.stride == (1, 1) and geo.groups == 1
            and W.shape[0] == W.shape[1])


def _phases(geo):
    """A stride-1 convolution dilated by (d_h, d_w) is d_h * d_w undilated
    ones (TensorFlow's space-to-batch): output rows p, p + d_h, ... read only
    the padded input's rows p, p + d_h, ..., and likewise columns. Each runs
    on the compiled kernels; the phases' outputs and input gradients are
    disjoint, their weight gradients add up."""
    (d_h, d_w), (n_H, n_W) = geo.dilation, geo.out_hw
    return [(slice(p, None, d_h), slice(q, None, d_w))   # no phase past the output
            for p in range(min(d_h, n_H)) for q in range(min(d_w, n_W))]


def _uneven_pad_suits(geo, W):
    """The assignment's geometry but for uneven padding ('same' with an even
    filter): the compiled kernels on the padded copy, with pad 0."""
    return (geo.dilation == (1, 1) and geo.stride[0] == geo.stride[1] and geo.groups == 1
            and W.shape[0] == W.shape[1])


def conv_forward(A, W, b, geo, dtype):
    m, _, _, C = A.shape
    f_h, f_w, C_g, n_C = W.shape
    G, n_C_g = geo.groups, n_C // geo.groups
    if _is_depthwise(geo, C) and n_C == C:  # the kernels pad implicitly
        Z = np.empty((m, *geo.out_hw, n_C), dtype=dtype)
        bias = None if b is None else np.ascontiguousarray(b.reshape(n_C))
        for_batch(_specialized(_conv.depthwise_forward, dtype), (np.ascontiguousarray(A), Z),
                  (np.ascontiguousarray(W.reshape(f_h, f_w, C)), bias, *_geometry_args(geo)),
                  Z.size * f_h * f_w)
        return Z
    padded = _padded(A, geo.pad, 0, dtype)
    if _uneven_pad_suits(geo, W):
        from . import conv_forward as square_conv_forward
        return square_conv_forward(padded, W, b, {"stride": geo.stride[0], "pad": 0})[0]
    if _phases_suit(geo, W):
        from . import conv_forward as square_conv_forward
        Z = np.empty((m, *geo.out_hw, n_C), dtype=dtype)
        for rows, cols in _phases(geo):
            Z[:, rows, cols] = square_conv_forward(padded[:, rows, cols], W, b,
                                                   {"stride": 1, "pad": 0})[0]
        return Z
    Z = np.zeros((m, *geo.out_hw, n_C), dtype=dtype)
    if _is_depthwise(geo, C):
        # Output channel g * n_C_g + q reads input channel g alone.
        Z_g = Z.reshape(m, *geo.out_hw, G, n_C_g)
        for i, j in _taps(geo):
            Z_g += _tap(padded, geo, i, j)[..., None] * W[i, j, 0].reshape(G, n_C_g)
    else:
        K = f_h * f_w * C_g
        rows_per_image = geo.out_hw[0] * geo.out_hw[1]
        for i0, i1 in _image_blocks(m, rows_per_image * K * dtype.itemsize):
            windows = _windows(padded[i0:i1], geo)
            for g in range(G):
                cols = windows[..., g * C_g:(g + 1) * C_g].reshape((i1 - i0) * rows_per_image, K)
                W_g = W[..., g * n_C_g:(g + 1) * n_C_g].reshape(K, n_C_g)
                Z[i0:i1, ..., g * n_C_g:(g + 1) * n_C_g] = (cols @ W_g).reshape(
                    i1 - i0, *geo.out_hw, n_C_g)
    if b is not None:
        Z += b.reshape(n_C)
    return Z


def conv_backward(A, W, dZ, geo, dtype):
    """(dA_prev, dW) of a convolution; the caller sums db."""
    m, H, Wd, C = A.shape
    f_h, f_w, C_g, n_C = W.shape
    G, n_C_g = geo.groups, n_C // geo.groups
    top, _, left, _ = geo.pad
    if _is_depthwise(geo, C) and n_C == C:  # the kernels pad implicitly
        dA = np.empty(A.shape, dtype=dtype)
        dW_per_image = np.zeros((m, f_h, f_w, C), dtype=dtype)
        for_batch(_specialized(_conv.depthwise_backward, dtype),
                  (np.ascontiguousarray(A), np.ascontiguousarray(dZ), dA, dW_per_image),
                  (np.ascontiguousarray(W.reshape(f_h, f_w, C)), *_geometry_args(geo)),
                  dZ.size * f_h * f_w)
        return dA, dW_per_image.sum(axis=0).reshape(W.shape)
    padded = _padded(A, geo.pad, 0, dtype)
    if _uneven_pad_suits(geo, W):
        from . import conv_backward as square_conv_backward
        d_padded, dW, _ = square_conv_backward(dZ, (padded, W, None,
                                                    {"stride": geo.stride[0], "pad": 0}))
        return d_padded[:, top:top + H, left:left + Wd], dW
    d_padded = np.zeros_like(padded)
    if _phases_suit(geo, W):
        from . import conv_backward as square_conv_backward
        dW = np.zeros(W.shape, dtype=dtype)
        for rows, cols in _phases(geo):
            phase = np.ascontiguousarray(padded[:, rows, cols])
            d_phase, dW_phase, _ = square_conv_backward(
                np.ascontiguousarray(dZ[:, rows, cols]), (phase, W, None, {"stride": 1, "pad": 0}))
            d_padded[:, rows, cols] = d_phase
            dW += dW_phase
        return d_padded[:, top:top + H, left:left + Wd], dW
    dW = np.zeros(W.shape, dtype=dtype)
    if _is_depthwise(geo, C):
        dZ_g = dZ.reshape(m, *geo.out_hw, G, n_C_g)
        for i, j in _taps(geo):
            tap = _tap(padded, geo, i, j)
            dW[i, j, 0] = np.einsum("nyxg,nyxgq->gq", tap, dZ_g).reshape(n_C)
            _tap(d_padded, geo, i, j)[...] += np.einsum(
                "nyxgq,gq->nyxg", dZ_g, W[i, j, 0].reshape(G, n_C_g))
    else:
        K = f_h * f_w * C_g
        rows_per_image = geo.out_hw[0] * geo.out_hw[1]
        for i0, i1 in _image_blocks(m, rows_per_image * K * dtype.itemsize):
            rows = (i1 - i0) * rows_per_image
            windows = _windows(padded[i0:i1], geo)
            block = d_padded[i0:i1]
            for g in range(G):
                channels = slice(g * C_g, (g + 1) * C_g)
                outputs = slice(g * n_C_g, (g + 1) * n_C_g)
                cols = windows[..., channels].reshape(rows, K)
                dZ_rows = dZ[i0:i1, ..., outputs].reshape(rows, n_C_g)
                dW[..., outputs] += (cols.T @ dZ_rows).reshape(f_h, f_w, C_g, n_C_g)
                d_cols = (dZ_rows @ W[..., outputs].reshape(K, n_C_g).T).reshape(
                    i1 - i0, *geo.out_hw, f_h, f_w, C_g)
                for i, j in _taps(geo):
                    _tap(block, geo, i, j)[..., channels] += d_cols[:, :, :, i, j]
    return d_padded[:, top:top + H, left:left + Wd], dW


def _window_counts(geo, H, Wd, dtype):
    """How many input (not padding) positions each window covers, (n_H, n_W)."""
    counts = [window_counts(n, geo.f[axis], geo.pad[2 * axis], geo.stride[axis],
                            geo.dilation[axis], geo.out_hw[axis])
              for axis, n in ((0, H), (1, Wd))]
    return np.multiply.outer(counts[0], counts[1]).astype(dtype)


def _divisors(geo, H, Wd, dtype, count_include_pad):
    if count_include_pad:
        return dtype.type(geo.f[0] * geo.f[1])
    return _window_counts(geo, H, Wd, dtype)[None, :, :, None]


def _padded_pool_suits(geo):
    """Square windows, one stride, no dilation, only padding: the compiled
    pooling kernels on the padded copy."""
    return geo.f[0] == geo.f[1] and geo.stride[0] == geo.stride[1] and geo.dilation == (1, 1)


def _rescale_to_count(geo, H, Wd, dtype, count_include_pad):
    """What turns a mean over f*f entries into one over the window's input
    entries (1 with count_include_pad)."""
    if count_include_pad:
        return None
    return dtype.type(geo.f[0] * geo.f[1]) / _window_counts(geo, H, Wd, dtype)[None, :, :, None]


def pool_forward(A, geo, is_max, count_include_pad, dtype):
    m, H, Wd, C = A.shape
    # Max pads with -inf, which no window's max can be (each window holds
    # an input value); average pads with zeros and divides by the count.
    padded = _padded(A, geo.pad, -np.inf if is_max else 0, dtype)
    if _padded_pool_suits(geo):
        out = np.empty((m, *geo.out_hw, C), dtype=dtype)
        for_batch(_specialized(_pool.pool_forward, dtype), (padded, out),
                  (geo.f[0], geo.stride[0], is_max), padded.size)
        scale = None if is_max else _rescale_to_count(geo, H, Wd, dtype, count_include_pad)
        if scale is not None:
            out *= scale
        return out
    taps = _taps(geo)
    out = np.array(_tap(padded, geo, *taps[0]), dtype=dtype)
    combine = np.maximum if is_max else np.add
    for i, j in taps[1:]:
        combine(out, _tap(padded, geo, i, j), out=out)
    if not is_max:
        out /= _divisors(geo, H, Wd, dtype, count_include_pad)
    return out


def pool_backward(A, dA, geo, is_max, count_include_pad, dtype):
    m, H, Wd, C = A.shape
    top, _, left, _ = geo.pad
    padded = _padded(A, geo.pad, -np.inf if is_max else 0, dtype)
    if _padded_pool_suits(geo):
        scale = None if is_max else _rescale_to_count(geo, H, Wd, dtype, count_include_pad)
        dA = np.ascontiguousarray(dA if scale is None else dA * scale)
        d_padded = np.empty_like(padded)
        for_batch(_specialized(_pool.pool_backward, dtype), (padded, dA, d_padded),
                  (geo.f[0], geo.stride[0], is_max), padded.size)
        return d_padded[:, top:top + H, left:left + Wd].copy()
    d_padded = np.zeros_like(padded)
    if is_max:
        # The assignment's mask: every entry equal to its window's max gets
        # the window's whole gradient (ties included).
        out = pool_forward(A, geo, True, False, dtype)
        for i, j in _taps(geo):
            _tap(d_padded, geo, i, j)[...] += np.where(_tap(padded, geo, i, j) == out, dA, 0)
    else:
        share = dA / _divisors(geo, H, Wd, dtype, count_include_pad)
        for i, j in _taps(geo):
            _tap(d_padded, geo, i, j)[...] += share
    return d_padded[:, top:top + H, left:left + Wd].copy()
