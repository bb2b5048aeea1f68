/* Channel-vector math on one pooling window, for float and double.
 *
 * A window is f x f pixels of an NHWC image: `a` points at its top-left
 * pixel, consecutive pixels of a window row are C elements apart and
 * consecutive window rows `row_stride` elements apart. The channel loops are
 * the innermost ones, written here in plain C with `restrict` so that the
 * compiler vectorises them, and compiled once per instruction-set level
 * (_per_isa.h), the level picked at import (_dispatch.h): wheels stay
 * portable to any x86-64 and still use AVX2 / AVX-512 where the CPU has it.
 */
#ifndef CNNEXT_WINDOW_OPS_H
#define CNNEXT_WINDOW_OPS_H

#include <stddef.h>

#include "_dispatch.h"

/* With C >= CNX_SHORT_C the loops run over the C channels of one pixel at a
 * time. With fewer channels they run over one window row at a time instead:
 * its f pixels x C channels are f*C consecutive elements, a run long enough
 * to vectorise (the SIGNS case: f = 8, C = 8), at the cost of a pass through
 * `scratch` (CNX_WINDOW_SCRATCH(f, C) elements). */
#define CNX_SHORT_C 32
#define CNX_WINDOW_SCRATCH(f, C) (3 * (f) * (C) + (C))

#define CNX_DEFINE_WINDOW_OPS(T, SUFFIX)                                              \
/* out[c] = max of the window's channel c; a NaN wins, as in np.max. */               \
static void CNX_ISA(cnx_window_max_##SUFFIX)(                                     \
        const T *restrict a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C,          \
        T *restrict out, T *restrict scratch)                                         \
{                                                                                     \
    if (C >= CNX_SHORT_C) { /* channel runs long enough: one pass per pixel */      \
        for (ptrdiff_t c = 0; c < C; c++) out[c] = a[c];                              \
        for (ptrdiff_t di = 0; di < f; di++)                                          \
            for (ptrdiff_t dj = 0; dj < f; dj++) {                                    \
                const T *restrict src = a + di * row_stride + dj * C;                 \
                for (ptrdiff_t c = 0; c < C; c++) {                                   \
                    T v = src[c], m = out[c];                                         \
                    out[c] = (v > m || v != v) ? v : m;                               \
                }                                                                     \
            }                                                                         \
        return;                                                                       \
    }                                                                                 \
    const ptrdiff_t n = f * C;                                                        \
    T *restrict col_max = scratch; /* max over the rows, per (dj, c) */               \
    for (ptrdiff_t k = 0; k < n; k++) col_max[k] = a[k];                              \
    for (ptrdiff_t di = 1; di < f; di++) {                                            \
        const T *restrict src = a + di * row_stride;                                  \
        for (ptrdiff_t k = 0; k < n; k++) {                                           \
            T v = src[k], m = col_max[k];                                             \
            col_max[k] = (v > m || v != v) ? v : m;                                   \
        }                                                                             \
    }                                                                                 \
    for (ptrdiff_t c = 0; c < C; c++) out[c] = col_max[c];                            \
    for (ptrdiff_t dj = 1; dj < f; dj++)                                              \
        for (ptrdiff_t c = 0; c < C; c++) {                                           \
            T v = col_max[dj * C + c], m = out[c];                                    \
            out[c] = (v > m || v != v) ? v : m;                                       \
        }                                                                             \
}                                                                                     \
                                                                                      \
/* out[c] = mean of the window's channel c. */                                        \
static void CNX_ISA(cnx_window_mean_##SUFFIX)(                                    \
        const T *restrict a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C,          \
        T *restrict out, T *restrict scratch)                                         \
{                                                                                     \
    const T count = (T)(f * f);                                                       \
    if (C >= CNX_SHORT_C) {                                                           \
        for (ptrdiff_t c = 0; c < C; c++) out[c] = 0;                                 \
        for (ptrdiff_t di = 0; di < f; di++)                                          \
            for (ptrdiff_t dj = 0; dj < f; dj++) {                                    \
                const T *restrict src = a + di * row_stride + dj * C;                 \
                for (ptrdiff_t c = 0; c < C; c++) out[c] += src[c];                   \
            }                                                                         \
        for (ptrdiff_t c = 0; c < C; c++) out[c] /= count;                            \
        return;                                                                       \
    }                                                                                 \
    const ptrdiff_t n = f * C;                                                        \
    T *restrict col_sum = scratch;                                                    \
    for (ptrdiff_t k = 0; k < n; k++) col_sum[k] = a[k];                              \
    for (ptrdiff_t di = 1; di < f; di++) {                                            \
        const T *restrict src = a + di * row_stride;                                  \
        for (ptrdiff_t k = 0; k < n; k++) col_sum[k] += src[k];                       \
    }                                                                                 \
    for (ptrdiff_t c = 0; c < C; c++) out[c] = col_sum[c];                            \
    for (ptrdiff_t dj = 1; dj < f; dj++)                                              \
        for (ptrdiff_t c = 0; c < C; c++) out[c] += col_sum[dj * C + c];              \
    for (ptrdiff_t c = 0; c < C; c++) out[c] /= count;                                \
}                                                                                     \
                                                                                      \
