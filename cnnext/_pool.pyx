"""Pooling kernels: loops over the windows, channel math in _window_ops.h.

Private: every argument was validated by ``cnnext/__init__.py``. Arrays are
C-contiguous NHWC of one floating dtype. Windows start at (h * stride,
w * stride) and never leave the input (pooling has no padding).
"""
from cython cimport floating
from libc.stdint cimport uint8_t
from libc.string cimport memset

import numpy as np

# Elements of window scratch kept on the stack (8 KiB of float64): enough
# for windows up to 3 x 3 with 100 channels, 8 x 8 with 40.
cdef enum:
    STACK_SCRATCH = 1024


cdef extern from "_window_ops.h" nogil:
    int cnx_cpu_level()
    int CNX_X86_LEVELS
    const char* cnx_compiler()
    void cnx_window_ops_select(int level)
    Py_ssize_t CNX_WINDOW_SCRATCH(Py_ssize_t f, Py_ssize_t C)
    void cnx_window_max_f(const float* a, Py_ssize_t row_stride, Py_ssize_t f,
                          Py_ssize_t C, float* out, float* scratch)
    void cnx_window_max_d(const double* a, Py_ssize_t row_stride, Py_ssize_t f,
                          Py_ssize_t C, double* out, double* scratch)
    void cnx_window_mean_f(const float* a, Py_ssize_t row_stride, Py_ssize_t f,
                           Py_ssize_t C, float* out, float* scratch)
    void cnx_window_mean_d(const double* a, Py_ssize_t row_stride, Py_ssize_t f,
                           Py_ssize_t C, double* out, double* scratch)
    void cnx_window_max_backward_f(const float* a, float* da, Py_ssize_t row_stride,
                                   Py_ssize_t f, Py_ssize_t C, const float* grad,
                                   float* scratch, int accumulate)
    void cnx_window_max_backward_d(const double* a, double* da, Py_ssize_t row_stride,
                                   Py_ssize_t f, Py_ssize_t C, const double* grad,
                                   double* scratch, int accumulate)
    void cnx_window_mean_backward_f(float* da, Py_ssize_t row_stride, Py_ssize_t f,
                                    Py_ssize_t C, const float* grad, float* scratch,
                                    int accumulate)
    void cnx_window_mean_backward_d(double* da, Py_ssize_t row_stride, Py_ssize_t f,
                                    Py_ssize_t C, const double* grad, double* scratch,
                                    int accumulate)


def cpu_level():
    """The highest kernel level (0 baseline, 1 AVX2, 2 AVX-512) that this
    build has and this CPU runs."""
    return cnx_cpu_level()


def build_info():
    """(compiler that built the kernels, whether it has the x86-64 levels)."""
    return cnx_compiler().decode(), bool(CNX_X86_LEVELS)


def select_level(int level):
    """Point the window kernels at `level` (see cnnext/_dispatch.py)."""
    cnx_window_ops_select(level)
    cnx_tie_bits_select(level)


cdef object _heap_scratch(Py_ssize_t f, Py_ssize_t C, dtype):
    """The window scratch of a large window, else None: a small window's is
    on the stack (allocating it cost a quarter of a seed-sized call)."""
    if CNX_WINDOW_SCRATCH(f, C) <= STACK_SCRATCH:
        return None
    return np.empty(CNX_WINDOW_SCRATCH(f, C), dtype=dtype)


cdef inline void _window_forward(const floating* a, Py_ssize_t row_stride,
                                 Py_ssize_t f, Py_ssize_t C, bint is_max,
                                 floating* out, floating* scratch) noexcept nogil:
    if floating is float:
        if is_max:
            cnx_window_max_f(a, row_stride, f, C, out, scratch)
        else:
            cnx_window_mean_f(a, row_stride, f, C, out, scratch)
    else:
        if is_max:
            cnx_window_max_d(a, row_stride, f, C, out, scratch)
        else:
            cnx_window_mean_d(a, row_stride, f, C, out, scratch)


