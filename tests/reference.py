"""The tests' one independent numpy reference of the eight functions.

The reference follows the seed document's formulas and never imports cnnext.
It always computes in float64 (whatever the input dtype), so a float32 result
of cnnext is compared with the exact-ish answer, not with another float32
computation.

Two versions are kept:

* ``ref``: vectorised for speed. Each convolution / pooling is a loop over
  the f*f offsets (di, dj) of the window; for one offset, the inputs seen by
  every output pixel are the strided slice
  ``A_pad[:, di : di + stride*(n_H-1) + 1 : stride, dj : ... : stride, :]``,
  and the work for that offset is one ``einsum`` over the channels. Summing
  over the offsets gives exactly the seed's window sums.
* ``seed_ref``: the seed's loops transcribed literally (per output pixel and
  channel), only for tiny shapes, used to check ``ref`` itself.

Test modules use it through the fixtures of ``conftest.py`` (``ref``,
``seed_ref``, ``assert_close``) or import it directly (``from reference
import ref_conv_forward``), which hypothesis tests and module-level helpers
need: ``conftest.py`` puts this folder on ``sys.path``.
"""
import numpy as np

# Relative tolerance of a comparison against the float64 reference, per
# result dtype. float64 is held to the 1e-10 relative.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


# --------------------------------------------------------------------------
# Vectorised reference
# --------------------------------------------------------------------------

def _f64(x):
    return np.asarray(x, dtype=np.float64)


def out_size(n_prev, f, pad, stride):
    # The seed's formula: floor((n_prev - f + 2*pad) / stride) + 1.
    return (n_prev - f + 2 * pad) // stride + 1


def _offset_slice(di, dj, n_H, n_W, stride):
    """Index of the inputs that window offset (di, dj) of every output pixel sees."""
    return (slice(None),
            slice(di, di + stride * (n_H - 1) + 1, stride),
            slice(dj, dj + stride * (n_W - 1) + 1, stride),
            slice(None))


def ref_zero_pad(X, pad):
    X = np.asarray(X)
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant",
                  constant_values=0)


def ref_conv_single_step(a_slice_prev, W, b):
    # The seed does float(b); numpy >= 2.4 refuses float() of a (1,1,1) array,
    # so take the single element explicitly.
    return np.sum(_f64(a_slice_prev) * _f64(W)) + _f64(b).reshape(())


def ref_conv_forward(A_prev, W, b, hparameters):
    A, W, b = _f64(A_prev), _f64(W), _f64(b)
    stride, pad = hparameters["stride"], hparameters["pad"]
    m, H, Wd, C = A.shape
    f, _, _, n_C = W.shape
    n_H, n_W = out_size(H, f, pad, stride), out_size(Wd, f, pad, stride)
    A_pad = ref_zero_pad(A, pad)
    Z = np.zeros((m, n_H, n_W, n_C))
    for di in range(f):
        for dj in range(f):
            window = A_pad[_offset_slice(di, dj, n_H, n_W, stride)]
            Z += np.einsum("mhwc,ck->mhwk", window, W[di, dj])
    Z += b.reshape(n_C)
    return Z


def ref_conv_backward(dZ, cache):
    A_prev, W, b, hparameters = cache
    A, W, dZ = _f64(A_prev), _f64(W), _f64(dZ)
    stride, pad = hparameters["stride"], hparameters["pad"]
    m, H, Wd, C = A.shape
    f = W.shape[0]
    n_H, n_W = dZ.shape[1], dZ.shape[2]
    A_pad = ref_zero_pad(A, pad)
    dA_pad = np.zeros(A_pad.shape)
    dW = np.zeros(W.shape)
    for di in range(f):
        for dj in range(f):
            idx = _offset_slice(di, dj, n_H, n_W, stride)
            # da_prev_pad[window] += W[:, :, :, c] * dZ[i, h, w, c], summed over c
            dA_pad[idx] += np.einsum("mhwk,ck->mhwc", dZ, W[di, dj])
            # dW[:, :, :, c] += a_slice * dZ[i, h, w, c], summed over i, h, w
            dW[di, dj] = np.einsum("mhwc,mhwk->ck", A_pad[idx], dZ)
    # Crop the padding with explicit bounds (the seed's [pad:-pad] is empty
    # for pad = 0).
    dA = dA_pad[:, pad:pad + H, pad:pad + Wd, :]
    db = dZ.sum(axis=(0, 1, 2)).reshape(np.shape(b))
    return dA, dW, db