/* da[window] (+)= mask * grad, mask = (x == max(x)) as in the seed: every tied   \
 * entry receives the gradient, and an inf or NaN gradient spreads as numpy's     \
 * mask * dA does. Written as a product so that it vectorises. With           \
 * `accumulate` 0 (windows that do not overlap) the window is assigned, which    \
 * spares reading it back. */                                                       \
static void CNX_ISA(cnx_window_max_backward_##SUFFIX)(                            \
        const T *restrict a, T *restrict da, ptrdiff_t row_stride, ptrdiff_t f,       \
        ptrdiff_t C, const T *restrict grad, T *restrict scratch, int accumulate)     \
{                                                                                     \
    const ptrdiff_t n = f * C;                                                        \
    T *restrict row_max = scratch + n, *restrict row_grad = scratch + 2 * n;          \
    T *restrict window_max = scratch + 3 * n;                                         \
    CNX_ISA(cnx_window_max_##SUFFIX)(a, row_stride, f, C, window_max, scratch);       \
    if (C >= CNX_SHORT_C) {                                                           \
        for (ptrdiff_t di = 0; di < f; di++)                                          \
            for (ptrdiff_t dj = 0; dj < f; dj++) {                                    \
                const ptrdiff_t at = di * row_stride + dj * C;                        \
                const T *restrict src = a + at;                                       \
                T *restrict dst = da + at;                                            \
                for (ptrdiff_t c = 0; c < C; c++) {                                   \
                    T mask = (src[c] == window_max[c]) ? (T)1 : (T)0;                 \
                    dst[c] = (accumulate ? dst[c] : (T)0) + mask * grad[c];           \
                }                                                                     \
            }                                                                         \
        return;                                                                       \
    }                                                                                 \
    for (ptrdiff_t dj = 0; dj < f; dj++)                                              \
        for (ptrdiff_t c = 0; c < C; c++) {                                           \
            row_max[dj * C + c] = window_max[c];                                      \
            row_grad[dj * C + c] = grad[c];                                           \
        }                                                                             \
    for (ptrdiff_t di = 0; di < f; di++) {                                            \
        const T *restrict src = a + di * row_stride;                                  \
        T *restrict dst = da + di * row_stride;                                       \
        if (accumulate) {                                                             \
            for (ptrdiff_t k = 0; k < n; k++) {                                       \
                T mask = (src[k] == row_max[k]) ? (T)1 : (T)0;                        \
                dst[k] += mask * row_grad[k];                                         \
            }                                                                         \
        } else {                                                                      \
            for (ptrdiff_t k = 0; k < n; k++) {                                       \
                T mask = (src[k] == row_max[k]) ? (T)1 : (T)0;                        \
                dst[k] = mask * row_grad[k];                                          \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
                                                                                      \
/* da[window] (+)= grad / f**2: the average's gradient, spread evenly. */             \
static void CNX_ISA(cnx_window_mean_backward_##SUFFIX)(                           \
        T *restrict da, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C,               \
        const T *restrict grad, T *restrict scratch, int accumulate)                  \
{                                                                                     \
    const ptrdiff_t n = f * C;                                                        \
    const T count = (T)(f * f);                                                       \
    if (C >= CNX_SHORT_C) {                                                           \
        for (ptrdiff_t di = 0; di < f; di++)                                          \
            for (ptrdiff_t dj = 0; dj < f; dj++) {                                    \
                T *restrict dst = da + di * row_stride + dj * C;                      \
                for (ptrdiff_t c = 0; c < C; c++)                                     \
                    dst[c] = (accumulate ? dst[c] : (T)0) + grad[c] / count;          \
            }                                                                         \
        return;                                                                       \
    }                                                                                 \
    T *restrict row_grad = scratch;                                                   \
    for (ptrdiff_t dj = 0; dj < f; dj++)                                              \
        for (ptrdiff_t c = 0; c < C; c++) row_grad[dj * C + c] = grad[c] / count;     \
    for (ptrdiff_t di = 0; di < f; di++) {                                            \
        T *restrict dst = da + di * row_stride;                                       \
        if (accumulate)                                                               \
            for (ptrdiff_t k = 0; k < n; k++) dst[k] += row_grad[k];                  \
        else                                                                          \
            for (ptrdiff_t k = 0; k < n; k++) dst[k] = row_grad[k];                   \
    }                                                                                 \
}

#define CNX_PER_ISA_KERNELS CNX_DEFINE_WINDOW_OPS(float, f) CNX_DEFINE_WINDOW_OPS(double, d)
#include "_per_isa.h"
#undef CNX_DEFINE_WINDOW_OPS

#define CNX_WINDOW_KERNELS(X)                                                          \
    X(cnx_window_max_f) X(cnx_window_max_d) X(cnx_window_mean_f) X(cnx_window_mean_d)  \
    X(cnx_window_max_backward_f) X(cnx_window_max_backward_d)                          \
    X(cnx_window_mean_backward_f) X(cnx_window_mean_backward_d)
CNX_WINDOW_KERNELS(CNX_DISPATCHED)

/* Points every window kernel at `level` (a CNX_LEVEL_*). */
CNX_DEFINE_SELECT(cnx_window_ops_select, CNX_WINDOW_KERNELS)

#endif /* CNNEXT_WINDOW_OPS_H */
