"""Benchmark cnnext's conv and pool kernels against three other implementations.

Run ``python -m cnnext.bench`` (``--help`` lists the options; ``--quick`` for a
short run, ``--json`` to keep every number, ``--render run.json --markdown`` to
print a kept run as the README's table). In one process,
for every case of issue 3, forward and backward, float32 and float64, it times
side by side, alternating the contenders and taking medians over repeats:

cnnext
    the package under test.
torch
    PyTorch CPU, when installed: the NHWC arrays are seen as channels_last
    tensors through ``torch.from_numpy(A).permute(0, 3, 1, 2)``; the weight
    layout change and the conversion of the results back to contiguous NHWC
    numpy arrays are inside the timing. Backward is
    ``aten.convolution_backward`` (dA_prev, dW, db) and the pooling backward
    kernels; max pooling's backward gets its argmax indices from a forward
    call outside the timing, as an autograd user would have them.
numpy
    a vectorised numpy version (``sliding_window_view`` + ``tensordot``,
    scatter-adds over the f*f window offsets for the backward).
seed
    a straightforward numpy transcription of the seed's loops, timed on a
    subsample of (example, output row) pairs, reported per output element and
    extrapolated to the full case.

It also measures the GFLOP/s of a large matmul of each dtype in the same run,
the peak traced memory (tracemalloc) of one cnnext call minus the size of its
outputs ("scratch"), and the growth of traced memory and RSS over repeated
calls (leak check).

Environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on some machines
for old OpenBLAS builds, slow a current numpy's OpenBLAS down. When either is
set, ``python -m cnnext.bench`` runs itself again without both (say
``--keep-openblas-env`` to keep them); the header reports it, and which BLAS
kernel and thread count threadpoolctl finds.
"""
import argparse
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import cnnext

# (m, H, W, C, f, n_C, stride, pad)
CONV_CASES = {
    "seed": (10, 4, 4, 3, 2, 8, 2, 2),
    "signs": (64, 64, 64, 3, 4, 8, 1, 2),
    "lenet": (64, 28, 28, 1, 5, 32, 1, 2),
    "resnet": (32, 56, 56, 64, 3, 64, 1, 1),
    "strided": (32, 32, 32, 32, 3, 64, 2, 1),
}
# (m, H, W, C, f, stride)
POOL_CASES = {
    "seed": (5, 5, 3, 2, 2, 1),
    "signs": (64, 64, 64, 8, 8, 8),
    "resnet": (32, 56, 56, 64, 2, 2),
    "overlap": (32, 56, 56, 64, 3, 1),
}
OPS = ("conv_fwd", "conv_bwd", "max_fwd", "max_bwd", "avg_fwd", "avg_bwd")
OP_GROUPS = {
    "conv": ("conv_fwd", "conv_bwd"),
    "pool": ("max_fwd", "max_bwd", "avg_fwd", "avg_bwd"),
    "max": ("max_fwd", "max_bwd"),
    "avg": ("avg_fwd", "avg_bwd"),
    "fwd": ("conv_fwd", "max_fwd", "avg_fwd"),
    "bwd": ("conv_bwd", "max_bwd", "avg_bwd"),
}
DTYPES = ("float32", "float64")
CONTENDERS = ("cnnext", "torch", "numpy", "seed")
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_UNSET_MARK = "CNNEXT_BENCH_UNSET_OPENBLAS"
SCRATCH_LIMIT_MIB = 64.0
# Agreement of a contender's result with cnnext's: max |x - y| / max |y|.
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}


# --------------------------------------------------------------------------
# The seed's loops, transcribed (numpy arrays of the input dtype instead of
# float64, explicit slices instead of X[pad:-pad], which breaks for pad=0).
# ``limit`` runs only the first ``limit`` (example, output row) pairs, so a
# subsample of a large case can be timed; None runs them all.
# --------------------------------------------------------------------------

def _rows(m, n_H, limit):
    pairs = itertools.product(range(m), range(n_H))
    return list(pairs if limit is None else itertools.islice(pairs, limit))


def seed_zero_pad(X, pad):
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), "constant",
                  constant_values=((0, 0), (0, 0), (0, 0), (0, 0)))


def seed_conv_single_step(a_slice_prev, W, b):
    s = a_slice_prev * W
    Z = np.sum(s)
    # The seed writes float(b); numpy 2 refuses float() of a (1, 1, 1) array.
    Z = Z + b.item()
    return Z


