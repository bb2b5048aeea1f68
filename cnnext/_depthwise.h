/* Depthwise convolution (one input channel per output channel, MobileNet's
 * 3x3 layers), forward and backward, on one zero-padded NHWC image.
 *
 * Each output pixel's channels are summed over the window's taps in a block
 * of CNX_DW_BLOCK channels held in a local array (registers: 4 vectors of
 * AVX-512, 16 of SSE2), the channel loops innermost and contiguous for the
 * compiler to vectorise at each level (_per_isa.h). The layer is
 * memory-bound: each input pixel is read f_h * f_w times from cache, each
 * output written once.
 *
 * Layouts: `a` (Hp, Wp, C) the padded image, `w` (f_h, f_w, C), `z` and `dz`
 * (n_H, n_W, C); `geom` = {f_h, f_w, s_h, s_w, d_h, d_w}.
 */
#ifndef CNNEXT_DEPTHWISE_H
#define CNNEXT_DEPTHWISE_H

#include <stddef.h>

#include "_dispatch.h"

enum { CNX_DW_BLOCK = 64 };

#define CNX_DEFINE_DEPTHWISE(T, SUFFIX)                                               \
/* z = the depthwise convolution of `a` by `w`, plus bias (or not, NULL). */          \
static void CNX_ISA(cnx_depthwise_forward_##SUFFIX)(                                  \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C, const T *restrict w,          \
        const T *restrict bias, const ptrdiff_t *geom, ptrdiff_t n_H, ptrdiff_t n_W,  \
        T *restrict z)                                                                \
{                                                                                     \
    const ptrdiff_t f_h = geom[0], f_w = geom[1], s_h = geom[2], s_w = geom[3];       \
    const ptrdiff_t d_h = geom[4], d_w = geom[5];                                     \
    for (ptrdiff_t y = 0; y < n_H; y++)                                               \
        for (ptrdiff_t x = 0; x < n_W; x++) {                                         \
            const T *restrict corner = a + (y * s_h * Wp + x * s_w) * C;              \
            T *restrict out = z + (y * n_W + x) * C;                                  \
            for (ptrdiff_t c0 = 0; c0 < C; c0 += CNX_DW_BLOCK) {                      \
                const ptrdiff_t n = C - c0 < CNX_DW_BLOCK ? C - c0 : CNX_DW_BLOCK;    \
                T acc[CNX_DW_BLOCK];                                                  \
                for (ptrdiff_t c = 0; c < n; c++) acc[c] = bias ? bias[c0 + c] : (T)0; \
                for (ptrdiff_t i = 0; i < f_h; i++)                                   \
                    for (ptrdiff_t j = 0; j < f_w; j++) {                             \
                        const T *restrict src = corner + (i * d_h * Wp + j * d_w) * C + c0; \
                        const T *restrict wk = w + (i * f_w + j) * C + c0;            \
                        if (n == CNX_DW_BLOCK) /* a constant trip count: registers */ \
                            for (ptrdiff_t c = 0; c < CNX_DW_BLOCK; c++)              \
                                acc[c] += src[c] * wk[c];                             \
                        else                                                          \
                            for (ptrdiff_t c = 0; c < n; c++) acc[c] += src[c] * wk[c]; \
                    }                                                                 \
                for (ptrdiff_t c = 0; c < n; c++) out[c0 + c] = acc[c];               \
            }                                                                         \
        }                                                                             \
}                                                                                     \
                                                                                      \
/* da (the padded image's gradient) += what each window's taps contributed;          \
 * dw += this image's weight gradient. */                                             \
static void CNX_ISA(cnx_depthwise_backward_##SUFFIX)(                                 \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C, const T *restrict w,          \
        const ptrdiff_t *geom, ptrdiff_t n_H, ptrdiff_t n_W, const T *restrict dz,    \
        T *restrict da, T *restrict dw)                                               \
{                                                                                     \
    const ptrdiff_t f_h = geom[0], f_w = geom[1], s_h = geom[2], s_w = geom[3];       \
    const ptrdiff_t d_h = geom[4], d_w = geom[5];                                     \
    for (ptrdiff_t y = 0; y < n_H; y++)                                               \
        for (ptrdiff_t x = 0; x < n_W; x++) {                                         \
            const ptrdiff_t corner = (y * s_h * Wp + x * s_w) * C;                    \
            const T *restrict grad = dz + (y * n_W + x) * C;                          \
            for (ptrdiff_t i = 0; i < f_h; i++)                                       \
                for (ptrdiff_t j = 0; j < f_w; j++) {                                 \
                    const ptrdiff_t tap = corner + (i * d_h * Wp + j * d_w) * C;      \
                    const T *restrict src = a + tap;                                  \
                    T *restrict dst = da + tap;                                       \
                    const T *restrict wk = w + (i * f_w + j) * C;                     \
                    T *restrict dwk = dw + (i * f_w + j) * C;                         \
                    for (ptrdiff_t c = 0; c < C; c++) {                               \
                        dst[c] += grad[c] * wk[c];                                    \
                        dwk[c] += grad[c] * src[c];                                   \
                    }                                                                 \
                }                                                                     \
        }                                                                             \
}

#define CNX_PER_ISA_KERNELS CNX_DEFINE_DEPTHWISE(float, f) CNX_DEFINE_DEPTHWISE(double, d)
#include "_per_isa.h"
#undef CNX_DEFINE_DEPTHWISE

#define CNX_DEPTHWISE_KERNELS(X)                                                       \
    X(cnx_depthwise_forward_f) X(cnx_depthwise_forward_d)                              \
    X(cnx_depthwise_backward_f) X(cnx_depthwise_backward_d)
CNX_DEPTHWISE_KERNELS(CNX_DISPATCHED)

/* Points every depthwise kernel at `level` (a CNX_LEVEL_*). */
CNX_DEFINE_SELECT(cnx_depthwise_select, CNX_DEPTHWISE_KERNELS)

#endif /* CNNEXT_DEPTHWISE_H */