cdef inline void _window_backward(const floating* a, floating* da,
                                  Py_ssize_t row_stride, Py_ssize_t f, Py_ssize_t C,
                                  const floating* grad, bint is_max,
                                  floating* scratch, int accumulate) noexcept nogil:
    if floating is float:
        if is_max:
            cnx_window_max_backward_f(a, da, row_stride, f, C, grad, scratch, accumulate)
        else:
            cnx_window_mean_backward_f(da, row_stride, f, C, grad, scratch, accumulate)
    else:
        if is_max:
            cnx_window_max_backward_d(a, da, row_stride, f, C, grad, scratch, accumulate)
        else:
            cnx_window_mean_backward_d(da, row_stride, f, C, grad, scratch, accumulate)


def pool_forward(const floating[:, :, :, ::1] A, floating[:, :, :, ::1] out,
                 Py_ssize_t f, Py_ssize_t stride, bint is_max):
    """out[i, h, w, :] = max or mean of the window of output pixel (h, w)."""
    cdef Py_ssize_t i, h, w, C = A.shape[3], row_stride = A.shape[2] * A.shape[3]
    if C == 0 or out.shape[0] == 0:
        return
    cdef floating stack_scratch[STACK_SCRATCH]
    cdef floating[::1] heap_scratch = _heap_scratch(
        f, C, np.float32 if floating is float else np.float64)
    cdef floating* scratch = &stack_scratch[0] if heap_scratch is None else &heap_scratch[0]
    with nogil:
        for i in range(out.shape[0]):
            for h in range(out.shape[1]):
                for w in range(out.shape[2]):
                    _window_forward(&A[i, h * stride, w * stride, 0], row_stride,
                                    f, C, is_max, &out[i, h, w, 0], scratch)


cdef void _zero_outside_windows(floating[:, :, ::1] da, Py_ssize_t n_H,
                                Py_ssize_t n_W, Py_ssize_t f,
                                Py_ssize_t stride) noexcept nogil:
    """Zero the pixels of one image's gradient that no window assigns: all of
    them when windows overlap (they add up), else the gaps between windows
    (stride > f) and the margin past the last one."""
    cdef Py_ssize_t h, w, y, H = da.shape[0], Wd = da.shape[1], C = da.shape[2]
    cdef Py_ssize_t row = Wd * C, gap_end
    cdef size_t item = sizeof(floating)
    if stride < f:
        memset(&da[0, 0, 0], 0, H * row * item)
        return
    for h in range(n_H):
        # Rows of window row h: its columns' gaps; then the rows below it.
        for y in range(h * stride, h * stride + f):
            for w in range(n_W):
                gap_end = (w + 1) * stride if w + 1 < n_W else Wd
                if gap_end > w * stride + f:
                    memset(&da[y, w * stride + f, 0], 0, (gap_end - w * stride - f) * C * item)
        gap_end = (h + 1) * stride if h + 1 < n_H else H
        if gap_end > h * stride + f:
            memset(&da[h * stride + f, 0, 0], 0, (gap_end - h * stride - f) * row * item)


def pool_backward(const floating[:, :, :, ::1] A, const floating[:, :, :, ::1] dA,
                  floating[:, :, :, ::1] dA_prev, Py_ssize_t f, Py_ssize_t stride,
                  bint is_max):
    """dA_prev (uninitialised, shape of A) = the gradient flowing back from dA."""
    cdef Py_ssize_t i, h, w, C = A.shape[3], row_stride = A.shape[2] * A.shape[3]
    if dA_prev.size == 0:
        return
    cdef floating stack_scratch[STACK_SCRATCH]
    cdef floating[::1] heap_scratch = _heap_scratch(
        f, C, np.float32 if floating is float else np.float64)
    cdef floating* scratch = &stack_scratch[0] if heap_scratch is None else &heap_scratch[0]
    # Windows that do not overlap are assigned rather than added to.
    cdef int accumulate = stride < f
    with nogil:
        for i in range(dA_prev.shape[0]):
            # Zeroed here, image by image and on every thread, rather than by
            # one np.zeros pass over the whole batch before the call.
            _zero_outside_windows(dA_prev[i], dA.shape[1], dA.shape[2], f, stride)
            for h in range(dA.shape[1]):
                for w in range(dA.shape[2]):
                    _window_backward(&A[i, h * stride, w * stride, 0],
                                     &dA_prev[i, h * stride, w * stride, 0],
                                     row_stride, f, C, &dA[i, h, w, 0], is_max,
                                     scratch, accumulate)