def _pool_windows(A, f, stride):
    """(f*f, m, n_H, n_W, C): entry k = di*f + dj is offset (di, dj) of every window."""
    m, H, Wd, C = A.shape
    n_H, n_W = out_size(H, f, 0, stride), out_size(Wd, f, 0, stride)
    return np.stack([A[_offset_slice(di, dj, n_H, n_W, stride)]
                     for di in range(f) for dj in range(f)])


def ref_pool_forward(A_prev, hparameters, mode="max"):
    A = _f64(A_prev)
    windows = _pool_windows(A, hparameters["f"], hparameters["stride"])
    if mode == "max":
        return np.max(windows, axis=0)     # NaN propagates, as np.max does
    if mode == "average":
        return np.mean(windows, axis=0)
    raise ValueError(mode)


def ref_pool_backward(dA, cache, mode="max"):
    A_prev, hparameters = cache
    A, dA = _f64(A_prev), _f64(dA)
    f, stride = hparameters["f"], hparameters["stride"]
    n_H, n_W = dA.shape[1], dA.shape[2]
    dA_prev = np.zeros(A.shape)
    if mode == "max":
        window_max = np.max(_pool_windows(A, f, stride), axis=0)
    for di in range(f):
        for dj in range(f):
            idx = _offset_slice(di, dj, n_H, n_W, stride)
            if mode == "max":
                # mask = (x == max(x)): every tied entry gets the gradient
                dA_prev[idx] += (A[idx] == window_max) * dA
            elif mode == "average":
                dA_prev[idx] += dA / (f * f)
            else:
                raise ValueError(mode)
    return dA_prev


def ref_create_mask_from_window(x):
    x = np.asarray(x)
    return x == np.max(x)


def ref_distribute_value(dz, shape):
    n_H, n_W = shape
    return np.zeros(shape) + _f64(dz) / (n_H * n_W)


# --------------------------------------------------------------------------
# The seed's loops, literally (tiny shapes only)
# --------------------------------------------------------------------------