def seed_conv_forward(A_prev, W, b, hparameters, limit=None):
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    (f, f, n_C_prev, n_C) = W.shape
    stride = hparameters["stride"]
    pad = hparameters["pad"]
    n_H = (n_H_prev - f + 2 * pad) // stride + 1
    n_W = (n_W_prev - f + 2 * pad) // stride + 1
    Z = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    rows = _rows(m, n_H, limit)
    A_prev_pad = seed_zero_pad(A_prev[:rows[-1][0] + 1], pad)
    for i, h in rows:
        a_prev_pad = A_prev_pad[i]
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f
                a_slice_prev = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]
                Z[i, h, w, c] = seed_conv_single_step(a_slice_prev, W[:, :, :, c],
                                                      b[:, :, :, c])
    return Z, (A_prev, W, b, hparameters)


def seed_conv_backward(dZ, cache, limit=None):
    (A_prev, W, b, hparameters) = cache
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    (f, f, n_C_prev, n_C) = W.shape
    stride = hparameters["stride"]
    pad = hparameters["pad"]
    (m, n_H, n_W, n_C) = dZ.shape
    dA_prev = np.zeros(A_prev.shape, dtype=dZ.dtype)
    dW = np.zeros(W.shape, dtype=dZ.dtype)
    db = np.zeros(b.shape, dtype=dZ.dtype)
    rows = _rows(m, n_H, limit)
    m_used = rows[-1][0] + 1
    A_prev_pad = seed_zero_pad(A_prev[:m_used], pad)
    dA_prev_pad = seed_zero_pad(dA_prev[:m_used], pad)
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


def seed_pool_forward(A_prev, hparameters, mode="max", limit=None):
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    f = hparameters["f"]
    stride = hparameters["stride"]
    n_H = int(1 + (n_H_prev - f) / stride)
    n_W = int(1 + (n_W_prev - f) / stride)
    n_C = n_C_prev
    A = np.zeros((m, n_H, n_W, n_C), dtype=A_prev.dtype)
    for i, h in _rows(m, n_H, limit):
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


def seed_create_mask_from_window(x):
    return x == np.max(x)


def seed_distribute_value(dz, shape):
    (n_H, n_W) = shape
    average = dz / (n_H * n_W)
    return np.zeros(shape, dtype=np.result_type(dz)) + average


def seed_pool_backward(dA, cache, mode="max", limit=None):
    (A_prev, hparameters) = cache
    stride = hparameters["stride"]
    f = hparameters["f"]
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros(A_prev.shape, dtype=dA.dtype)
    for i, h in _rows(m, n_H, limit):
        a_prev = A_prev[i]
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f
                if mode == "max":
                    a_prev_slice = a_prev[vert_start:vert_end, horiz_start:horiz_end, c]
                    mask = seed_create_mask_from_window(a_prev_slice)
                    dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += \
                        mask * dA[i, h, w, c]
                elif mode == "average":
                    da = dA[i, h, w, c]
                    shape = (f, f)
                    dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += \
                        seed_distribute_value(da, shape)
    return dA_prev


# --------------------------------------------------------------------------
# Vectorised numpy: stride tricks + tensordot.
# --------------------------------------------------------------------------

def _windows(A_pad, f, stride):
    """View (m, n_H, n_W, C, f, f) of every f x f window, ``stride`` apart."""
    return sliding_window_view(A_pad, (f, f), axis=(1, 2))[:, ::stride, ::stride]


def _scatter_add(dA_pad, parts, f, stride, n_H, n_W):
    """dA_pad[:, h*s+di, w*s+dj] += parts(di, dj)[:, h, w] for every offset."""
    for di in range(f):
        for dj in range(f):
            dA_pad[:, di:di + stride * (n_H - 1) + 1:stride,
                   dj:dj + stride * (n_W - 1) + 1:stride, :] += parts(di, dj)


def numpy_conv_forward(A_prev, W, b, hparameters):
    stride, pad = hparameters["stride"], hparameters["pad"]
    f = W.shape[0]
    A_pad = np.pad(A_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Z = np.tensordot(_windows(A_pad, f, stride), W, axes=([4, 5, 3], [0, 1, 2]))
    Z += b.reshape(-1)
    return Z, (A_prev, W, b, hparameters)


def numpy_conv_backward(dZ, cache):
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


def numpy_pool_forward(A_prev, hparameters, mode="max"):
    win = _windows(A_prev, hparameters["f"], hparameters["stride"])
    A = win.max(axis=(4, 5)) if mode == "max" else win.mean(axis=(4, 5))
    return A, (A_prev, hparameters)


def numpy_pool_backward(dA, cache, mode="max"):
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


# --------------------------------------------------------------------------
# PyTorch CPU on NHWC arrays seen as channels_last tensors.
# --------------------------------------------------------------------------

def _nchw(torch, X):
    """An NHWC numpy array as an NCHW tensor with channels_last memory (no copy)."""
    return torch.from_numpy(X).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)


