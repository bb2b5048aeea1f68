"""Convolution kernels, forward and backward.

Private: every argument was validated by ``cnnext/__init__.py``. Arrays are
C-contiguous NHWC of one floating dtype; ``W2`` is the filter bank seen as a
(f*f*n_C_prev, n_C) matrix, whose row order (di, dj, c) is the order in which
a window is laid out.

Two ways, picked by the layer's shape (_use_direct, conv_backward):

- direct: the register-tiled kernels of ``_conv_direct.h`` read the windows
  in place. The forward runs every layer with up to 64 channels in and out;
  at stride 1 with at most 8 output channels its tiles are vectors of output
  pixels over a planar copy of each image, otherwise vectors of output
  channels. The backward's weight gradient has tiles of its own; its input
  gradient is, at stride 1, the forward convolution of dZ with flipped
  filters; for few input channels each window's gradient is added onto dA
  in place; else it is one GEMM per chunk of output pixels, scattered back
  by row2im.
- im2row (wider layers): one row of the im2row matrix holds the
  f*f*n_C_prev inputs that one output pixel sees; a chunk of rows times
  ``W2`` is then one GEMM at BLAS speed, and row2im scatters the backward's
  rows back. Chunks bound the scratch memory whatever the batch size.

Both split their work over cnnext's threads (``_parallel.py``).
"""
from cython cimport floating
from libc.string cimport memcpy, memset

import numpy as np

from ._parallel import for_slices

cdef extern from "_conv_direct.h" nogil:
    enum:
        CNX_VL_f
        CNX_VL_d
        CNX_HALF_VL_f
        CNX_HALF_VL_d
    void cnx_add_f(float* dst, const float* src, Py_ssize_t n)
    void cnx_add_d(double* dst, const double* src, Py_ssize_t n)
    void cnx_conv_direct_row_half_f(const float* a, Py_ssize_t Wp, Py_ssize_t C,
                                    const float* w, const float* bias, Py_ssize_t f,
                                    Py_ssize_t nC, Py_ssize_t nC_pad, Py_ssize_t stride,
                                    Py_ssize_t y0, Py_ssize_t n_W, float* z)
    void cnx_conv_direct_row_half_d(const double* a, Py_ssize_t Wp, Py_ssize_t C,
                                    const double* w, const double* bias, Py_ssize_t f,
                                    Py_ssize_t nC, Py_ssize_t nC_pad, Py_ssize_t stride,
                                    Py_ssize_t y0, Py_ssize_t n_W, double* z)
    void cnx_conv_direct_row_f(const float* a, Py_ssize_t Wp, Py_ssize_t C,
                               const float* w, const float* bias, Py_ssize_t f,
                               Py_ssize_t nC, Py_ssize_t nC_pad, Py_ssize_t stride,
                               Py_ssize_t y0, Py_ssize_t n_W, float* z)
    void cnx_conv_direct_row_d(const double* a, Py_ssize_t Wp, Py_ssize_t C,
                               const double* w, const double* bias, Py_ssize_t f,
                               Py_ssize_t nC, Py_ssize_t nC_pad, Py_ssize_t stride,
                               Py_ssize_t y0, Py_ssize_t n_W, double* z)
    void cnx_conv_planar_image_f(const float* a, Py_ssize_t Hp, Py_ssize_t Wq,
                                 Py_ssize_t C, const float* w, const float* bias,
                                 Py_ssize_t f, Py_ssize_t nC, Py_ssize_t n_H,
                                 Py_ssize_t n_W, float* z)
    void cnx_conv_planar_image_d(const double* a, Py_ssize_t Hp, Py_ssize_t Wq,
                                 Py_ssize_t C, const double* w, const double* bias,
                                 Py_ssize_t f, Py_ssize_t nC, Py_ssize_t n_H,
                                 Py_ssize_t n_W, double* z)
    void cnx_planar_pad_f(const float* a, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                          Py_ssize_t pad, Py_ssize_t Hp, Py_ssize_t Wq, float* out)
    void cnx_planar_pad_d(const double* a, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                          Py_ssize_t pad, Py_ssize_t Hp, Py_ssize_t Wq, double* out)
    void cnx_conv_weight_grad_f(const float* a, Py_ssize_t Wp, Py_ssize_t C,
                                const float* dz, Py_ssize_t n_H, Py_ssize_t n_W,
                                Py_ssize_t nC_pad, Py_ssize_t f, Py_ssize_t stride,
                                float* dw)
    void cnx_conv_weight_grad_d(const double* a, Py_ssize_t Wp, Py_ssize_t C,
                                const double* dz, Py_ssize_t n_H, Py_ssize_t n_W,
                                Py_ssize_t nC_pad, Py_ssize_t f, Py_ssize_t stride,
                                double* dw)
    void cnx_conv_weight_grad_half_f(const float* a, Py_ssize_t Wp, Py_ssize_t C,
                                     const float* dz, Py_ssize_t n_H, Py_ssize_t n_W,
                                     Py_ssize_t nC_pad, Py_ssize_t f, Py_ssize_t stride,
                                     float* dw)
    void cnx_conv_weight_grad_half_d(const double* a, Py_ssize_t Wp, Py_ssize_t C,
                                     const double* dz, Py_ssize_t n_H, Py_ssize_t n_W,
                                     Py_ssize_t nC_pad, Py_ssize_t f, Py_ssize_t stride,
                                     double* dw)
    void cnx_conv_input_grad_row_f(float* da, Py_ssize_t Wp, Py_ssize_t C,
                                   const float* dz, const float* wt, Py_ssize_t f,
                                   Py_ssize_t nC, Py_ssize_t K_pad, Py_ssize_t stride,
                                   Py_ssize_t n_W, float* dcol)
    void cnx_conv_input_grad_row_d(double* da, Py_ssize_t Wp, Py_ssize_t C,
                                   const double* dz, const double* wt, Py_ssize_t f,
                                   Py_ssize_t nC, Py_ssize_t K_pad, Py_ssize_t stride,
                                   Py_ssize_t n_W, double* dcol)

