"""Vectorised numpy as a contender: ``sliding_window_view`` + ``tensordot``
for the forward passes, scatter-adds over the f*f window offsets for the
backward ones. The functions take cnnext's arguments and return its results.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .geometry import is_assignment_geometry


def supports(op, dtype, args=None):
    """The assignment's geometry only (square filter, int stride and pad, one
    group; pooling without padding): the rows of the whole geometry are left
    out."""
    return args is None or is_assignment_geometry(op, args)


def _windows(A_pad, f, stride):
    """View (m, n_H, n_W, C, f, f) of every f x f window, ``stride`` apart."""
    return sliding_window_view(A_pad, (f, f), axis=(1, 2))[:, ::stride, ::stride]


def _scatter_add(dA_pad, parts, f, stride, n_H, n_W):
    """dA_pad[:, h*s+di, w*s+dj] += parts(di, dj)[:, h, w] for every offset."""
    for di in range(f):
        for dj in range(f):
            dA_pad[:, di:di + stride * (n_H - 1) + 1:stride,
                   dj:dj + stride * (n_W - 1) + 1:stride, :] += parts(di, dj)


def conv_forward(A_prev, W, b, hparameters):
    stride, pad = hparameters["stride"], hparameters["pad"]
    f = W.shape[0]
    A_pad = np.pad(A_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Z = np.tensordot(_windows(A_pad, f, stride), W, axes=([4, 5, 3], [0, 1, 2]))
    Z += b.reshape(-1)
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ, cache):
    A_prev, W, b, hparameters = cache
    stride, pad = hparameters["stride"], hparameters["pad"]
    f = W.shape[0]
    m, H, Wd, C = A_prev.shape
    n_H, n_W = dZ.shape[1:3]
    A_pad = np.pad(A_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    # (C, f, f, n_C) -> (f, f, C, n_C)
    dW = np.tensordot(_windows(A_pad, f, stride), dZ,
                      axes=([0, 1, 2], [0, 1, 2])).transpose(1, 2, 0, 3)
    dcols = np.tensordot(dZ, W, axes=([3], [3]))  # (m, n_H, n_W, f, f, C)
    dA_pad = np.zeros_like(A_pad)
    _scatter_add(dA_pad, lambda di, dj: dcols[:, :, :, di, dj, :], f, stride, n_H, n_W)
    dA_prev = np.ascontiguousarray(dA_pad[:, pad:pad + H, pad:pad + Wd, :])
    db = dZ.sum(axis=(0, 1, 2)).reshape(b.shape)
    return dA_prev, np.ascontiguousarray(dW), db


def pool_forward(A_prev, hparameters, mode="max"):
    win = _windows(A_prev, hparameters["f"], hparameters["stride"])
    A = win.max(axis=(4, 5)) if mode == "max" else win.mean(axis=(4, 5))
    return A, (A_prev, hparameters)


def pool_backward(dA, cache, mode="max"):
    A_prev, hparameters = cache
    f, stride = hparameters["f"], hparameters["stride"]
    n_H, n_W = dA.shape[1:3]
    dA_prev = np.zeros(A_prev.shape, dtype=dA.dtype)
    if mode == "max":
        win = _windows(A_prev, f, stride)
        mask = win == win.max(axis=(4, 5), keepdims=True)
        parts = lambda di, dj: mask[..., di, dj] * dA  # noqa: E731
    else:
        share = dA / dA.dtype.type(f * f)
        parts = lambda di, dj: share  # noqa: E731
    _scatter_add(dA_prev, parts, f, stride, n_H, n_W)
    return dA_prev
