"""PyTorch CPU as a contender, on NHWC arrays seen as channels_last tensors.

``torch.from_numpy(A).permute(0, 3, 1, 2)`` views an NHWC array as NCHW; the
weight layout change and the conversion of the results back to contiguous
NHWC numpy arrays are part of each call, so inside the timing. Backward is
``aten.convolution_backward`` (dA_prev, dW, db) and the pooling backward
kernels. The functions take cnnext's arguments and return its results.

The whole geometry: stride, dilation and groups are conv2d's; padding is
conv2d's or the pooling's where it is even on both sides (and, for the
pools, at most half the window), else the input is padded by ``F.pad``
inside the timing (zeros; -inf for max pooling) and the gradient cut back.
Average pooling divides by the input entries of each window, as cnnext does
(``count_include_pad=False``; uneven padding: window sums / counts).

Importing this module imports torch: :mod:`cnnext.bench.contenders` leaves
the contender out where that fails.
"""
import torch
import torch.nn.functional as F

from .geometry import conv_geometry, even_padding, pool_counts, pool_geometry


def _nchw(X):
    """An NHWC numpy array as an NCHW tensor with channels_last memory (no copy)."""
    return torch.from_numpy(X).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)


def _nhwc(T):
    """An NCHW tensor back as a contiguous NHWC numpy array."""
    return T.permute(0, 2, 3, 1).contiguous().numpy()


def _weight(W):
    """(f, f, C, n_C) numpy -> (n_C, C, f, f) tensor, channels_last memory."""
    return torch.from_numpy(W).permute(3, 2, 0, 1).contiguous(
        memory_format=torch.channels_last)


def _padded(X, geo, value=0.0):
    """X padded by F.pad with ``value`` (channels_last again), and the
    padding left for the op: (0, 0)."""
    t, b, l, r = geo.pad
    return F.pad(X, (l, r, t, b), value=value).contiguous(
        memory_format=torch.channels_last), (0, 0)


def _conv_input(A_prev, geo):
    """The input tensor and conv2d's padding: (p_h, p_w) where even, else
    padded by F.pad."""
    X, pad = _nchw(A_prev), even_padding(geo)
    return (X, pad) if pad is not None else _padded(X, geo)


def conv_forward(A_prev, W, b, hparameters):
    geo = conv_geometry(A_prev.shape, W.shape, hparameters)
    X, pad = _conv_input(A_prev, geo)
    Z = F.conv2d(X, _weight(W), None if b is None else torch.from_numpy(b.reshape(-1)),
                 stride=geo.stride, padding=pad, dilation=geo.dilation, groups=geo.groups)
    return _nhwc(Z), (A_prev, W, b, hparameters)


def conv_backward(dZ, cache):
    A_prev, W, b, hparameters = cache
    geo = conv_geometry(A_prev.shape, W.shape, hparameters)
    X, pad = _conv_input(A_prev, geo)
    n_C = W.shape[3]
    dA, dW, db = torch.ops.aten.convolution_backward(
        _nchw(dZ), X, _weight(W), None if b is None else [n_C],
        list(geo.stride), list(pad), list(geo.dilation), False, [0, 0], geo.groups,
        [True, True, b is not None])
    if X.shape[2:] != A_prev.shape[1:3]:  # padded by F.pad: the input's part
        t, l = geo.pad[0], geo.pad[2]
        dA = dA[:, :, t:t + A_prev.shape[1], l:l + A_prev.shape[2]]
    return (_nhwc(dA), dW.permute(2, 3, 1, 0).contiguous().numpy(),
            None if b is None else db.reshape(b.shape).numpy())


def _pool_plan(A_shape, hparameters):
    """(geometry, padding for the op or None if F.pad pads instead)."""
    geo = pool_geometry(A_shape, hparameters)
    pad = even_padding(geo)
    # PyTorch takes a padding of at most half the (dilated) window, and no
    # dilation for averages (their uneven padding is summed, then divided).
    if pad is not None and all(2 * p <= d * (f - 1) + 1
                               for p, f, d in zip(pad, geo.f, geo.dilation)):
        return geo, pad
    return geo, None