# Where the direct kernels beat im2row + GEMM. Measured on one thread, 3x3
# filters: the window-by-window input gradient wins up to 4 input channels,
# and up to 8 when there are at most 16 output channels (im2row rows are then
# too short for BLAS). The register-tiled forward and weight gradient win
# 1.1-2x on layers up to 64 channels in and out, strided ones included, at
# 1 and 2 threads (ResNet's 64 -> 64 about even on one thread); at 64 -> 128
# BLAS wins on one thread.
DIRECT_MAX_CHANNELS = 4
DIRECT_MAX_CHANNELS_FEW_OUTPUTS = 8
DIRECT_FEW_OUTPUTS = 16
DIRECT_FORWARD_MAX_CHANNELS = 64
# Up to 8 output channels a direct forward at stride 1 goes faster in
# vectors of output pixels than of channels (1 thread, 3x3 and 4x4 filters,
# 8 channels: 1.75x in float32, 1.2-1.4x in float64); at 16 it goes slower
# (0.8x in float32), and on LeNet's 32 (0.6x).
PLANAR_MAX_OUTPUTS = 8

# Scratch budget of one im2row chunk; a few MiB keep the rows in L2/L3 cache
# between the copy and the GEMM that reads them.
cdef enum:
    CHUNK_BYTES = 4 * 1024 * 1024