def _nhwc(T):
    """An NCHW tensor back as a contiguous NHWC numpy array."""
    return T.permute(0, 2, 3, 1).contiguous().numpy()


def _torch_weight(torch, W):
    """(f, f, C, n_C) numpy -> (n_C, C, f, f) tensor, channels_last memory."""
    return torch.from_numpy(W).permute(3, 2, 0, 1).contiguous(
        memory_format=torch.channels_last)


def torch_conv_forward(torch, A_prev, W, b, hparameters):
    s, p = hparameters["stride"], hparameters["pad"]
    Z = torch.nn.functional.conv2d(_nchw(torch, A_prev), _torch_weight(torch, W),
                                   torch.from_numpy(b.reshape(-1)), stride=s, padding=p)
    return _nhwc(Z), (A_prev, W, b, hparameters)


def torch_conv_backward(torch, dZ, cache):
    A_prev, W, b, hparameters = cache
    s, p = hparameters["stride"], hparameters["pad"]
    n_C = W.shape[3]
    dA, dW, db = torch.ops.aten.convolution_backward(
        _nchw(torch, dZ), _nchw(torch, A_prev), _torch_weight(torch, W), [n_C],
        [s, s], [p, p], [1, 1], False, [0, 0], 1, [True, True, True])
    return (_nhwc(dA), dW.permute(2, 3, 1, 0).contiguous().numpy(),
            db.reshape(1, 1, 1, n_C).numpy())


def torch_pool_forward(torch, A_prev, hparameters, mode="max"):
    f, s = hparameters["f"], hparameters["stride"]
    fn = (torch.nn.functional.max_pool2d if mode == "max"
          else torch.nn.functional.avg_pool2d)
    return _nhwc(fn(_nchw(torch, A_prev), f, s)), (A_prev, hparameters)


def torch_max_indices(torch, A_prev, hparameters):
    """The argmax indices a torch forward pass keeps for the backward."""
    f, s = hparameters["f"], hparameters["stride"]
    return torch.ops.aten.max_pool2d_with_indices(_nchw(torch, A_prev), [f, f], [s, s])[1]


def torch_pool_backward(torch, dA, cache, mode="max", indices=None):
    A_prev, hparameters = cache
    f, s = hparameters["f"], hparameters["stride"]
    if mode == "max":
        g = torch.ops.aten.max_pool2d_with_indices_backward(
            _nchw(torch, dA), _nchw(torch, A_prev), [f, f], [s, s], [0, 0], [1, 1],
            False, indices)
    else:
        g = torch.ops.aten.avg_pool2d_backward(
            _nchw(torch, dA), _nchw(torch, A_prev), [f, f], [s, s], [0, 0], False,
            True, None)
    return _nhwc(g)


# --------------------------------------------------------------------------
# One benchmark row: inputs, contenders, timing, checks, memory.
# --------------------------------------------------------------------------

