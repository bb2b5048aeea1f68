"""Pooling kernels, channel axis innermost.

Private: every argument was validated by ``cnnext/__init__.py``. Arrays are
C-contiguous NHWC of one floating dtype. Windows start at (h * stride,
w * stride) and never leave the input (pooling has no padding).
"""
from cython cimport floating


cdef void _window_max(const floating[:, :, :, ::1] A, Py_ssize_t i,
                      Py_ssize_t y0, Py_ssize_t x0, Py_ssize_t f,
                      floating* out) noexcept nogil:
    """out[c] = max of A[i, y0:y0+f, x0:x0+f, c]; NaN wins, as in np.max."""
    cdef Py_ssize_t C = A.shape[3], di, dj, c
    cdef const floating* src = &A[i, y0, x0, 0]
    cdef floating v
    for c in range(C):
        out[c] = src[c]
    for di in range(f):
        for dj in range(f):
            src = &A[i, y0 + di, x0 + dj, 0]
            for c in range(C):
                v = src[c]
                if v > out[c] or v != v:
                    out[c] = v


cdef void _window_mean(const floating[:, :, :, ::1] A, Py_ssize_t i,
                       Py_ssize_t y0, Py_ssize_t x0, Py_ssize_t f,
                       floating* out) noexcept nogil:
    """out[c] = mean of A[i, y0:y0+f, x0:x0+f, c]."""
    cdef Py_ssize_t C = A.shape[3], di, dj, c
    cdef const floating* src
    for c in range(C):
        out[c] = 0
    for di in range(f):
        for dj in range(f):
            src = &A[i, y0 + di, x0 + dj, 0]
            for c in range(C):
                out[c] += src[c]
    for c in range(C):
        out[c] /= f * f


def pool_forward(const floating[:, :, :, ::1] A, floating[:, :, :, ::1] out,
                 Py_ssize_t f, Py_ssize_t stride, bint is_max):
    """out[i, h, w, :] = max or mean of the window of output pixel (h, w)."""
    cdef Py_ssize_t i, h, w
    if out.shape[3] == 0:
        return
    with nogil:
        for i in range(out.shape[0]):
            for h in range(out.shape[1]):
                for w in range(out.shape[2]):
                    if is_max:
                        _window_max(A, i, h * stride, w * stride, f, &out[i, h, w, 0])
                    else:
                        _window_mean(A, i, h * stride, w * stride, f, &out[i, h, w, 0])


def pool_backward(const floating[:, :, :, ::1] A, const floating[:, :, :, ::1] dA,
                  floating[:, :, :, ::1] dA_prev, floating[::1] window_max,
                  Py_ssize_t f, Py_ssize_t stride, bint is_max):
    """Add to dA_prev (zeroed, shape of A) the gradient flowing back from dA.

    Max mode sends dA to every entry equal to its window's max (the seed's
    ``x == np.max(x)`` mask, ties included); average mode spreads dA / f**2
    evenly. ``window_max`` is scratch of length n_C.
    """
    cdef Py_ssize_t C = A.shape[3], i, h, w, di, dj, c, y0, x0
    cdef const floating* src
    cdef const floating* grad
    cdef floating* dst
    cdef floating share
    if C == 0:
        return
    with nogil:
        for i in range(dA.shape[0]):
            for h in range(dA.shape[1]):
                for w in range(dA.shape[2]):
                    y0 = h * stride
                    x0 = w * stride
                    grad = &dA[i, h, w, 0]
                    if is_max:
                        _window_max(A, i, y0, x0, f, &window_max[0])
                    for di in range(f):
                        for dj in range(f):
                            dst = &dA_prev[i, y0 + di, x0 + dj, 0]
                            if is_max:
                                src = &A[i, y0 + di, x0 + dj, 0]
                                for c in range(C):
                                    if src[c] == window_max[c]:
                                        dst[c] += grad[c]
                            else:
                                for c in range(C):
                                    dst[c] += grad[c] / (f * f)