def seed_conv_forward(A_prev, W, b, hparameters):
    A_prev, W, b = _f64(A_prev), _f64(W), _f64(b)
    m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
    f, _, _, n_C = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    n_H = int((n_H_prev - f + 2 * pad) // stride) + 1
    n_W = int((n_W_prev - f + 2 * pad) // stride) + 1
    Z = np.zeros((m, n_H, n_W, n_C))
    A_prev_pad = ref_zero_pad(A_prev, pad)
    for i in range(m):
        a_prev_pad = A_prev_pad[i]
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    a_slice = a_prev_pad[vs:vs + f, hs:hs + f, :]
                    Z[i, h, w, c] = ref_conv_single_step(a_slice, W[:, :, :, c], b[:, :, :, c])
    return Z


def seed_conv_backward(dZ, cache):
    A_prev, W, b, hparameters = cache
    A_prev, W, b, dZ = _f64(A_prev), _f64(W), _f64(b), _f64(dZ)
    m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
    f = W.shape[0]
    stride, pad = hparameters["stride"], hparameters["pad"]
    _, n_H, n_W, n_C = dZ.shape
    dA_prev = np.zeros(A_prev.shape)
    dW = np.zeros(W.shape)
    db = np.zeros(b.shape)
    A_prev_pad = ref_zero_pad(A_prev, pad)
    dA_prev_pad = ref_zero_pad(dA_prev, pad)
    for i in range(m):
        a_prev_pad = A_prev_pad[i]
        da_prev_pad = dA_prev_pad[i]
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    a_slice = a_prev_pad[vs:vs + f, hs:hs + f, :]
                    da_prev_pad[vs:vs + f, hs:hs + f, :] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += a_slice * dZ[i, h, w, c]
                    db[:, :, :, c] += dZ[i, h, w, c]
        # explicit bounds instead of the seed's [pad:-pad] (empty for pad=0)
        dA_prev[i] = da_prev_pad[pad:pad + n_H_prev, pad:pad + n_W_prev]
    return dA_prev, dW, db


def seed_pool_forward(A_prev, hparameters, mode="max"):
    A_prev = _f64(A_prev)
    m, n_H_prev, n_W_prev, n_C = A_prev.shape
    f, stride = hparameters["f"], hparameters["stride"]
    n_H = int(1 + (n_H_prev - f) / stride)
    n_W = int(1 + (n_W_prev - f) / stride)
    A = np.zeros((m, n_H, n_W, n_C))
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    a_prev_slice = A_prev[i, vs:vs + f, hs:hs + f, c]
                    if mode == "max":
                        A[i, h, w, c] = np.max(a_prev_slice)
                    elif mode == "average":
                        A[i, h, w, c] = np.average(a_prev_slice)
    return A


def seed_pool_backward(dA, cache, mode="max"):
    A_prev, hparameters = cache
    A_prev, dA = _f64(A_prev), _f64(dA)
    f, stride = hparameters["f"], hparameters["stride"]
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros(A_prev.shape)
    for i in range(m):
        a_prev = A_prev[i]
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    if mode == "max":
                        a_prev_slice = a_prev[vs:vs + f, hs:hs + f, c]
                        mask = ref_create_mask_from_window(a_prev_slice)
                        dA_prev[i, vs:vs + f, hs:hs + f, c] += mask * dA[i, h, w, c]
                    elif mode == "average":
                        dA_prev[i, vs:vs + f, hs:hs + f, c] += ref_distribute_value(
                            dA[i, h, w, c], (f, f))
    return dA_prev


# --------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------

def assert_close(actual, expected, dtype=None, rtol=None):
    """Compare a cnnext result with the float64 reference.

    The tolerance is relative per dtype, with an absolute floor scaled by the
    largest reference magnitude (entries that cancel to near zero carry the
    rounding error of their large terms, not of their own size).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    if dtype is None:
        dtype = actual.dtype
    if rtol is None:
        rtol = RTOL[np.dtype(dtype)]
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    finite = expected[np.isfinite(expected)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol,
                               atol=rtol * scale, equal_nan=True)


# ---- the whole geometry (issue 12): per-window loops, as the seed's --------
# Geometry given explicitly: stride and dilation (h, w) pairs, pad (top,
# bottom, left, right), groups. Written from the definitions, not from
# cnnext's tap-by-tap code.

def tf_same_padding(n, f, stride, dilation):
    """TensorFlow's 'same': output ceil(n / stride), the odd pad after."""
    out = (n + stride - 1) // stride
    total = max((out - 1) * stride + (f - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


def _window_rows(n_pad, f, stride, dilation):
    n_out = (n_pad - (f - 1) * dilation - 1) // stride + 1
    return [[y * stride + k * dilation for k in range(f)] for y in range(n_out)]


def _padded(A, pad, fill):
    t, b, l, r = pad
    return np.pad(_f64(A), ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)


def ref_conv_general(A_prev, W, b, stride, pad, dilation, groups):
    """Z of a convolution of any geometry, window by window, in float64."""
    A, W = _padded(A_prev, pad, 0.0), _f64(W)
    m, _, _, C = A.shape
    f_h, f_w, C_g, n_C = W.shape
    n_C_g = n_C // groups
    rows = _window_rows(A.shape[1], f_h, stride[0], dilation[0])
    cols = _window_rows(A.shape[2], f_w, stride[1], dilation[1])
    Z = np.zeros((m, len(rows), len(cols), n_C))
    for y, ys in enumerate(rows):
        for x, xs in enumerate(cols):
            window = A[:, ys][:, :, xs]                    # (m, f_h, f_w, C)
            for c in range(n_C):
                g = c // n_C_g
                Z[:, y, x, c] = np.einsum("nijk,ijk->n", window[..., g * C_g:(g + 1) * C_g],
                                          W[..., c])
    if b is not None:
        Z += _f64(b).reshape(n_C)
    return Z


def ref_conv_general_backward(A_prev, W, dZ, stride, pad, dilation, groups):
    """(dA_prev, dW, db), window by window: each window's share of dZ."""
    A, W, dZ = _padded(A_prev, pad, 0.0), _f64(W), _f64(dZ)
    m, H, Wd, C = A_prev.shape
    f_h, f_w, C_g, n_C = W.shape
    n_C_g = n_C // groups
    rows = _window_rows(A.shape[1], f_h, stride[0], dilation[0])
    cols = _window_rows(A.shape[2], f_w, stride[1], dilation[1])
    dA, dW = np.zeros_like(A), np.zeros_like(W)
    for y, ys in enumerate(rows):
        for x, xs in enumerate(cols):
            window = A[:, ys][:, :, xs]
            for c in range(n_C):
                g = c // n_C_g
                ch = slice(g * C_g, (g + 1) * C_g)
                dW[..., c] += np.einsum("nijk,n->ijk", window[..., ch], dZ[:, y, x, c])
                contribution = np.einsum("ijk,n->nijk", W[..., c], dZ[:, y, x, c])
                for i, yy in enumerate(ys):
                    for j, xx in enumerate(xs):
                        dA[:, yy, xx, ch] += contribution[:, i, j]
    t, _, l, _ = pad
    return dA[:, t:t + H, l:l + Wd], dW, dZ.sum(axis=(0, 1, 2))


def ref_pool_general(A_prev, f, stride, pad, dilation, mode, count_include_pad=False):
    """Pooling of any geometry, window by window: max over the window's
    input entries (padding never wins), average over them (or over f_h*f_w
    with count_include_pad)."""
    m, H, Wd, C = A_prev.shape
    A = _padded(A_prev, pad, np.nan)                      # NaN marks padding
    rows = _window_rows(A.shape[1], f[0], stride[0], dilation[0])
    cols = _window_rows(A.shape[2], f[1], stride[1], dilation[1])
    out = np.zeros((m, len(rows), len(cols), C))
    for y, ys in enumerate(rows):
        for x, xs in enumerate(cols):
            window = A[:, ys][:, :, xs].reshape(m, -1, C)
            real = ~np.isnan(window[0, :, 0])
            if mode == "max":
                out[:, y, x] = window[:, real].max(axis=1)
            else:
                count = f[0] * f[1] if count_include_pad else real.sum()
                out[:, y, x] = window[:, real].sum(axis=1) / count
    return out


def ref_pool_general_backward(A_prev, dA, f, stride, pad, dilation, mode,
                              count_include_pad=False):
    """The seed's rule per window: max mode gives the window's gradient to
    every input entry equal to its max, average spreads it evenly."""
    m, H, Wd, C = A_prev.shape
    A = _padded(A_prev, pad, np.nan)
    dA = _f64(dA)
    rows = _window_rows(A.shape[1], f[0], stride[0], dilation[0])
    cols = _window_rows(A.shape[2], f[1], stride[1], dilation[1])
    d_prev = np.zeros_like(A)
    for y, ys in enumerate(rows):
        for x, xs in enumerate(cols):
            real = np.array([[not np.isnan(A[0, yy, xx, 0]) for xx in xs] for yy in ys])
            for n in range(m):
                for c in range(C):
                    window = A[n][np.ix_(ys, xs)][..., c]
                    if mode == "max":
                        share = (window == np.nanmax(window)) * dA[n, y, x, c]
                    else:
                        count = f[0] * f[1] if count_include_pad else real.sum()
                        share = real * dA[n, y, x, c] / count
                    for i, yy in enumerate(ys):
                        for j, xx in enumerate(xs):
                            d_prev[n, yy, xx, c] += share[i, j]
    t, _, l, _ = pad
    return d_prev[:, t:t + H, l:l + Wd]