class Row:
    """The inputs and contenders of one (case, op, dtype).

    ``fns`` maps a contender to a call of it; the seed's takes the number of
    (example, output row) pairs to run. ``cnnext_masked_backward(rows)`` is
    cnnext's backward of the gradient zeroed outside ``rows``, what a
    subsampled seed backward computes.
    """

    def __init__(self, kind, case, op, dtype, torch):
        self.kind, self.case, self.op, self.dtype = kind, case, op, dtype
        rng = np.random.default_rng(0)
        randn = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
        self.flops = None
        if kind == "conv":
            m, H, Wd, C, f, n_C, stride, pad = CONV_CASES[case]
            n_H = (H - f + 2 * pad) // stride + 1
            n_W = (Wd - f + 2 * pad) // stride + 1
            self.shape_text = f"{CONV_CASES[case]}"
            A, W, b = randn(m, H, Wd, C), randn(f, f, C, n_C), randn(1, 1, 1, n_C)
            hp = {"stride": stride, "pad": pad}
            self.out_shape = (m, n_H, n_W, n_C)
            self.flops = 2.0 * m * n_H * n_W * n_C * f * f * C
            if op == "conv_fwd":
                args = (A, W, b, hp)
                self.fns = {"cnnext": lambda: cnnext.conv_forward(*args),
                            "numpy": lambda: numpy_conv_forward(*args),
                            "seed": lambda lim=None: seed_conv_forward(*args, limit=lim)}
                if torch is not None:
                    self.fns["torch"] = lambda: torch_conv_forward(torch, *args)
            else:
                self.flops *= 2
                dZ, cache = randn(*self.out_shape), (A, W, b, hp)
                self.fns = {"cnnext": lambda: cnnext.conv_backward(dZ, cache),
                            "numpy": lambda: numpy_conv_backward(dZ, cache),
                            "seed": lambda lim=None: seed_conv_backward(dZ, cache, lim)}
                if torch is not None:
                    self.fns["torch"] = lambda: torch_conv_backward(torch, dZ, cache)
                self.cnnext_masked_backward = lambda rows: cnnext.conv_backward(
                    _mask_rows(dZ, rows), cache)
        else:
            m, H, Wd, C, f, stride = POOL_CASES[case]
            self.shape_text = f"{POOL_CASES[case]}"
            mode = "max" if op.startswith("max") else "average"
            A, hp = randn(m, H, Wd, C), {"f": f, "stride": stride}
            self.out_shape = (m, (H - f) // stride + 1, (Wd - f) // stride + 1, C)
            if op.endswith("fwd"):
                self.fns = {"cnnext": lambda: cnnext.pool_forward(A, hp, mode),
                            "numpy": lambda: numpy_pool_forward(A, hp, mode),
                            "seed": lambda lim=None: seed_pool_forward(A, hp, mode, lim)}
                if torch is not None:
                    self.fns["torch"] = lambda: torch_pool_forward(torch, A, hp, mode)
            else:
                dA, cache = randn(*self.out_shape), (A, hp)
                self.fns = {"cnnext": lambda: cnnext.pool_backward(dA, cache, mode),
                            "numpy": lambda: numpy_pool_backward(dA, cache, mode),
                            "seed": lambda lim=None: seed_pool_backward(dA, cache, mode, lim)}
                if torch is not None:
                    idx = torch_max_indices(torch, A, hp) if mode == "max" else None
                    self.fns["torch"] = lambda: torch_pool_backward(torch, dA, cache,
                                                                    mode, idx)
                self.cnnext_masked_backward = lambda rows: cnnext.pool_backward(
                    _mask_rows(dA, rows), cache, mode)
        self.n_out = math.prod(self.out_shape)
        self.n_rows = self.out_shape[0] * self.out_shape[1]
        self.per_row = self.out_shape[2] * self.out_shape[3]


def _mask_rows(X, rows):
    """X with every (example, row) outside ``rows`` zeroed: what a subsampled
    seed backward effectively differentiates."""
    keep = np.zeros(X.shape[:2], dtype=bool)
    keep[tuple(np.array(rows).T)] = True
    return np.where(keep[:, :, None, None], X, X.dtype.type(0))


def _arrays(result):
    """The output arrays of a call (a forward's cache is not an output)."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], tuple):
        return [result[0]]  # (out, cache)
    return list(result)


def _max_rel_err(got, ref, sel=None):
    """max |got - ref| / max |ref| over the output arrays (at ``sel`` if given)."""
    err, scale = 0.0, 0.0
    for g, r in zip(_arrays(got), _arrays(ref)):
        if sel is not None:
            g, r = g[sel], r[sel]
        g, r = np.asarray(g, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            return float("inf")
        if r.size:
            err = max(err, float(np.max(np.abs(g - r))))
            scale = max(scale, float(np.max(np.abs(r))))
    return err / max(scale, 1e-30)


def _timed(fn, number):
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_was:
            gc.enable()


def _rss_bytes():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _call_timed(fn):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def run_row(row, cfg):
    """Time one row; return its result dict."""
    gc.collect()
    names = [n for n in CONTENDERS if n in row.fns and n in cfg.contenders]
    fns, number, checks = {}, {}, {}
    # One untimed call each: warm-up, calibration of the calls per sample, and
    # the result checked against cnnext's.
    ref, t_first = _call_timed(row.fns["cnnext"])
    seed_rows = None
    for name in names:
        t = t_first
        if name == "seed":
            seed = row.fns["seed"]
            t1 = _call_timed(lambda: seed(1))[1]  # one (example, row) pair
            lim = max(1, min(row.n_rows, int(cfg.seed_budget / max(t1, 1e-9))))
            seed_rows = _rows(row.out_shape[0], row.out_shape[1], lim)
            fns["seed"], number["seed"] = (lambda lim=lim: seed(lim)), 1
            got = seed(lim)
            if lim == row.n_rows:
                checks["seed"] = _max_rel_err(got, ref)
            elif row.op.endswith("fwd"):
                checks["seed"] = _max_rel_err(got, ref, tuple(np.array(seed_rows).T))
            else:
                checks["seed"] = _max_rel_err(got, row.cnnext_masked_backward(seed_rows))
            del got
            continue
        if name != "cnnext":
            got, t = _call_timed(row.fns[name])
            checks[name] = _max_rel_err(got, ref)
            del got
        fns[name] = row.fns[name]
        number[name] = max(1, min(100000, int(cfg.sample_time / max(t, 1e-9))))
    del ref
    samples = {n: [] for n in fns}
    order = list(fns)
    for r in range(cfg.repeats):
        k = r % len(order)
        for name in order[k:] + order[:k]:
            samples[name].append(_timed(fns[name], number[name]))
    res = {"kind": row.kind, "case": row.case, "op": row.op, "dtype": row.dtype,
           "shape": row.shape_text, "out_shape": list(row.out_shape),
           "flops": row.flops, "repeats": cfg.repeats, "calls_per_sample": number,
           "samples_s": samples, "max_rel_err_vs_cnnext": checks,
           "loadavg_1min": os.getloadavg()[0]}
    med = {n: statistics.median(v) for n, v in samples.items()}
    res["median_s"] = med
    res["min_s"] = {n: min(v) for n, v in samples.items()}
    if "seed" in med:
        n_sub = len(seed_rows) * row.per_row
        res["seed_subsample"] = {"rows": len(seed_rows), "of_rows": row.n_rows,
                                 "out_elements": n_sub, "of_out_elements": row.n_out}
        res["seed_s_per_out_element"] = med["seed"] / n_sub
        res["seed_s_extrapolated"] = med["seed"] / n_sub * row.n_out
    c = med["cnnext"]
    if "torch" in med:
        res["ratio_torch_over_cnnext"] = med["torch"] / c
    if "seed" in med:
        res["ratio_seed_over_cnnext"] = res["seed_s_extrapolated"] / c
    if row.flops:
        res["gflops"] = {n: row.flops / med[n] / 1e9 for n in med if n != "seed"}
    res.update(_memory(row, cfg, c))
    return res


def _memory(row, cfg, t_call):
    """Scratch (peak traced minus outputs) of one cnnext call; leak check."""
    fn = row.fns["cnnext"]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        out_bytes = sum(a.nbytes for a in _arrays(out))
        del out
        n = int(max(cfg.leak_min, min(cfg.leak_max, cfg.leak_time / max(t_call, 1e-9))))
        fn()
        gc.collect()
        traced0, rss0 = tracemalloc.get_traced_memory()[0], _rss_bytes()
        for _ in range(n):
            fn()
        gc.collect()
        traced1, rss1 = tracemalloc.get_traced_memory()[0], _rss_bytes()
    finally:
        tracemalloc.stop()
    traced = traced1 - traced0
    rss = None if rss0 is None else rss1 - rss0
    return {"scratch_mib": max(0, peak - out_bytes) / 2**20,
            "output_mib": out_bytes / 2**20,
            "leak": {"calls": n, "traced_growth_bytes": traced, "rss_growth_bytes": rss,
                     "suspect": bool(traced > 64 * 1024
                                     or (rss is not None and rss > 64 * 2**20))}}


def matmul_gflops(dtype, n, repeats):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    t = statistics.median(_timed(lambda: np.matmul(a, b, out=c), 1)
                          for _ in range(max(1, repeats)))
    return 2.0 * n ** 3 / t / 1e9


# --------------------------------------------------------------------------
# Environment, header, tables.
# --------------------------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _threadpool_info():
    """threadpoolctl's list of BLAS / OpenMP pools, or None without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return threadpool_info()


def environment(cfg, torch):
    pools = _threadpool_info()
    env = {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "cpu": _cpu_model(), "cpus_available": len(os.sched_getaffinity(0)),
           "loadavg_start": os.getloadavg(), "python": platform.python_version(),
           "numpy": np.__version__, "cnnext": cnnext.__version__,
           "torch": None if torch is None else torch.__version__,
           "threads": cfg.threads,
           "openblas_env_unset_by_bench": os.environ.get(_UNSET_MARK) or None,
           "openblas_env": {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ},
           "threadpools": None if pools is None else [
               {k: d.get(k) for k in ("internal_api", "version", "architecture",
                                      "num_threads", "threading_layer", "filepath")}
               for d in pools]}
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        env["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    return env


def _header_lines(env, matmul):
    lines = [f"cnnext {env['cnnext']} benchmark, {env['date_utc']} UTC",
             f"machine: {env['cpu']}, {env['cpus_available']} CPUs available, "
             f"load average at start {env['loadavg_start'][0]:.2f}",
             f"python {env['python']}, numpy {env['numpy']}, "
             f"torch {env['torch'] or 'not installed'}"
             + (f" (threads {env['torch_threads']}, oneDNN "
                f"{'on' if env['torch_mkldnn'] else 'off'})" if env['torch'] else ""),
             f"threads: {env['threads']} for every contender (threadpoolctl limits "
             f"on BLAS and OpenMP, torch.set_num_threads)" if env["threadpools"] is not None
             else f"threads: torch {env['threads']}; threadpoolctl is not installed, so "
                  "BLAS and OpenMP run with their own defaults"]
    for d in env["threadpools"] or []:
        lines.append(f"  threadpool: {d['internal_api']} {d['version'] or ''} "
                     f"kernel={d['architecture'] or '-'} threads={d['num_threads']} "
                     f"({os.path.basename(d['filepath'] or '')})")
    if env["openblas_env_unset_by_bench"]:
        lines.append(f"OpenBLAS: ran without {env['openblas_env_unset_by_bench']} "
                     "(they slow a current OpenBLAS; --keep-openblas-env keeps them)")
    elif env["openblas_env"]:
        lines.append(f"OpenBLAS: WARNING {env['openblas_env']} kept: BLAS may run a "
                     "slower kernel than this CPU allows")
    else:
        lines.append("OpenBLAS: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE not set")
    for dt, (n, g) in matmul.items():
        lines.append(f"matmul {n}x{n} @ {n}x{n} {dt} (numpy): {g:.1f} GFLOP/s")
    return lines


def _fmt_ms(s):
    if s is None:
        return "-"
    ms = s * 1e3
    if ms >= 1000:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 0.1:
        return f"{ms:.3f}"
    return f"{ms:.4f}"


def _fmt_gflops(g):
    if g is None:
        return "-"
    return f"{g:.1f}" if g >= 1 else f"{g:.2g}"


def _fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:.0f}x" if x >= 100 else f"{x:.2f}x"


COLUMNS = ("case", "op", "dtype", "cnnext ms", "torch ms", "torch/cnnext",
           "numpy ms", "seed ms (extrap.)", "seed us/out", "seed/cnnext",
           "cnnext GFLOP/s", "torch GFLOP/s", "scratch MiB", "leak")


def table_rows(results):
    out = []
    for r in results:
        med = r["median_s"]
        g = r.get("gflops", {})
        sub = r.get("seed_subsample")
        seed = _fmt_ms(r.get("seed_s_extrapolated"))
        if sub and sub["rows"] < sub["of_rows"]:
            seed = "~" + seed
        leak = r["leak"]
        out.append((r["case"], r["op"].replace("_", " "), r["dtype"],
                    _fmt_ms(med["cnnext"]), _fmt_ms(med.get("torch")),
                    _fmt_ratio(r.get("ratio_torch_over_cnnext")),
                    _fmt_ms(med.get("numpy")), seed,
                    "-" if "seed_s_per_out_element" not in r
                    else f"{r['seed_s_per_out_element'] * 1e6:.2f}",
                    _fmt_ratio(r.get("ratio_seed_over_cnnext")),
                    _fmt_gflops(g.get("cnnext")), _fmt_gflops(g.get("torch")),
                    f"{r['scratch_mib']:.1f}",
                    "SUSPECT" if leak["suspect"] else "no"))
    return out


def format_table(results, markdown=False):
    rows = table_rows(results)
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |",
                 "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(COLUMNS), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def summary_lines(results, matmul):
    lines = []
    for r in results:
        if r["kind"] == "conv" and r["case"] == "resnet" and r["dtype"] in matmul:
            n, peak = matmul[r["dtype"]]
            g = r["gflops"]
            lines.append(f"resnet {r['op'].replace('_', ' ')} {r['dtype']}: cnnext "
                         f"{g['cnnext']:.1f} GFLOP/s = {g['cnnext'] / peak:.0%} of matmul"
                         + (f", torch {g['torch']:.1f} = {g['torch'] / peak:.0%}"
                            if "torch" in g else "") + " (target >= 80%)")
    with_torch = [r for r in results if "ratio_torch_over_cnnext" in r]
    if with_torch:
        slow = [f"{r['case']} {r['op']} {r['dtype']} ({r['ratio_torch_over_cnnext']:.2f}x)"
                for r in with_torch if r["ratio_torch_over_cnnext"] < 1.0]
        lines.append(f"torch/cnnext >= 1: {len(with_torch) - len(slow)} of "
                     f"{len(with_torch)} rows" + (f"; below: {', '.join(slow)}" if slow else ""))
        small = [r for r in with_torch if r["case"] == "seed"]
        if small:
            below = [f"{r['op']} {r['dtype']} ({r['ratio_torch_over_cnnext']:.2f}x)"
                     for r in small if r["ratio_torch_over_cnnext"] < 3.0]
            lines.append(f"seed-sized calls torch/cnnext >= 3: {len(small) - len(below)} "
                         f"of {len(small)}" + (f"; below: {', '.join(below)}" if below else ""))
    conv_seed = [r for r in results if r["kind"] == "conv" and "ratio_seed_over_cnnext" in r]
    if conv_seed:
        below = [f"{r['case']} {r['op']} {r['dtype']} ({r['ratio_seed_over_cnnext']:.0f}x)"
                 for r in conv_seed if r["ratio_seed_over_cnnext"] < 1000]
        lines.append(f"conv seed-loops/cnnext >= 1000: {len(conv_seed) - len(below)} of "
                     f"{len(conv_seed)}" + (f"; below: {', '.join(below)}" if below else ""))
    big = [f"{r['case']} {r['op']} {r['dtype']} ({r['scratch_mib']:.0f} MiB)"
           for r in results if r["scratch_mib"] >= SCRATCH_LIMIT_MIB]
    lines.append(f"scratch < {SCRATCH_LIMIT_MIB:.0f} MiB: {len(results) - len(big)} of "
                 f"{len(results)}" + (f"; over: {', '.join(big)}" if big else ""))
    leaks = [f"{r['case']} {r['op']} {r['dtype']}" for r in results if r["leak"]["suspect"]]
    lines.append("leak check (traced growth > 64 KiB or RSS growth > 64 MiB over repeated "
                 "calls): " + (f"SUSPECT {', '.join(leaks)}" if leaks else "none"))
    bad = [f"{r['case']} {r['op']} {r['dtype']} {n} ({e:.1e})"
           for r in results for n, e in r["max_rel_err_vs_cnnext"].items()
           if not e <= TOLERANCE[r["dtype"]]]
    lines.append("results agree with cnnext: " + ("yes, every contender and row" if not bad
                                                  else f"NO: {', '.join(bad)}"))
    return lines


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------

def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m cnnext.bench",
        description="Time cnnext's conv and pool kernels, forward and backward, "
                    "against PyTorch CPU, vectorised numpy and the seed's loops.")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats, shorter samples, smaller seed-loop subsample "
                        "and matmul")
    p.add_argument("--cases", type=_split, default=None,
                   help="comma list of case names (seed, signs, lenet, resnet, strided, "
                        "overlap); 'conv:NAME' or 'pool:NAME' picks one kind")
    p.add_argument("--ops", type=_split, default=None,
                   help=f"comma list of {', '.join(OPS)} or groups "
                        f"{', '.join(OP_GROUPS)}")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per contender (median taken); default 5, "
                        "--quick 3")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every contender (default: what BLAS is set to "
                        "use, e.g. by OMP_NUM_THREADS, else all available CPUs)")
    p.add_argument("--json", metavar="PATH", help="write every number to PATH")
    p.add_argument("--markdown", action="store_true",
                   help="print a README-ready markdown table")
    p.add_argument("--render", metavar="PATH",
                   help="run nothing: print the report of a --json file again "
                        "(with --markdown for the README)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--matmul-n", type=int, default=None,
                   help="size of the reference matmul (default 4096, --quick 2048; "
                        "0 skips it)")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="do not re-run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    known = set(CONV_CASES) | set(POOL_CASES)
    for c in args.cases or []:
        kind, _, name = c.rpartition(":")
        if kind not in ("", "conv", "pool") or name not in known or (
                kind == "conv" and name not in CONV_CASES) or (
                kind == "pool" and name not in POOL_CASES):
            p.error(f"unknown case {c!r}; known: conv {sorted(CONV_CASES)}, "
                    f"pool {sorted(POOL_CASES)}")
    for o in args.ops or []:
        if o not in OPS and o not in OP_GROUPS:
            p.error(f"unknown op {o!r}; known: {', '.join(OPS + tuple(OP_GROUPS))}")
    return args