def supports(op, dtype, args=None):
    """Every row but dilated average pooling (avg_pool2d has no dilation)."""
    if args is None or not op.startswith("avg"):
        return True
    A, hp = (args[0], args[1]) if op == "avg_fwd" else args[1]
    return pool_geometry(A.shape, hp).dilation == (1, 1)


def _pool_input(A_prev, geo, pad, value):
    X = _nchw(A_prev)
    return (X, pad) if pad is not None else _padded(X, geo, value)


def _counts(A_prev, geo):
    """The input entries of each window, (n_H, n_W), what cnnext divides by."""
    return torch.from_numpy(pool_counts(A_prev.shape, geo).astype(A_prev.dtype))


def pool_forward(A_prev, hparameters, mode="max"):
    geo, pad = _pool_plan(A_prev.shape, hparameters)
    if mode == "max":
        X, p = _pool_input(A_prev, geo, pad, -float("inf"))
        out = F.max_pool2d(X, geo.f, geo.stride, padding=p, dilation=geo.dilation)
    elif pad is not None:
        out = F.avg_pool2d(_nchw(A_prev), geo.f, geo.stride, padding=pad,
                           count_include_pad=False)
    else:  # uneven padding: window sums over the zero-padded input / counts
        X, _ = _padded(_nchw(A_prev), geo)
        out = F.avg_pool2d(X, geo.f, geo.stride, divisor_override=1) / _counts(A_prev, geo)
    return _nhwc(out), (A_prev, hparameters)


def max_indices(A_prev, hparameters):
    """The argmax indices a torch forward pass keeps for the backward."""
    geo, pad = _pool_plan(A_prev.shape, hparameters)
    X, p = _pool_input(A_prev, geo, pad, -float("inf"))
    return torch.ops.aten.max_pool2d_with_indices(X, list(geo.f), list(geo.stride), list(p),
                                                  list(geo.dilation))[1]


def pool_backward(dA, cache, mode="max", indices=None):
    """``indices`` (max mode) from :func:`max_indices`; computed here if None."""
    A_prev, hparameters = cache
    geo, pad = _pool_plan(A_prev.shape, hparameters)
    f, s = list(geo.f), list(geo.stride)
    if mode == "max":
        if indices is None:
            indices = max_indices(A_prev, hparameters)
        X, p = _pool_input(A_prev, geo, pad, -float("inf"))
        g = torch.ops.aten.max_pool2d_with_indices_backward(
            _nchw(dA), X, f, s, list(p), list(geo.dilation), False, indices)
    elif pad is not None:
        g = torch.ops.aten.avg_pool2d_backward(
            _nchw(dA), _nchw(A_prev), f, s, list(pad), False, False, None)
    else:
        X, _ = _padded(_nchw(A_prev), geo)
        dA = torch.from_numpy(dA) / _counts(A_prev, geo)[:, :, None]
        g = torch.ops.aten.avg_pool2d_backward(
            dA.permute(0, 3, 1, 2), X, f, s, [0, 0], False, True, 1)
    if g.shape[2:] != A_prev.shape[1:3]:  # padded by F.pad: the input's part
        t, l = geo.pad[0], geo.pad[2]
        g = g[:, :, t:t + A_prev.shape[1], l:l + A_prev.shape[2]]
    return _nhwc(g)


def prepare_args(op, args):
    """The arguments a row times ``op`` with: max pooling's backward gets its
    argmax indices here, outside the timing, as an autograd user would have
    them from the forward pass. The hyperparameters are normalised here too
    (untimed: it is the translation of cnnext's dict into PyTorch's
    arguments, not PyTorch's work)."""
    if op == "conv_fwd":
        A, W, b, hp = args
        return (A, W, b, conv_geometry(A.shape, W.shape, hp))
    if op == "conv_bwd":
        dZ, (A, W, b, hp) = args
        return (dZ, (A, W, b, conv_geometry(A.shape, W.shape, hp)))
    if op.endswith("fwd"):
        A, hp, mode = args
        return (A, pool_geometry(A.shape, hp), mode)
    dA, (A, hp), mode = args
    cache = (A, pool_geometry(A.shape, hp))
    if op == "max_bwd":
        return (dA, cache, mode, max_indices(*cache))
    return (dA, cache, mode)