# Max pooling with a record of where each window's maxima are (the bit
# layout is _tie_bits.h's), so that its backward pass neither reads A_prev
# again nor recomputes a max.
cdef extern from "_tie_bits.h" nogil:
    void cnx_tie_bits_select(int level)
    Py_ssize_t CNX_TIE_ROW_BYTES(Py_ssize_t f, Py_ssize_t C)
    void cnx_window_max_tie_bits_f(const float* a, Py_ssize_t row_stride, Py_ssize_t f,
                                   Py_ssize_t C, float* out, uint8_t* bits, float* scratch)
    void cnx_window_max_tie_bits_d(const double* a, Py_ssize_t row_stride, Py_ssize_t f,
                                   Py_ssize_t C, double* out, uint8_t* bits, double* scratch)
    void cnx_window_backward_tie_bits_f(float* da, Py_ssize_t row_stride, Py_ssize_t f,
                                        Py_ssize_t C, const float* grad, const uint8_t* bits,
                                        float* scratch, int accumulate)
    void cnx_window_backward_tie_bits_d(double* da, Py_ssize_t row_stride, Py_ssize_t f,
                                        Py_ssize_t C, const double* grad, const uint8_t* bits,
                                        double* scratch, int accumulate)


def tie_record_bytes(Py_ssize_t f, Py_ssize_t C):
    """Bytes of one window's record: f rows of CNX_TIE_ROW_BYTES."""
    return f * CNX_TIE_ROW_BYTES(f, C)


def max_pool_forward_recording(const floating[:, :, :, ::1] A, floating[:, :, :, ::1] out,
                               uint8_t[:, :, :, ::1] record, Py_ssize_t f, Py_ssize_t stride):
    """out = each window's max, record[i, h, w] = the bits of where it is."""
    cdef Py_ssize_t i, h, w, C = A.shape[3], row_stride = A.shape[2] * A.shape[3]
    if C == 0 or out.shape[0] == 0:
        return
    cdef floating stack_scratch[STACK_SCRATCH]
    cdef floating[::1] heap_scratch = _heap_scratch(
        f, C, np.float32 if floating is float else np.float64)
    cdef floating* scratch = &stack_scratch[0] if heap_scratch is None else &heap_scratch[0]
    with nogil:
        for i in range(out.shape[0]):
            for h in range(out.shape[1]):
                for w in range(out.shape[2]):
                    if floating is float:
                        cnx_window_max_tie_bits_f(&A[i, h * stride, w * stride, 0], row_stride,
                                                  f, C, &out[i, h, w, 0], &record[i, h, w, 0],
                                                  scratch)
                    else:
                        cnx_window_max_tie_bits_d(&A[i, h * stride, w * stride, 0], row_stride,
                                                  f, C, &out[i, h, w, 0], &record[i, h, w, 0],
                                                  scratch)


def max_pool_backward_recorded(const floating[:, :, :, ::1] dA,
                               const uint8_t[:, :, :, ::1] record,
                               floating[:, :, :, ::1] dA_prev, Py_ssize_t f, Py_ssize_t stride):
    """dA_prev (uninitialised, shape of A) = dA sent where the record's bits
    are set, as pool_backward sends it to every entry equal to the max."""
    cdef Py_ssize_t i, h, w, C = dA_prev.shape[3]
    cdef Py_ssize_t row_stride = dA_prev.shape[2] * dA_prev.shape[3]
    if dA_prev.size == 0:
        return
    cdef floating stack_scratch[STACK_SCRATCH]
    cdef floating[::1] heap_scratch = _heap_scratch(
        f, C, np.float32 if floating is float else np.float64)
    cdef floating* scratch = &stack_scratch[0] if heap_scratch is None else &heap_scratch[0]
    cdef int accumulate = stride < f
    with nogil:
        for i in range(dA_prev.shape[0]):
            _zero_outside_windows(dA_prev[i], dA.shape[1], dA.shape[2], f, stride)
            for h in range(dA.shape[1]):
                for w in range(dA.shape[2]):
                    if floating is float:
                        cnx_window_backward_tie_bits_f(
                            &dA_prev[i, h * stride, w * stride, 0], row_stride, f, C,
                            &dA[i, h, w, 0], &record[i, h, w, 0], scratch, accumulate)
                    else:
                        cnx_window_backward_tie_bits_d(
                            &dA_prev[i, h * stride, w * stride, 0], row_stride, f, C,
                            &dA[i, h, w, 0], &record[i, h, w, 0], scratch, accumulate)