class Config:
    def __init__(self, args, threads, have_torch):
        quick = args.quick
        self.repeats = args.repeats or (3 if quick else 5)
        self.sample_time = 0.01 if quick else 0.05   # seconds per timed sample
        self.seed_budget = 0.03 if quick else 0.25   # seconds per seed-loop sample
        self.leak_time = 0.2 if quick else 2.0       # seconds of leak-check calls
        self.leak_min, self.leak_max = (3, 20) if quick else (5, 200)
        self.matmul_n = 2048 if quick else 4096
        if args.matmul_n is not None:
            self.matmul_n = args.matmul_n
        self.threads = threads
        self.contenders = [c for c in CONTENDERS if c != "torch" or have_torch]


def select_rows(args):
    ops = set()
    for o in args.ops or OPS:
        ops.update(OP_GROUPS.get(o, (o,)))
    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    cases = args.cases

    def wanted(kind, name):
        return cases is None or name in cases or f"{kind}:{name}" in cases

    out = []
    for name in CONV_CASES:
        if wanted("conv", name):
            out += [("conv", name, op, dt) for op in OPS[:2] if op in ops for dt in dtypes]
    for name in POOL_CASES:
        if wanted("pool", name):
            out += [("pool", name, op, dt) for op in OPS[2:] if op in ops for dt in dtypes]
    return out