cdef inline void _pixel_window(Py_ssize_t q, Py_ssize_t n_H, Py_ssize_t n_W,
                               Py_ssize_t f, Py_ssize_t stride, Py_ssize_t pad,
                               Py_ssize_t Wd, Py_ssize_t* i, Py_ssize_t* y0,
                               Py_ssize_t* x0, Py_ssize_t* lo,
                               Py_ssize_t* hi) noexcept nogil:
    """Where the window of output pixel q (flat over m, n_H, n_W) lies in A:
    image i, top-left corner (y0, x0) (negative in the padding), and the
    column offsets [lo, hi) of the window that fall inside the image."""
    i[0] = q // (n_H * n_W)
    y0[0] = (q // n_W) % n_H * stride - pad
    x0[0] = q % n_W * stride - pad
    # Both clamped to [0, f]: with pad >= f a window can lie wholly in the padding.
    lo[0] = min(max(-x0[0], 0), f)
    hi[0] = min(max(Wd - x0[0], lo[0]), f)


cdef void _im2row(const floating[:, :, :, ::1] A, floating[:, ::1] rows,
                  Py_ssize_t row0, Py_ssize_t f, Py_ssize_t stride,
                  Py_ssize_t pad, Py_ssize_t n_H, Py_ssize_t n_W) noexcept nogil:
    """Copy the windows of output pixels row0 .. row0 + len(rows) into rows."""
    cdef Py_ssize_t H = A.shape[1], Wd = A.shape[2], C = A.shape[3]
    cdef Py_ssize_t r, i, di, y, y0, x0, lo, hi
    cdef size_t item = sizeof(floating)
    cdef floating* dst
    for r in range(rows.shape[0]):
        _pixel_window(row0 + r, n_H, n_W, f, stride, pad, Wd, &i, &y0, &x0, &lo, &hi)
        dst = &rows[r, 0]
        for di in range(f):
            y = y0 + di
            if y < 0 or y >= H:
                memset(dst, 0, f * C * item)
            else:
                # The window's row di is one contiguous run of A: x, then c.
                memset(dst, 0, lo * C * item)
                if hi > lo:
                    memcpy(dst + lo * C, &A[i, y, x0 + lo, 0], (hi - lo) * C * item)
                memset(dst + hi * C, 0, (f - hi) * C * item)
            dst += f * C


cdef void _row2im_add(const floating[:, ::1] rows, floating[:, :, :, ::1] A,
                      Py_ssize_t row0, Py_ssize_t f, Py_ssize_t stride,
                      Py_ssize_t pad, Py_ssize_t n_H, Py_ssize_t n_W) noexcept nogil:
    """Adjoint of _im2row: add every window of rows back onto A (padding dropped)."""
    cdef Py_ssize_t H = A.shape[1], Wd = A.shape[2], C = A.shape[3]
    cdef Py_ssize_t r, i, di, y, y0, x0, lo, hi, n
    for r in range(rows.shape[0]):
        _pixel_window(row0 + r, n_H, n_W, f, stride, pad, Wd, &i, &y0, &x0, &lo, &hi)
        n = (hi - lo) * C
        for di in range(f):
            y = y0 + di
            if y < 0 or y >= H or n == 0:
                continue
            if floating is float:
                cnx_add_f(&A[i, y, x0 + lo, 0], &rows[r, (di * f + lo) * C], n)
            else:
                cnx_add_d(&A[i, y, x0 + lo, 0], &rows[r, (di * f + lo) * C], n)


def _chunk_rows(Py_ssize_t n_rows, Py_ssize_t row_len, Py_ssize_t itemsize):
    """How many im2row rows one chunk holds."""
    cdef Py_ssize_t per_row = max(row_len * itemsize, 1)
    return max(1, min(n_rows, CHUNK_BYTES // per_row))


cdef const floating* _padded_image(const floating[:, :, ::1] image, Py_ssize_t pad,
                                   floating[::1] scratch) noexcept nogil:
    """The image with ``pad`` zeros around it: ``scratch``, whose border is
    zero already, with the image copied into its interior (the image itself
    when pad is 0)."""
    cdef Py_ssize_t y, H = image.shape[0], Wd = image.shape[1], C = image.shape[2]
    cdef Py_ssize_t Wp = Wd + 2 * pad
    if pad == 0:
        return &image[0, 0, 0]
    for y in range(H):
        memcpy(&scratch[((y + pad) * Wp + pad) * C], &image[y, 0, 0],
               Wd * C * sizeof(floating))
    return &scratch[0]


def _padding_scratch(Py_ssize_t H, Py_ssize_t Wd, Py_ssize_t C, Py_ssize_t pad, dtype):
    """Zeros for one padded H x Wd x C image, for _padded_image (one element
    when pad is 0: the image is then read in place)."""
    return np.zeros((H + 2 * pad) * (Wd + 2 * pad) * C if pad else 1, dtype=dtype)


def _conv_forward_direct(const floating[:, :, :, ::1] A,
                         const floating[:, ::1] W_pad, const floating[::1] bias_pad,
                         floating[:, :, :, ::1] Z, Py_ssize_t f, Py_ssize_t stride,
                         Py_ssize_t pad, bint half):
    """Z = conv(A, W) + b, reading windows in place (see _conv_direct.h).

    Each image is padded into a scratch image just before its rows are
    computed, while it is in cache. ``half`` picks the kernel with
    half-width vectors, for few output channels.
    """
    cdef Py_ssize_t i, h, C = A.shape[3], Wp = A.shape[2] + 2 * pad
    cdef Py_ssize_t n_H = Z.shape[1], n_W = Z.shape[2], nC = Z.shape[3]
    cdef Py_ssize_t nC_pad = W_pad.shape[1]
    cdef floating[::1] scratch = _padding_scratch(
        A.shape[1], A.shape[2], C, pad, np.float32 if floating is float else np.float64)
    cdef const floating* a
    with nogil:
        for i in range(Z.shape[0]):
            a = _padded_image(A[i], pad, scratch)
            for h in range(n_H):
                if floating is float:
                    if half:
                        cnx_conv_direct_row_half_f(
                            a, Wp, C, &W_pad[0, 0], &bias_pad[0], f,
                            nC, nC_pad, stride, h * stride, n_W, &Z[i, h, 0, 0])
                    else:
                        cnx_conv_direct_row_f(
                            a, Wp, C, &W_pad[0, 0], &bias_pad[0], f,
                            nC, nC_pad, stride, h * stride, n_W, &Z[i, h, 0, 0])
                else:
                    if half:
                        cnx_conv_direct_row_half_d(
                            a, Wp, C, &W_pad[0, 0], &bias_pad[0], f,
                            nC, nC_pad, stride, h * stride, n_W, &Z[i, h, 0, 0])
                    else:
                        cnx_conv_direct_row_d(
                            a, Wp, C, &W_pad[0, 0], &bias_pad[0], f,
                            nC, nC_pad, stride, h * stride, n_W, &Z[i, h, 0, 0])


def _conv_forward_planar(const floating[:, :, :, ::1] A, const floating[:, ::1] W2,
                         const floating[::1] bias, floating[:, :, :, ::1] Z,
                         Py_ssize_t f, Py_ssize_t pad):
    """Z = conv(A, W) + b at stride 1, vectorised over output pixels (see
    _conv_direct.h): each image is padded into a planar scratch, then read
    in place."""
    cdef Py_ssize_t i, H = A.shape[1], Wd = A.shape[2], C = A.shape[3]
    cdef Py_ssize_t n_H = Z.shape[1], n_W = Z.shape[2], nC = Z.shape[3]
    cdef Py_ssize_t Hp = H + 2 * pad
    dtype = np.float32 if floating is float else np.float64
    cdef Py_ssize_t Wq = _round_up(n_W, _vector_lanes(dtype)) + f - 1
    # Zeroed once: every image rewrites only the interior.
    cdef floating[::1] planar = np.zeros(C * Hp * Wq, dtype=dtype)
    with nogil:
        for i in range(Z.shape[0]):
            if floating is float:
                cnx_planar_pad_f(&A[i, 0, 0, 0], H, Wd, C, pad, Hp, Wq, &planar[0])
                cnx_conv_planar_image_f(&planar[0], Hp, Wq, C, &W2[0, 0], &bias[0], f,
                                        nC, n_H, n_W, &Z[i, 0, 0, 0])
            else:
                cnx_planar_pad_d(&A[i, 0, 0, 0], H, Wd, C, pad, Hp, Wq, &planar[0])
                cnx_conv_planar_image_d(&planar[0], Hp, Wq, C, &W2[0, 0], &bias[0], f,
                                        nC, n_H, n_W, &Z[i, 0, 0, 0])


def _conv_input_grad_direct(floating[:, :, :, ::1] dA_pad,
                            const floating[:, :, :, ::1] dZ, const floating[:, ::1] Wt,
                            Py_ssize_t f, Py_ssize_t stride):
    """dA_pad += conv input gradient, window by window (see _conv_direct.h)."""
    cdef Py_ssize_t i, h, Wp = dA_pad.shape[2], C = dA_pad.shape[3]
    cdef Py_ssize_t n_H = dZ.shape[1], n_W = dZ.shape[2], nC = dZ.shape[3]
    cdef Py_ssize_t K_pad = Wt.shape[1]
    cdef floating[::1] dcol = np.empty(
        K_pad, dtype=np.float32 if floating is float else np.float64)
    with nogil:
        for i in range(dZ.shape[0]):
            for h in range(n_H):
                if floating is float:
                    cnx_conv_input_grad_row_f(&dA_pad[i, h * stride, 0, 0], Wp, C,
                                              &dZ[i, h, 0, 0], &Wt[0, 0], f, nC, K_pad,
                                              stride, n_W, &dcol[0])
                else:
                    cnx_conv_input_grad_row_d(&dA_pad[i, h * stride, 0, 0], Wp, C,
                                              &dZ[i, h, 0, 0], &Wt[0, 0], f, nC, K_pad,
                                              stride, n_W, &dcol[0])


def _conv_weight_grad_direct(const floating[:, :, :, ::1] A,
                             const floating[:, :, :, ::1] dZ_pad,
                             floating[:, ::1] dW_acc, Py_ssize_t f, Py_ssize_t stride,
                             Py_ssize_t pad, bint half):
    """dW_acc += weight gradient of these images (see _conv_direct.h), each
    image padded into a scratch image just before its tiles read it."""
    cdef Py_ssize_t i, C = A.shape[3], Wp = A.shape[2] + 2 * pad
    cdef Py_ssize_t n_H = dZ_pad.shape[1], n_W = dZ_pad.shape[2]
    cdef Py_ssize_t nC_pad = dZ_pad.shape[3]
    cdef floating[::1] scratch = _padding_scratch(
        A.shape[1], A.shape[2], C, pad, np.float32 if floating is float else np.float64)
    cdef const floating* a
    with nogil:
        for i in range(dZ_pad.shape[0]):
            a = _padded_image(A[i], pad, scratch)
            if floating is float:
                if half:
                    cnx_conv_weight_grad_half_f(a, Wp, C, &dZ_pad[i, 0, 0, 0],
                                                n_H, n_W, nC_pad, f, stride, &dW_acc[0, 0])
                else:
                    cnx_conv_weight_grad_f(a, Wp, C, &dZ_pad[i, 0, 0, 0],
                                           n_H, n_W, nC_pad, f, stride, &dW_acc[0, 0])
            else:
                if half:
                    cnx_conv_weight_grad_half_d(a, Wp, C, &dZ_pad[i, 0, 0, 0],
                                                n_H, n_W, nC_pad, f, stride, &dW_acc[0, 0])
                else:
                    cnx_conv_weight_grad_d(a, Wp, C, &dZ_pad[i, 0, 0, 0],
                                           n_H, n_W, nC_pad, f, stride, &dW_acc[0, 0])


def _use_direct(A, Z, bint forward):
    """Whether the direct kernels run this layer rather than im2row + GEMM."""
    C, n_C = A.shape[3], Z.shape[3]
    if Z.size == 0 or C < 1:
        return False
    if C <= DIRECT_MAX_CHANNELS or (C <= DIRECT_MAX_CHANNELS_FEW_OUTPUTS
                                    and n_C <= DIRECT_FEW_OUTPUTS):
        return True
    return (forward and C <= DIRECT_FORWARD_MAX_CHANNELS
            and n_C <= DIRECT_FORWARD_MAX_CHANNELS)


def _use_planar(Py_ssize_t n_C, Py_ssize_t stride):
    """Whether a direct forward runs vectorised over output pixels rather
    than over output channels (stride 1, few output channels)."""
    return stride == 1 and n_C <= PLANAR_MAX_OUTPUTS


def _round_up(Py_ssize_t n, Py_ssize_t multiple):
    return (n + multiple - 1) // multiple * multiple


def _vector_lanes(dtype, bint half=False):
    """Elements in one vector of the direct kernels."""
    if dtype == np.float32:
        return CNX_HALF_VL_f if half else CNX_VL_f
    return CNX_HALF_VL_d if half else CNX_VL_d


def _pad_columns(M, Py_ssize_t width):
    """The 2-D M widened with zero columns to ``width``, C-contiguous: a copy
    that starts on a 64-byte boundary, so that the kernels' vector loads of
    its rows (filters, mostly) never straddle two cache lines (numpy only
    aligns to 16 bytes; aligned filters made the channel tiles 10-20% faster
    on ResNet's layer). Small matrices of the right width come back as they
    are."""
    cdef Py_ssize_t n_rows = M.shape[0], n_cols = M.shape[1]
    cdef Py_ssize_t nbytes = n_rows * width * M.dtype.itemsize
    if n_cols == width and nbytes < 16384:  # small: the copy would cost more
        return np.ascontiguousarray(M)
    buf = np.empty(nbytes + 64, dtype=np.uint8)
    cdef unsigned char[::1] raw = buf
    cdef Py_ssize_t start = (64 - <size_t>&raw[0] % 64) % 64
    out = buf[start:start + nbytes].view(M.dtype).reshape(n_rows, width)
    out[:, :n_cols] = M
    out[:, n_cols:] = 0
    return out


# The direct backward's scratch (dZ with its channels padded to whole
# vectors, padded input gradients) is made for a block of images at a time
# so that it stays small whatever the batch size.
PAD_BLOCK_BYTES = 4 * 1024 * 1024


def _images_per_block(A, Py_ssize_t pad, dtype):
    m, H, Wd, C = A.shape
    image_bytes = (H + 2 * pad) * (Wd + 2 * pad) * max(C, 1) * dtype.itemsize
    return max(1, PAD_BLOCK_BYTES // image_bytes)


def _conv_forward_direct_driver(A, W2, b, Z, Py_ssize_t f, Py_ssize_t stride,
                                Py_ssize_t pad):
    """conv_forward by the direct kernels: windows read in place."""
    K, n_C = W2.shape
    dtype = Z.dtype
    if _use_planar(n_C, stride):
        W2 = np.ascontiguousarray(W2)
        bias = np.ascontiguousarray(b.reshape(n_C))
        for_slices(lambda i0, i1: _conv_forward_planar(A[i0:i1], W2, bias, Z[i0:i1], f, pad),
                   Z.shape[0], Z.size * K, MIN_DIRECT_WORK)
        return
    half = n_C <= _vector_lanes(dtype, half=True)
    W_pad = _pad_columns(W2, _round_up(n_C, _vector_lanes(dtype, half)))
    bias_pad = _pad_columns(b.reshape(1, n_C), W_pad.shape[1])[0]
    for_slices(lambda i0, i1: _conv_forward_direct(A[i0:i1], W_pad, bias_pad, Z[i0:i1],
                                                   f, stride, pad, half),
               Z.shape[0], Z.size * K, MIN_DIRECT_WORK)


def _conv_backward_direct_driver(A, W2, dZ, dA, dW2, Py_ssize_t f,
                                 Py_ssize_t stride, Py_ssize_t pad, input_grad):
    """conv_backward with the weight gradient from register tiles
    (_conv_weight_grad_direct), which read the windows in place.

    The input gradient, by ``input_grad``:

    - "transposed" (stride 1): a convolution of dZ, run by the forward's tiles;
    - "windows" (few input channels): each output pixel's window gradient,
      W2 @ dz, added onto dA in place;
    - "rows": dZ @ W2.T a chunk of output pixels at a time (one GEMM), the
      rows scattered onto dA by row2im.
    """
    m, H, Wd, C = dA.shape
    K, n_C = W2.shape
    dtype = dA.dtype
    half = n_C <= _vector_lanes(dtype, half=True)
    nC_pad = _round_up(n_C, _vector_lanes(dtype, half))
    if input_grad == "transposed":
        _input_gradient_transposed(W2, dZ, dA, f, pad)
    elif input_grad == "windows":
        Wt = _pad_columns(W2.T, _round_up(K, _vector_lanes(dtype)))
    block = _images_per_block(A, pad, dtype)

    def block_gradient(Py_ssize_t i0, Py_ssize_t i1):
        cdef Py_ssize_t j0
        dW_acc = np.zeros((K, nC_pad), dtype=dtype)
        for j0 in range(i0, i1, block):
            j1 = min(i1, j0 + block)
            dZ_block = dZ[j0:j1]
            if nC_pad != n_C:  # the tiles load whole vectors of dZ's channels
                dZ_block = np.zeros(dZ_block.shape[:3] + (nC_pad,), dtype=dtype)
                dZ_block[..., :n_C] = dZ[j0:j1]
            _conv_weight_grad_direct(A[j0:j1], dZ_block, dW_acc, f, stride, pad, half)
            if input_grad == "rows":
                _input_gradient_rows(W2, dZ[j0:j1], dA[j0:j1], f, stride, pad)
            elif input_grad == "windows":
                dA_pad = (np.zeros((j1 - j0, H + 2 * pad, Wd + 2 * pad, C), dtype=dtype)
                          if pad else dA[j0:j1])
                _conv_input_grad_direct(dA_pad, dZ[j0:j1], Wt, f, stride)
                if pad:
                    dA[j0:j1] = dA_pad[:, pad:pad + H, pad:pad + Wd]
        return dW_acc

    work = dZ.size * K * (1 if input_grad == "transposed" else 2)
    _reduce_over_blocks(block_gradient, m, work, dW2, MIN_DIRECT_WORK,
                        calls_blas=input_grad == "rows")


def _input_gradient_rows(W2, dZ, dA, Py_ssize_t f, Py_ssize_t stride, Py_ssize_t pad):
    """dA (zeroed) += row2im(dZ @ W2.T), a chunk of output pixels at a time."""
    cdef Py_ssize_t n_H = dZ.shape[1], n_W = dZ.shape[2]
    cdef Py_ssize_t K = W2.shape[0], n_C = W2.shape[1]
    cdef Py_ssize_t total = dZ.shape[0] * n_H * n_W
    cdef Py_ssize_t chunk = _chunk_rows(total, K, dZ.itemsize)
    cdef Py_ssize_t row0, n
    dZ2 = dZ.reshape(total, n_C)
    scratch = np.empty((chunk, K), dtype=dZ.dtype)
    W2T = W2.T
    for row0 in range(0, total, chunk):
        n = min(chunk, total - row0)
        np.matmul(dZ2[row0:row0 + n], W2T, out=scratch[:n])
        _row2im_add_rows(scratch[:n], dA, row0, f, stride, pad, n_H, n_W)


def _row2im_add_rows(const floating[:, ::1] rows, floating[:, :, :, ::1] A,
                     Py_ssize_t row0, Py_ssize_t f, Py_ssize_t stride,
                     Py_ssize_t pad, Py_ssize_t n_H, Py_ssize_t n_W):
    with nogil:
        _row2im_add(rows, A, row0, f, stride, pad, n_H, n_W)


def conv_forward(A, W2, b, Z, Py_ssize_t f, Py_ssize_t stride, Py_ssize_t pad):
    """Z[...] = conv(A, W) + b, Z preallocated with shape (m, n_H, n_W, n_C).

    A is C-contiguous NHWC, W2 the filters as (f*f*n_C_prev, n_C), all of
    Z's dtype.
    """
    if Z.size == 0:
        return
    K, n_C = W2.shape
    if _use_direct(A, Z, forward=True):
        _conv_forward_direct_driver(A, W2, b, Z, f, stride, pad)
        return
    # im2row: output pixels are independent, so threads split the rows.
    total = Z.size // n_C
    Z2 = Z.reshape(total, n_C)
    for_slices(lambda r0, r1: _forward_rows(A, W2, Z2, r0, r1, f, stride, pad,
                                            Z.shape[1], Z.shape[2]),
               total, total * K * n_C, MIN_GEMM_WORK, calls_blas=True)
    np.add(Z2, b.reshape(n_C), out=Z2)


# Multiply-adds below which splitting a convolution over threads costs more
# than it saves.
MIN_GEMM_WORK = 1 << 22
MIN_DIRECT_WORK = 1 << 21


def _forward_rows(const floating[:, :, :, ::1] A, W2, Z2, Py_ssize_t row_begin,
                  Py_ssize_t row_end, Py_ssize_t f, Py_ssize_t stride,
                  Py_ssize_t pad, Py_ssize_t n_H, Py_ssize_t n_W):
    """Z2[row_begin:row_end] = im2row rows @ W2, chunk by chunk."""
    cdef Py_ssize_t K = W2.shape[0]
    cdef Py_ssize_t chunk = _chunk_rows(row_end - row_begin, K, Z2.itemsize)
    cdef Py_ssize_t row0, n
    cdef floating[:, ::1] rows
    scratch = np.empty((chunk, K), dtype=Z2.dtype)
    for row0 in range(row_begin, row_end, chunk):
        n = min(chunk, row_end - row0)
        rows = scratch[:n]
        with nogil:
            _im2row(A, rows, row0, f, stride, pad, n_H, n_W)
        # numpy's matmul releases the GIL inside BLAS.
        np.matmul(scratch[:n], W2, out=Z2[row0:row0 + n])


def conv_backward(A, W2, dZ, dA, dW2, Py_ssize_t f, Py_ssize_t stride,
                  Py_ssize_t pad):
    """Fill dA (zeroed, shape of A) and dW2 (zeroed, (K, n_C)) from dZ."""
    if dZ.size == 0:
        return
    if (stride == 1 and pad < f
            and (dA.shape[3] > DIRECT_MAX_CHANNELS or _use_planar(dA.shape[3], 1))
            and _use_direct(dZ, dA, forward=True)):
        # The input gradient is itself a stride-1 convolution, and one the
        # direct forward runs well once its output channels (dA's) fill
        # more than half a vector, or in vectors of pixels when they are few.
        _conv_backward_direct_driver(A, W2, dZ, dA, dW2, f, stride, pad, "transposed")
        return
    if _use_direct(A, dZ, forward=False):
        _conv_backward_direct_driver(A, W2, dZ, dA, dW2, f, stride, pad, "windows")
        return
    if _use_direct(A, dZ, forward=True):
        _conv_backward_direct_driver(A, W2, dZ, dA, dW2, f, stride, pad, "rows")
        return
    # Images are split between threads: the windows of one image overlap in
    # dA, those of different images never do.
    _reduce_over_blocks(
        lambda i0, i1: _backward_images(A[i0:i1], W2, dZ[i0:i1], dA[i0:i1],
                                        f, stride, pad),
        dZ.shape[0], dZ.size * W2.shape[0] * 2, dW2, MIN_GEMM_WORK, calls_blas=True)


def _input_gradient_transposed(W2, dZ, dA, Py_ssize_t f, Py_ssize_t pad):
    """dA[...] = input gradient of a stride-1 convolution, as a convolution.

    dA[y, x, c] = sum over (di, dj, n) of dZ[y + pad - di, x + pad - dj, n]
    * W[di, dj, c, n]: the forward convolution of dZ, padded by f - 1 - pad,
    with the filters flipped in space and their channel axes swapped. The
    direct forward kernel then runs it with no im2row matrix and no scatter.
    """
    C, n_C = dA.shape[3], dZ.shape[3]
    W_flipped = np.ascontiguousarray(
        W2.reshape(f, f, C, n_C)[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(f * f * n_C, C)
    _conv_forward_direct_driver(dZ, W_flipped, np.zeros(C, dtype=dA.dtype), dA,
                                f, 1, f - 1 - pad)


# The batch is cut into at most this many blocks, a number set by the size of
# the problem and never by the number of threads, and each block's weight
# gradient is summed in batch order: results are the same bit for bit with
# any thread count.
REDUCTION_BLOCKS = 8


def _reduce_over_blocks(block_gradient, Py_ssize_t m, work, out, min_work,
                        bint calls_blas=False):
    """out[...] = sum over fixed blocks of images of block_gradient(i0, i1)."""
    cdef Py_ssize_t n_blocks = max(1, min(m, REDUCTION_BLOCKS, work // min_work))
    if n_blocks == 1:
        out[...] = block_gradient(0, m)[:, :out.shape[1]]
        return
    bounds = [m * k // n_blocks for k in range(n_blocks + 1)]
    partial = [None] * n_blocks

    def run_blocks(b0, b1):
        for k in range(b0, b1):
            partial[k] = block_gradient(bounds[k], bounds[k + 1])

    for_slices(run_blocks, n_blocks, work, min_work, calls_blas=calls_blas)
    total = partial[0]
    for k in range(1, n_blocks):
        total = total + partial[k]
    out[...] = total[:, :out.shape[1]]


def _backward_images(const floating[:, :, :, ::1] A, W2, dZ, dA, Py_ssize_t f,
                     Py_ssize_t stride, Py_ssize_t pad):
    """dA += input gradient of these images; return their weight gradient."""
    dW2 = _weight_gradient_rows(A, dZ, W2.shape[0], f, stride, pad)
    _input_gradient_rows(W2, dZ, dA, f, stride, pad)
    return dW2


def _weight_gradient_rows(const floating[:, :, :, ::1] A, dZ, Py_ssize_t K,
                          Py_ssize_t f, Py_ssize_t stride, Py_ssize_t pad):
    """The weight gradient of these images: im2row rows.T @ dZ, chunk by chunk."""
    cdef Py_ssize_t n_H = dZ.shape[1], n_W = dZ.shape[2], n_C = dZ.shape[3]
    cdef Py_ssize_t total = dZ.shape[0] * n_H * n_W
    cdef Py_ssize_t chunk = _chunk_rows(total, K, dZ.itemsize)
    cdef Py_ssize_t row0, n
    cdef floating[:, ::1] rows
    dZ2 = dZ.reshape(total, n_C)
    scratch = np.empty((chunk, K), dtype=dZ.dtype)
    dW_part = np.empty((K, n_C), dtype=dZ.dtype)
    dW2 = np.zeros((K, n_C), dtype=dZ.dtype)
    for row0 in range(0, total, chunk):
        n = min(chunk, total - row0)
        rows = scratch[:n]
        with nogil:
            _im2row(A, rows, row0, f, stride, pad, n_H, n_W)
        np.matmul(scratch[:n].T, dZ2[row0:row0 + n], out=dW_part)
        np.add(dW2, dW_part, out=dW2)
    return dW2
