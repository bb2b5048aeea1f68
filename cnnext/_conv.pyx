"""Convolution kernels, forward and backward.

Private: every argument was validated by ``cnnext/__init__.py``. Arrays are
C-contiguous NHWC of one floating dtype; ``W2`` is the filter bank seen as a
(f*f*n_C_prev, n_C) matrix, whose row order (di, dj, c) is the order in which
a window is laid out.

The drivers run a plan made by ``_plan.py``, which picks the kernel and
says how the work is cut; they decide nothing. The kernels:

- direct: the register-tiled kernels of ``_conv_direct.h`` read the windows
  in place, vectors of output channels ("direct") or, at stride 1, of output
  pixels over a planar copy of each image ("planar"). The backward's weight
  gradient has tiles of its own; its input gradient is, at stride 1, the
  forward convolution of dZ with flipped filters ("transposed"); else each
  window's gradient is added onto dA in place ("windows"), or one GEMM per
  chunk of output pixels is scattered back by row2im ("rows").
- im2row: one row of the im2row matrix holds the f*f*n_C_prev inputs that
  one output pixel sees; a chunk of rows times ``W2`` is then one GEMM at
  BLAS speed, and row2im scatters the backward's rows back. Chunks bound the
  scratch memory whatever the batch size.
- gemm1x1: a 1x1 filter at pad 0 needs no im2row matrix at stride 1, where
  A is already the (m*H*W, C) matrix of its rows.

Both split their work over cnnext's threads (``_parallel.py``).
"""
from cython cimport floating
from libc.string cimport memcpy, memset

import threading

import numpy as np

from ._parallel import _blas_single_threaded, run_parts