def _reexec_without_openblas_env(argv):
    """Run the benchmark again without the OpenBLAS variables (read at load)."""
    found = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
    if not found:
        return
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    env[_UNSET_MARK] = " ".join(f"{k}={v}" for k, v in found.items())
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "cnnext.bench", *argv], env)


def main(argv=None):
    """Run the benchmark; return the results dict (also written by --json)."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.render:
        with open(args.render) as fh:
            out = json.load(fh)
        print_report(out, args.markdown)
        return out
    if from_command_line and not args.keep_openblas_env:
        _reexec_without_openblas_env(argv)

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    threads = args.threads
    if threads is None:
        blas = [d["num_threads"] for d in _threadpool_info() or [] if d["user_api"] == "blas"]
        threads = blas[0] if blas else len(os.sched_getaffinity(0))
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=threads)
    except ImportError:
        limiter = None
    if torch is not None:
        torch.set_num_threads(threads)
    threads_before = cnnext.get_num_threads()
    cnnext.set_num_threads(threads)
    try:
        cfg = Config(args, threads, torch is not None)
        env = environment(cfg, torch)
        dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
        matmul = {}
        if cfg.matmul_n > 0:
            for dt in dtypes:
                matmul[dt] = (cfg.matmul_n, matmul_gflops(dt, cfg.matmul_n, cfg.repeats))
        header = _header_lines(env, matmul)
        print("\n".join(f"- {h.strip()}" for h in header) if args.markdown
              else "\n".join(header), flush=True)
        results = []
        t_start = time.perf_counter()
        selected = select_rows(args)
        for k, (kind, case, op, dt) in enumerate(selected, 1):
            row = Row(kind, case, op, dt, torch)
            results.append(run_row(row, cfg))
            del row
            cells = dict(zip(COLUMNS, table_rows(results[-1:])[0]))
            print(f"[{k}/{len(selected)}] {kind} {case} {op} {dt}: "
                  + ", ".join(f"{c} {cells[c]}" for c in COLUMNS[3:10]),
                  file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - t_start
    finally:
        cnnext.set_num_threads(threads_before)
        if limiter is not None:
            limiter.restore_original_limits()
    env["loadavg_end"] = os.getloadavg()
    env["elapsed_s"] = elapsed
    out = {"environment": env, "config": dict(vars(cfg)),
           "matmul_gflops": {dt: {"n": n, "gflops": g} for dt, (n, g) in matmul.items()},
           "rows": results, "summary": summary_lines(results, matmul)}
    print_report(out, args.markdown, header=False)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"wrote {args.json}")
    return out


def print_report(out, markdown=False, header=True):
    """Print the header (optional), table, summary and footer of a run."""
    if header:
        matmul = {dt: (v["n"], v["gflops"]) for dt, v in out["matmul_gflops"].items()}
        lines = _header_lines(out["environment"], matmul)
        print("\n".join(f"- {h.strip()}" for h in lines) if markdown else "\n".join(lines))
    print()
    print(format_table(out["rows"], markdown=markdown))
    print()
    print("\n".join(f"- {s}" for s in out["summary"]) if markdown
          else "\n".join(out["summary"]))
    env = out["environment"]
    print(f"\n{len(out['rows'])} rows in {env['elapsed_s']:.0f} s; load average at end "
          f"{env['loadavg_end'][0]:.2f}. Times: median of {out['config']['repeats']} "
          "samples, contenders alternated; seed ms with ~ is extrapolated from a "
          "subsample; torch max-pool backward gets its indices from an untimed forward.")


def console_main(argv=None):
    """The ``cnnext-bench`` command: run, print, exit 0."""
    main(argv)
    return 0


if __name__ == "__main__":
    main()
