"""PyTorch CPU as a contender, on NHWC arrays seen as channels_last tensors.

``torch.from_numpy(A).permute(0, 3, 1, 2)`` views an NHWC array as NCHW; the
weight layout change and the conversion of the results back to contiguous
NHWC numpy arrays are part of each call, so inside the timing. Backward is
``aten.convolution_backward`` (dA_prev, dW, db) and the pooling backward
kernels. The functions take cnnext's arguments and return its results.

Importing this module imports torch: :mod:`cnnext.bench.contenders` leaves
the contender out where that fails.
"""
import torch


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


def conv_forward(A_prev, W, b, hparameters):
    s, p = hparameters["stride"], hparameters["pad"]
    Z = torch.nn.functional.conv2d(_nchw(A_prev), _weight(W),
                                   torch.from_numpy(b.reshape(-1)), stride=s, padding=p)
    return _nhwc(Z), (A_prev, W, b, hparameters)


def conv_backward(dZ, cache):
    A_prev, W, b, hparameters = cache
    s, p = hparameters["stride"], hparameters["pad"]
    n_C = W.shape[3]
    dA, dW, db = torch.ops.aten.convolution_backward(
        _nchw(dZ), _nchw(A_prev), _weight(W), [n_C],
        [s, s], [p, p], [1, 1], False, [0, 0], 1, [True, True, True])
    return (_nhwc(dA), dW.permute(2, 3, 1, 0).contiguous().numpy(),
            db.reshape(1, 1, 1, n_C).numpy())


def pool_forward(A_prev, hparameters, mode="max"):
    f, s = hparameters["f"], hparameters["stride"]
    fn = (torch.nn.functional.max_pool2d if mode == "max"
          else torch.nn.functional.avg_pool2d)
    return _nhwc(fn(_nchw(A_prev), f, s)), (A_prev, hparameters)


def max_indices(A_prev, hparameters):
    """The argmax indices a torch forward pass keeps for the backward."""
    f, s = hparameters["f"], hparameters["stride"]
    return torch.ops.aten.max_pool2d_with_indices(_nchw(A_prev), [f, f], [s, s])[1]


def pool_backward(dA, cache, mode="max", indices=None):
    """``indices`` (max mode) from :func:`max_indices`; computed here if None."""
    A_prev, hparameters = cache
    f, s = hparameters["f"], hparameters["stride"]
    if mode == "max":
        if indices is None:
            indices = max_indices(A_prev, hparameters)
        g = torch.ops.aten.max_pool2d_with_indices_backward(
            _nchw(dA), _nchw(A_prev), [f, f], [s, s], [0, 0], [1, 1], False, indices)
    else:
        g = torch.ops.aten.avg_pool2d_backward(
            _nchw(dA), _nchw(A_prev), [f, f], [s, s], [0, 0], False, True, None)
    return _nhwc(g)


def prepare_args(op, args):
    """The arguments a row times ``op`` with: max pooling's backward gets its
    argmax indices here, outside the timing, as an autograd user would have
    them from the forward pass."""
    if op == "max_bwd":
        dA, cache, mode = args
        return (dA, cache, mode, max_indices(*cache))
    return args
