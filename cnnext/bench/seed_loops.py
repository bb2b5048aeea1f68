"""The seed's loops, transcribed: the slowest contender, and the baseline of
the "1000x the seed's loops" target.

The transcription keeps the assignment's code, its output-size formulas
included, with three changes: arrays of the input dtype instead of float64,
explicit slices instead of ``X[pad:-pad]`` (which breaks for pad=0), and
``b.item()`` for ``float(b)``. ``limit`` runs only the first ``limit``
(example, output row) pairs (:func:`subsample_rows`), so that a subsample of
a large case can be timed; None runs them all.
"""
import itertools

import numpy as np

from .geometry import is_assignment_geometry


def supports(op, dtype, args=None):
    """The assignment's geometry only (square filter, int stride and pad, one
    group; pooling without padding): the rows of the whole geometry are left
    out."""
    return args is None or is_assignment_geometry(op, args)


def subsample_rows(m, n_H, limit):
    """The first ``limit`` (example, output row) pairs, examples outermost.

    Examples
    --------
    >>> subsample_rows(2, 3, 4)
    [(0, 0), (0, 1), (0, 2), (1, 0)]
    >>> len(subsample_rows(2, 3, None))
    6
    """
    pairs = itertools.product(range(m), range(n_H))
    return list(pairs if limit is None else itertools.islice(pairs, limit))


def zero_pad(X, pad):
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), "constant",
                  constant_values=((0, 0), (0, 0), (0, 0), (0, 0)))


def conv_single_step(a_slice_prev, W, b):
    s = a_slice_prev * W
    Z = np.sum(s)
    # The seed writes float(b); numpy 2 refuses float() of a (1, 1, 1) array.
    Z = Z + b.item()
    return Z


def conv_forward(A_prev, W, b, hparameters, limit=None):
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    (f, f, n_C_prev, n_C) = W.shape
    stride = hparameters["stride"]
    pad = hparameters["pad"]
    n_H = (n_H_prev - f + 2 * pad) // stride + 1
    n_W = (n_W_prev - f + 2 * pad) // stride + 1
    Z = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    rows = subsample_rows(m, n_H, limit)
    A_prev_pad = zero_pad(A_prev[:rows[-1][0] + 1], pad)
    for i, h in rows:
        a_prev_pad = A_prev_pad[i]
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f
                a_slice_prev = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]
                Z[i, h, w, c] = conv_single_step(a_slice_prev, W[:, :, :, c],
                                                 b[:, :, :, c])
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ, cache, limit=None):
    (A_prev, W, b, hparameters) = cache
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    (f, f, n_C_prev, n_C) = W.shape
    stride = hparameters["stride"]
    pad = hparameters["pad"]
    (m, n_H, n_W, n_C) = dZ.shape
    dA_prev = np.zeros(A_prev.shape, dtype=dZ.dtype)
    dW = np.zeros(W.shape, dtype=dZ.dtype)
    db = np.zeros(b.shape, dtype=dZ.dtype)
    rows = subsample_rows(m, n_H, limit)
    m_used = rows[-1][0] + 1
    A_prev_pad = zero_pad(A_prev[:m_used], pad)
    dA_prev_pad = zero_pad(dA_prev[:m_used], pad)
    for i, h in rows:
        a_prev_pad = A_prev_pad[i]
        da_prev_pad = dA_prev_pad[i]
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f
                a_slice = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]
                da_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :] += \
                    W[:, :, :, c] * dZ[i, h, w, c]
                dW[:, :, :, c] += a_slice * dZ[i, h, w, c]
                db[:, :, :, c] += dZ[i, h, w, c]
    for i in range(m_used):
        dA_prev[i, :, :, :] = dA_prev_pad[i, pad:pad + n_H_prev, pad:pad + n_W_prev, :]
    return dA_prev, dW, db


def pool_forward(A_prev, hparameters, mode="max", limit=None):
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    f = hparameters["f"]
    stride = hparameters["stride"]
    n_H = int(1 + (n_H_prev - f) / stride)
    n_W = int(1 + (n_W_prev - f) / stride)
    n_C = n_C_prev
    A = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    for i, h in subsample_rows(m, n_H, limit):
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f
                a_prev_slice = A_prev[i, vert_start:vert_end, horiz_start:horiz_end, c]
                if mode == "max":
                    A[i, h, w, c] = np.max(a_prev_slice)
                elif mode == "average":
                    A[i, h, w, c] = np.average(a_prev_slice)
    return A, (A_prev, hparameters)


def create_mask_from_window(x):
    return x == np.max(x)


def distribute_value(dz, shape):
    (n_H, n_W) = shape
    average = dz / (n_H * n_W)
    return np.zeros(shape, dtype=np.result_type(dz)) + average


def pool_backward(dA, cache, mode="max", limit=None):
    (A_prev, hparameters) = cache
    stride = hparameters["stride"]
    f = hparameters["f"]
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros(A_prev.shape, dtype=dA.dtype)
    for i, h in subsample_rows(m, n_H, limit):
        a_prev = A_prev[i]
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f
                if mode == "max":
                    a_prev_slice = a_prev[vert_start:vert_end, horiz_start:horiz_end, c]
                    mask = create_mask_from_window(a_prev_slice)
                    dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += \
                        mask * dA[i, h, w, c]
                elif mode == "average":
                    da = dA[i, h, w, c]
                    shape = (f, f)
                    dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += \
                        distribute_value(da, shape)
    return dA_prev