cdef extern from "_conv_direct.h" nogil:
    void cnx_conv_select(int level)
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
                                 Py_ssize_t f, Py_ssize_t nC, Py_ssize_t h0,
                                 Py_ssize_t h1, Py_ssize_t n_W, float* z)
    void cnx_conv_planar_image_d(const double* a, Py_ssize_t Hp, Py_ssize_t Wq,
                                 Py_ssize_t C, const double* w, const double* bias,
                                 Py_ssize_t f, Py_ssize_t nC, Py_ssize_t h0,
                                 Py_ssize_t h1, Py_ssize_t n_W, double* z)
    void cnx_planar_pad_f(const float* a, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                          Py_ssize_t pad, Py_ssize_t Hp, Py_ssize_t Wq, float* out)
    void cnx_planar_pad_d(const double* a, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                          Py_ssize_t pad, Py_ssize_t Hp, Py_ssize_t Wq, double* out)
    void cnx_conv_weight_grad_f(const float* a, Py_ssize_t Wp, Py_ssize_t C,
                                const float* dz, Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t n_W,
                                Py_ssize_t nC_pad, Py_ssize_t f, Py_ssize_t stride,
                                float* dw)
    void cnx_conv_weight_grad_d(const double* a, Py_ssize_t Wp, Py_ssize_t C,
                                const double* dz, Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t n_W,
                                Py_ssize_t nC_pad, Py_ssize_t f, Py_ssize_t stride,
                                double* dw)
    void cnx_conv_weight_grad_half_f(const float* a, Py_ssize_t Wp, Py_ssize_t C,
                                     const float* dz, Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t n_W,
                                     Py_ssize_t nC_pad, Py_ssize_t f, Py_ssize_t stride,
                                     float* dw)
    void cnx_conv_weight_grad_half_d(const double* a, Py_ssize_t Wp, Py_ssize_t C,
                                     const double* dz, Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t n_W,
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


cdef extern from "_depthwise.h" nogil:
    void cnx_depthwise_select(int level)
    void cnx_depthwise_forward_f(const float* a, Py_ssize_t H, Py_ssize_t Wd, Py_ssize_t C,
                                 const float* w, const float* bias, const Py_ssize_t* geom,
                                 Py_ssize_t n_H, Py_ssize_t n_W, float* z)
    void cnx_depthwise_forward_d(const double* a, Py_ssize_t H, Py_ssize_t Wd, Py_ssize_t C,
                                 const double* w, const double* bias, const Py_ssize_t* geom,
                                 Py_ssize_t n_H, Py_ssize_t n_W, double* z)
    void cnx_depthwise_input_grad_f(const float* dz, Py_ssize_t n_H, Py_ssize_t n_W,
                                    Py_ssize_t C, const float* w, const Py_ssize_t* geom,
                                    Py_ssize_t H, Py_ssize_t Wd, float* da)
    void cnx_depthwise_input_grad_d(const double* dz, Py_ssize_t n_H, Py_ssize_t n_W,
                                    Py_ssize_t C, const double* w, const Py_ssize_t* geom,
                                    Py_ssize_t H, Py_ssize_t Wd, double* da)
    void cnx_depthwise_weight_grad_f(const float* a, Py_ssize_t H, Py_ssize_t Wd, Py_ssize_t C,
                                     const float* dz, const Py_ssize_t* geom, Py_ssize_t n_H,
                                     Py_ssize_t n_W, float* dw)
    void cnx_depthwise_weight_grad_d(const double* a, Py_ssize_t H, Py_ssize_t Wd,
                                     Py_ssize_t C, const double* dz, const Py_ssize_t* geom,
                                     Py_ssize_t n_H, Py_ssize_t n_W, double* dw)


def select_level(int level):
    """Point the direct kernels at `level` (see cnnext/_dispatch.py)."""
    cnx_conv_select(level)
    cnx_depthwise_select(level)


def depthwise_forward(const floating[:, :, :, ::1] A, floating[:, :, :, ::1] Z,
                      const floating[:, :, ::1] W, const floating[::1] bias,
                      Py_ssize_t f_h, Py_ssize_t f_w, Py_ssize_t s_h, Py_ssize_t s_w,
                      Py_ssize_t d_h, Py_ssize_t d_w, Py_ssize_t top, Py_ssize_t left):
    """Z[i] = the depthwise convolution of image A[i], zero-padded by `top`
    rows and `left` columns before it (and as many after as Z's size needs),
    by W (f_h, f_w, C), plus bias (C,) unless it is None (_depthwise.h)."""
    cdef Py_ssize_t geom[8]
    geom[:] = [f_h, f_w, s_h, s_w, d_h, d_w, top, left]
    cdef Py_ssize_t i, H = A.shape[1], Wd = A.shape[2], C = A.shape[3]
    cdef const floating* b = NULL
    if bias is not None:
        b = &bias[0]
    if C == 0 or Z.shape[0] == 0 or Z.shape[1] == 0 or Z.shape[2] == 0:
        return
    with nogil:
        for i in range(Z.shape[0]):
            if floating is float:
                cnx_depthwise_forward_f(&A[i, 0, 0, 0], H, Wd, C, &W[0, 0, 0], b, geom,
                                        Z.shape[1], Z.shape[2], &Z[i, 0, 0, 0])
            else:
                cnx_depthwise_forward_d(&A[i, 0, 0, 0], H, Wd, C, &W[0, 0, 0], b, geom,
                                        Z.shape[1], Z.shape[2], &Z[i, 0, 0, 0])


def depthwise_backward(const floating[:, :, :, ::1] A, const floating[:, :, :, ::1] dZ,
                       floating[:, :, :, ::1] dA, floating[:, :, :, ::1] dW_per_image,
                       const floating[:, :, ::1] W, Py_ssize_t f_h, Py_ssize_t f_w,
                       Py_ssize_t s_h, Py_ssize_t s_w, Py_ssize_t d_h, Py_ssize_t d_w,
                       Py_ssize_t top, Py_ssize_t left):
    """dA[i] = image i's input gradient (every entry written), dW_per_image[i]
    += its weight gradient (zeroed by the caller, which sums them in image
    order so that dW is the same at any thread count)."""
    cdef Py_ssize_t geom[8]
    geom[:] = [f_h, f_w, s_h, s_w, d_h, d_w, top, left]
    cdef Py_ssize_t i, H = A.shape[1], Wd = A.shape[2], C = A.shape[3]
    cdef Py_ssize_t n_H = dZ.shape[1], n_W = dZ.shape[2]
    if C == 0 or dA.shape[0] == 0 or H == 0 or Wd == 0:
        return
    if n_H == 0 or n_W == 0:
        dA[...] = 0
        return
    with nogil:
        for i in range(dA.shape[0]):
            if floating is float:
                cnx_depthwise_input_grad_f(&dZ[i, 0, 0, 0], n_H, n_W, C, &W[0, 0, 0], geom,
                                           H, Wd, &dA[i, 0, 0, 0])
                cnx_depthwise_weight_grad_f(&A[i, 0, 0, 0], H, Wd, C, &dZ[i, 0, 0, 0], geom,
                                            n_H, n_W, &dW_per_image[i, 0, 0, 0])
            else:
                cnx_depthwise_input_grad_d(&dZ[i, 0, 0, 0], n_H, n_W, C, &W[0, 0, 0], geom,
                                           H, Wd, &dA[i, 0, 0, 0])
                cnx_depthwise_weight_grad_d(&A[i, 0, 0, 0], H, Wd, C, &dZ[i, 0, 0, 0], geom,
                                            n_H, n_W, &dW_per_image[i, 0, 0, 0])


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


cdef inline void _band_input_rows(Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t f,
                                  Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t H,
                                  Py_ssize_t* y_lo, Py_ssize_t* y_hi) noexcept nogil:
    """The rows [y_lo, y_hi) of an image that output rows h0 .. h1 - 1 read."""
    y_lo[0] = min(max(h0 * stride - pad, 0), H)
    y_hi[0] = max(min((h1 - 1) * stride - pad + f, H), y_lo[0])


cdef const floating* _padded_rows(const floating[:, :, ::1] image, Py_ssize_t pad,
                                  Py_ssize_t y_lo, Py_ssize_t y_hi,
                                  floating[::1] scratch) noexcept nogil:
    """The image with ``pad`` zeros around it, where rows y_lo .. y_hi - 1
    are all that will be read: ``scratch``, whose border is zero already,
    with those rows copied into its interior (the image itself when pad is
    0). Rows of an earlier image left in scratch are never read."""
    cdef Py_ssize_t y, Wd = image.shape[1], C = image.shape[2]
    cdef Py_ssize_t Wp = Wd + 2 * pad
    if pad == 0:
        return &image[0, 0, 0]
    for y in range(y_lo, y_hi):
        memcpy(&scratch[((y + pad) * Wp + pad) * C], &image[y, 0, 0],
               Wd * C * sizeof(floating))
    return &scratch[0]


def _padding_scratch(Py_ssize_t H, Py_ssize_t Wd, Py_ssize_t C, Py_ssize_t pad, dtype):
    """Zeros for one padded H x Wd x C image, for _padded_rows (one element
    when pad is 0: the image is then read in place)."""
    return np.zeros((H + 2 * pad) * (Wd + 2 * pad) * C if pad else 1, dtype=dtype)


def _conv_forward_direct(const floating[:, :, :, ::1] A,
                         const floating[:, ::1] W_pad, const floating[::1] bias_pad,
                         floating[:, :, :, ::1] Z, Py_ssize_t f, Py_ssize_t stride,
                         Py_ssize_t pad, bint half, Py_ssize_t r0, Py_ssize_t r1):
    """Output rows r0 .. r1 - 1 of the batch (flat over m * n_H) of
    Z = conv(A, W) + b, reading windows in place (see _conv_direct.h).

    The input rows of each image's band are padded into a scratch image just
    before they are read, while they are in cache. ``half`` picks the kernel
    with half-width vectors, for few output channels.
    """
    cdef Py_ssize_t i, h, h0, h1, y_lo, y_hi, H = A.shape[1], C = A.shape[3]
    cdef Py_ssize_t Wp = A.shape[2] + 2 * pad
    cdef Py_ssize_t n_H = Z.shape[1], n_W = Z.shape[2], nC = Z.shape[3]
    cdef Py_ssize_t nC_pad = W_pad.shape[1]
    cdef floating[::1] scratch = _padding_scratch(
        H, A.shape[2], C, pad, np.float32 if floating is float else np.float64)
    cdef const floating* a
    with nogil:
        for i in range(r0 // n_H, (r1 - 1) // n_H + 1):
            h0 = max(r0 - i * n_H, 0)
            h1 = min(r1 - i * n_H, n_H)
            _band_input_rows(h0, h1, f, stride, pad, H, &y_lo, &y_hi)
            a = _padded_rows(A[i], pad, y_lo, y_hi, scratch)
            for h in range(h0, h1):
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
                         Py_ssize_t f, Py_ssize_t pad, Py_ssize_t r0, Py_ssize_t r1):
    """Output rows r0 .. r1 - 1 of the batch (flat over m * n_H) of
    Z = conv(A, W) + b at stride 1, vectorised over output pixels (see
    _conv_direct.h): the input rows of each image's band are padded into a
    planar scratch, then read in place."""
    cdef Py_ssize_t i, h0, h1, y_lo, y_hi, H = A.shape[1], Wd = A.shape[2], C = A.shape[3]
    cdef Py_ssize_t n_H = Z.shape[1], n_W = Z.shape[2], nC = Z.shape[3]
    cdef Py_ssize_t Hp = H + 2 * pad
    dtype = np.float32 if floating is float else np.float64
    cdef Py_ssize_t Wq = _round_up(n_W, _vector_lanes(dtype)) + f - 1
    # Zeroed once: every band rewrites only the interior rows it reads.
    cdef floating[::1] planar = np.zeros(C * Hp * Wq, dtype=dtype)
    with nogil:
        for i in range(r0 // n_H, (r1 - 1) // n_H + 1):
            h0 = max(r0 - i * n_H, 0)
            h1 = min(r1 - i * n_H, n_H)
            _band_input_rows(h0, h1, f, 1, pad, H, &y_lo, &y_hi)
            if y_hi > y_lo:
                # Rows y_lo.. of the image into rows pad + y_lo.. of each plane.
                if floating is float:
                    cnx_planar_pad_f(&A[i, y_lo, 0, 0], y_hi - y_lo, Wd, C, pad, Hp, Wq,
                                     &planar[y_lo * Wq])
                else:
                    cnx_planar_pad_d(&A[i, y_lo, 0, 0], y_hi - y_lo, Wd, C, pad, Hp, Wq,
                                     &planar[y_lo * Wq])
            if floating is float:
                cnx_conv_planar_image_f(&planar[0], Hp, Wq, C, &W2[0, 0], &bias[0], f,
                                        nC, h0, h1, n_W, &Z[i, 0, 0, 0])
            else:
                cnx_conv_planar_image_d(&planar[0], Hp, Wq, C, &W2[0, 0], &bias[0], f,
                                        nC, h0, h1, n_W, &Z[i, 0, 0, 0])


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
                             const floating[:, :, :, ::1] dZ,
                             floating[:, ::1] dW_acc, Py_ssize_t f, Py_ssize_t stride,
                             Py_ssize_t pad, bint half, Py_ssize_t r0, Py_ssize_t r1,
                             floating[::1] scratch, floating[:, :, ::1] dz_pad):
    """dW_acc += weight gradient of output rows r0 .. r1 - 1 of the batch
    (flat over m * n_H; see _conv_direct.h). Each image's band is padded
    just before its tiles read it: its input rows into ``scratch`` (from
    _padding_scratch), and, when dW_acc's channels are padded, its dZ rows
    into ``dz_pad`` (zeros, (n_H, n_W, nC_pad)), widened to whole vectors."""
    cdef Py_ssize_t i, h, h0, h1, y_lo, y_hi, H = A.shape[1], C = A.shape[3]
    cdef Py_ssize_t Wp = A.shape[2] + 2 * pad
    cdef Py_ssize_t n_H = dZ.shape[1], n_W = dZ.shape[2], n_C = dZ.shape[3]
    cdef Py_ssize_t nC_pad = dW_acc.shape[1], x
    cdef const floating* a
    cdef const floating* dz
    with nogil:
        for i in range(r0 // n_H, (r1 - 1) // n_H + 1):
            h0 = max(r0 - i * n_H, 0)
            h1 = min(r1 - i * n_H, n_H)
            _band_input_rows(h0, h1, f, stride, pad, H, &y_lo, &y_hi)
            a = _padded_rows(A[i], pad, y_lo, y_hi, scratch)
            if nC_pad == n_C:
                dz = &dZ[i, h0, 0, 0]
            else:
                for h in range(h0, h1):
                    for x in range(n_W):
                        memcpy(&dz_pad[h - h0, x, 0], &dZ[i, h, x, 0], n_C * sizeof(floating))
                dz = &dz_pad[0, 0, 0]
            if floating is float:
                if half:
                    cnx_conv_weight_grad_half_f(a, Wp, C, dz, h0, h1, n_W, nC_pad, f,
                                                stride, &dW_acc[0, 0])
                else:
                    cnx_conv_weight_grad_f(a, Wp, C, dz, h0, h1, n_W, nC_pad, f,
                                           stride, &dW_acc[0, 0])
            else:
                if half:
                    cnx_conv_weight_grad_half_d(a, Wp, C, dz, h0, h1, n_W, nC_pad, f,
                                                stride, &dW_acc[0, 0])
                else:
                    cnx_conv_weight_grad_d(a, Wp, C, dz, h0, h1, n_W, nC_pad, f,
                                           stride, &dW_acc[0, 0])


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


# The windows and rows input gradients make padded scratch (dA with its
# border) for a few images at a time, so that it stays small whatever the
# number of images in a reduction block.
PAD_BLOCK_BYTES = 4 * 1024 * 1024


def _images_per_block(A, Py_ssize_t pad, dtype):
    m, H, Wd, C = A.shape
    image_bytes = (H + 2 * pad) * (Wd + 2 * pad) * max(C, 1) * dtype.itemsize
    return max(1, PAD_BLOCK_BYTES // image_bytes)


# --------------------------------------------------------------------------
# Forward drivers
# --------------------------------------------------------------------------

def conv_forward(A, W2, b, Z, Py_ssize_t f, Py_ssize_t stride, Py_ssize_t pad, plan):
    """Z[...] = conv(A, W) + b, Z preallocated with shape (m, n_H, n_W, n_C),
    the way ``plan`` says (``_plan.plan_conv_forward``).

    A is C-contiguous NHWC, W2 the filters as (f*f*n_C_prev, n_C), all of
    Z's dtype.
    """
    path = plan.path
    if path == "empty":
        return
    if path == "planar" or path == "direct":
        _forward_direct(A, W2, b, Z, f, stride, pad, path == "planar", plan.parts)
        return
    # GEMM paths: output pixels are independent. Each GEMM call takes
    # plan.gemm_rows of them (fewer if its scratch would pass CHUNK_BYTES),
    # the same calls on any number of threads; threads take whole calls.
    cdef Py_ssize_t n_C = W2.shape[1], n_H = Z.shape[1], n_W = Z.shape[2]
    Z2 = Z.reshape(-1, n_C)
    bias = b.reshape(n_C)
    A2 = A.reshape(-1, A.shape[3]) if path == "gemm1x1" and stride == 1 else None
    cdef Py_ssize_t pixels = Z2.shape[0]
    cdef Py_ssize_t chunk = min(plan.gemm_rows,
                                _chunk_rows(pixels, W2.shape[0] if A2 is None else n_C,
                                            Z2.itemsize))
    scratch = np.empty((chunk, W2.shape[0]), dtype=Z.dtype) if A2 is None else None

    def pixel_calls(Py_ssize_t c0, Py_ssize_t c1):
        cdef Py_ssize_t row0, row1
        # A fresh scratch per thread; the calling thread runs call 0.
        rows = scratch if c0 == 0 or scratch is None else np.empty_like(scratch)
        for row0 in range(c0 * chunk, min(c1 * chunk, pixels), chunk):
            row1 = min(pixels, row0 + chunk)
            if A2 is None:
                _forward_rows(A, W2, Z2, row0, row1, f, stride, pad, n_H, n_W, rows)
            else:  # the (m*H*W, C) view: no copy at all
                np.matmul(A2[row0:row1], W2, out=Z2[row0:row1])
            # while this call's Z is still in cache
            np.add(Z2[row0:row1], bias, out=Z2[row0:row1])

    # (pixels + chunk - 1) // chunk, not -(-pixels // chunk): with cdivision
    # C's division truncates, and that dropped the last, partial call.
    run_parts(pixel_calls, (pixels + chunk - 1) // chunk, plan.parts, calls_blas=True)


def _forward_direct(A, W2, b, Z, Py_ssize_t f, Py_ssize_t stride, Py_ssize_t pad,
                    bint planar, Py_ssize_t parts):
    """conv_forward by the direct kernels, the batch's output rows cut into
    ``parts`` runs, one per thread."""
    K, n_C = W2.shape
    dtype = Z.dtype
    cdef Py_ssize_t rows = Z.shape[0] * Z.shape[1]
    if planar:
        W2 = np.ascontiguousarray(W2)
        bias = np.ascontiguousarray(b.reshape(n_C))
        run_parts(lambda r0, r1: _conv_forward_planar(A, W2, bias, Z, f, pad, r0, r1),
                  rows, parts)
        return
    half = n_C <= _vector_lanes(dtype, half=True)
    W_pad = _pad_columns(W2, _round_up(n_C, _vector_lanes(dtype, half)))
    bias_pad = _pad_columns(b.reshape(1, n_C), W_pad.shape[1])[0]
    run_parts(lambda r0, r1: _conv_forward_direct(A, W_pad, bias_pad, Z, f, stride, pad,
                                                  half, r0, r1),
              rows, parts)


def _forward_rows(const floating[:, :, :, ::1] A, W2, Z2, Py_ssize_t row0,
                  Py_ssize_t row1, Py_ssize_t f, Py_ssize_t stride,
                  Py_ssize_t pad, Py_ssize_t n_H, Py_ssize_t n_W, scratch):
    """Z2[row0:row1] = im2row rows @ W2: one GEMM, its rows made in
    ``scratch`` (at least row1 - row0 rows of W2.shape[0])."""
    cdef Py_ssize_t n = row1 - row0
    cdef floating[:, ::1] rows = scratch[:n]
    with nogil:
        _im2row(A, rows, row0, f, stride, pad, n_H, n_W)
    # numpy's matmul releases the GIL inside BLAS.
    np.matmul(scratch[:n], W2, out=Z2[row0:row1])


# --------------------------------------------------------------------------
# Backward drivers
# --------------------------------------------------------------------------

def conv_backward(A, W2, dZ, dA, dW2, Py_ssize_t f, Py_ssize_t stride,
                  Py_ssize_t pad, plan):
    """Fill dA (zeroed, shape of A) and dW2 (zeroed, (K, n_C)) from dZ, the
    way ``plan`` says (``_plan.plan_conv_backward``)."""
    path = plan.path
    if path == "empty":
        return
    cdef Py_ssize_t n_H = dZ.shape[1]
    if path == "gemm1x1":
        block_gradient = lambda r0, r1: _backward_gemm1x1(A, W2, dZ, dA, stride, r0, r1)
    elif path == "im2row":
        block_gradient = lambda r0, r1: _backward_images(
            A[r0 // n_H:r1 // n_H], W2, dZ[r0 // n_H:r1 // n_H], dA[r0 // n_H:r1 // n_H],
            f, stride, pad)
    else:
        if path == "transposed":
            _input_gradient_transposed(W2, dZ, dA, f, pad, plan.transposed)
        block_gradient = _DirectBlocks(A, W2, dZ, dA, f, stride, pad, path,
                                       plan.parts <= 1)
    _reduce_over_blocks(block_gradient, plan, dW2,
                        calls_blas=path in ("gemm1x1", "im2row", "rows"))


def _reduce_over_blocks(block_gradient, plan, out, bint calls_blas):
    """out[...] = the sum, in block order, of block_gradient(r0, r1) over the
    plan's fixed reduction blocks (runs of output rows), the blocks cut over
    plan.parts threads: the same bits on any number of threads."""
    bounds = plan.reduction_bounds
    cdef Py_ssize_t k, n_blocks = len(bounds) - 1
    if n_blocks == 1:
        # One block on any thread count: BLAS may keep its threads (holding
        # it at one made a batch-1 3x3 128 -> 128 backward 0.78x as fast).
        out[...] = block_gradient(bounds[0], bounds[1])[:, :out.shape[1]]
        return
    partial = [None] * n_blocks

    def run_blocks(Py_ssize_t b0, Py_ssize_t b1):
        for k in range(b0, b1):
            partial[k] = block_gradient(bounds[k], bounds[k + 1])

    if calls_blas:
        # BLAS on one thread even when the blocks run on one: the sum of a
        # block must not depend on how many threads its GEMMs would get.
        with _blas_single_threaded():
            run_parts(run_blocks, n_blocks, plan.parts, calls_blas=True)
    else:
        run_parts(run_blocks, n_blocks, plan.parts)
    total = partial[0]
    for k in range(1, n_blocks):
        np.add(total, partial[k], out=total)
    out[...] = total[:, :out.shape[1]]


cdef class _DirectBlocks:
    """block_gradient(r0, r1) for the direct weight gradient's tiles
    (_conv_weight_grad_direct), which read the windows in place, with the
    block's input gradient by ``input_grad``:

    - "transposed": none here (made whole beforehand);
    - "windows": each output pixel's window gradient, W2 @ dz, added onto dA
      in place;
    - "rows": dZ @ W2.T a chunk of output pixels at a time (one GEMM), the
      rows scattered onto dA by row2im.

    The last two need blocks of whole images: windows overlap across rows.

    A class, not a closure over a threading.local: on a seed-sized call
    (10, 4, 4, 3) 2x2 -> 8 the closure's set-up and the thread-local look-ups
    were 40% of conv_backward (Xeon model 207: 19 of 53 us).
    """
    cdef object A, W2, dZ, dA, Wt, dtype, input_grad, per_thread, scratch, dz_pad
    cdef Py_ssize_t f, stride, pad, n_H, nC_pad, block
    cdef bint half, shared

    def __init__(self, A, W2, dZ, dA, Py_ssize_t f, Py_ssize_t stride, Py_ssize_t pad,
                 input_grad, bint one_thread):
        cdef Py_ssize_t K = W2.shape[0], n_C = W2.shape[1], vl
        self.A, self.W2, self.dZ, self.dA = A, W2, dZ, dA
        self.f, self.stride, self.pad, self.input_grad = f, stride, pad, input_grad
        self.n_H = dZ.shape[1]
        self.dtype = dA.dtype
        is_float = self.dtype == np.float32
        self.half = n_C <= (CNX_HALF_VL_f if is_float else CNX_HALF_VL_d)
        vl = ((CNX_HALF_VL_f if self.half else CNX_VL_f) if is_float
              else (CNX_HALF_VL_d if self.half else CNX_VL_d))
        self.nC_pad = _round_up(n_C, vl)
        self.Wt = (_pad_columns(W2.T, _round_up(K, CNX_VL_f if is_float else CNX_VL_d))
                   if input_grad == "windows" else None)
        self.block = _images_per_block(A, pad, self.dtype) if input_grad != "transposed" else 1
        # Scratch made once per thread, not per block: fresh pages cost more
        # than the tiles of a small block (ResNet's layer at batch 1 in
        # blocks of a row: 3.5x slower with scratch per block). On one
        # thread it is simply kept here.
        self.shared = one_thread
        self.per_thread = None if one_thread else threading.local()
        self.scratch = None

    cdef tuple _scratch(self):
        """(padding scratch, dz_pad) of the calling thread."""
        cdef Py_ssize_t H = self.dA.shape[1], Wd = self.dA.shape[2], C = self.dA.shape[3]
        scratch = self.scratch if self.shared else getattr(self.per_thread, "scratch", None)
        if scratch is None:
            scratch = (_padding_scratch(H, Wd, C, self.pad, self.dtype),
                       np.zeros((self.n_H if self.nC_pad != self.dZ.shape[3] else 1,
                                 self.dZ.shape[2], self.nC_pad), dtype=self.dtype))
            if self.shared:
                self.scratch = scratch
            else:
                self.per_thread.scratch = scratch
        return scratch

    def __call__(self, Py_ssize_t r0, Py_ssize_t r1):
        cdef Py_ssize_t j0, j1, pad = self.pad, n_H = self.n_H
        scratch, dz_pad = self._scratch()
        dW_acc = np.zeros((self.W2.shape[0], self.nC_pad), dtype=self.dtype)
        _conv_weight_grad_direct(self.A, self.dZ, dW_acc, self.f, self.stride, pad,
                                 self.half, r0, r1, scratch, dz_pad)
        if self.input_grad == "transposed":
            return dW_acc
        dA, dZ = self.dA, self.dZ
        m, H, Wd, C = dA.shape
        for j0 in range(r0 // n_H, r1 // n_H, self.block):
            j1 = min(r1 // n_H, j0 + self.block)
            if self.input_grad == "rows":
                _input_gradient_rows(self.W2, dZ[j0:j1], dA[j0:j1], self.f, self.stride, pad)
            else:
                dA_pad = (np.zeros((j1 - j0, H + 2 * pad, Wd + 2 * pad, C), dtype=self.dtype)
                          if pad else dA[j0:j1])
                _conv_input_grad_direct(dA_pad, dZ[j0:j1], self.Wt, self.f, self.stride)
                if pad:
                    dA[j0:j1] = dA_pad[:, pad:pad + H, pad:pad + Wd]
        return dW_acc


def _input_gradient_transposed(W2, dZ, dA, Py_ssize_t f, Py_ssize_t pad, plan):
    """dA[...] = input gradient of a stride-1 convolution, as a convolution.

    dA[y, x, c] = sum over (di, dj, n) of dZ[y + pad - di, x + pad - dj, n]
    * W[di, dj, c, n]: the forward convolution of dZ, padded by f - 1 - pad,
    with the filters flipped in space and their channel axes swapped. The
    direct forward kernel then runs it (as ``plan`` says) with no im2row
    matrix and no scatter.
    """
    C, n_C = dA.shape[3], dZ.shape[3]
    W_flipped = np.ascontiguousarray(
        W2.reshape(f, f, C, n_C)[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(f * f * n_C, C)
    _forward_direct(dZ, W_flipped, np.zeros(C, dtype=dA.dtype), dA, f, 1, f - 1 - pad,
                    plan.path == "planar", plan.parts)


def _backward_gemm1x1(A, W2, dZ, dA, Py_ssize_t stride, Py_ssize_t r0, Py_ssize_t r1):
    """dA of output rows r0 .. r1 - 1 (flat over m * n_H) of a 1x1
    convolution at pad 0, and their weight gradient. No two output pixels
    share an input pixel, so every block's dA is its own."""
    cdef Py_ssize_t n_H = dZ.shape[1], n_W = dZ.shape[2], C = A.shape[3]
    cdef Py_ssize_t n_C = dZ.shape[3], p0 = r0 * n_W, p1 = r1 * n_W
    cdef Py_ssize_t chunk, row0, n
    dZ2 = dZ.reshape(-1, n_C)
    if stride == 1:  # A and dA are the (m*H*W, C) matrices of their rows
        np.matmul(dZ2[p0:p1], W2.T, out=dA.reshape(-1, C)[p0:p1])
        return np.matmul(A.reshape(-1, C)[p0:p1].T, dZ2[p0:p1])
    # Strided: gather the sampled pixels into rows, chunk by chunk.
    chunk = _chunk_rows(p1 - p0, C, dZ.itemsize)
    scratch = np.empty((chunk, C), dtype=dZ.dtype)
    dW2 = np.zeros((C, n_C), dtype=dZ.dtype)
    dW_part = np.empty((C, n_C), dtype=dZ.dtype)
    for row0 in range(p0, p1, chunk):
        n = min(chunk, p1 - row0)
        _im2row_rows(A, scratch[:n], row0, 1, stride, 0, n_H, n_W)
        np.matmul(scratch[:n].T, dZ2[row0:row0 + n], out=dW_part)
        np.add(dW2, dW_part, out=dW2)
        np.matmul(dZ2[row0:row0 + n], W2.T, out=scratch[:n])
        _row2im_add_rows(scratch[:n], dA, row0, 1, stride, 0, n_H, n_W)
    return dW2


def _im2row_rows(const floating[:, :, :, ::1] A, floating[:, ::1] rows,
                 Py_ssize_t row0, Py_ssize_t f, Py_ssize_t stride,
                 Py_ssize_t pad, Py_ssize_t n_H, Py_ssize_t n_W):
    with nogil:
        _im2row(A, rows, row0, f, stride, pad, n_H, n_W)


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
