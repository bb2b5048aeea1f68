/* Direct convolution of one output row, for layers with few input channels.
 *
 * With n_C_prev of 1 or 3, im2row copies every input f*f times to build a
 * matrix whose rows are too short for BLAS to run well. Here the window is
 * read in place instead, and PIX output pixels x VL output channels are
 * accumulated in vector registers (GCC vector extensions). Compiled for several instruction sets, picked at load
 * time (see _window_ops.h).
 *
 * Layouts: `a` is one zero-padded NHWC image (Hp, Wp, C); `w` the filters as
 * (f, f, C, nC_pad) and `bias` (nC_pad,) with the channel axis zero-padded
 * to a multiple of CNX_VL_f / CNX_VL_d; `z` one output row (n_W, nC).
 */
#ifndef CNNEXT_CONV_DIRECT_H
#define CNNEXT_CONV_DIRECT_H

#include <stddef.h>
#include "_window_ops.h" /* CNX_DISPATCH */

#define CNX_PIX 4

/* 64-byte GCC vectors: one AVX-512 register, two AVX2 or four SSE ones.
 * aligned(sizeof(T)) lets them load from any element address. */
typedef float cnx_vec_f __attribute__((vector_size(64), aligned(4)));
typedef double cnx_vec_d __attribute__((vector_size(64), aligned(8)));
enum { CNX_VL_f = 16, CNX_VL_d = 8 };

#define CNX_DEFINE_CONV_DIRECT(T, SUFFIX)                                             \
CNX_DISPATCH static void cnx_conv_direct_row_##SUFFIX(                                \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C,                               \
        const T *restrict w, const T *restrict bias, ptrdiff_t f, ptrdiff_t nC,       \
        ptrdiff_t nC_pad, ptrdiff_t stride, ptrdiff_t y0, ptrdiff_t n_W,              \
        T *restrict z)                                                                \
{                                                                                     \
    for (ptrdiff_t w0 = 0; w0 < n_W; w0 += CNX_PIX) {                                 \
        const ptrdiff_t n_pix = n_W - w0 < CNX_PIX ? n_W - w0 : CNX_PIX;              \
        /* Pixels past the row's end recompute the last one (never stored), */        \
        /* so that no read leaves the image. */                                       \
        ptrdiff_t offset[CNX_PIX];                                                    \
        for (ptrdiff_t p = 0; p < CNX_PIX; p++)                                       \
            offset[p] = (p < n_pix ? p : n_pix - 1) * stride * C;                     \
        for (ptrdiff_t nb = 0; nb < nC_pad; nb += CNX_VL_##SUFFIX) {                  \
            const cnx_vec_##SUFFIX b = *(const cnx_vec_##SUFFIX *)(bias + nb);        \
            cnx_vec_##SUFFIX acc0 = b, acc1 = b, acc2 = b, acc3 = b;                  \
            for (ptrdiff_t di = 0; di < f; di++)                                      \
                for (ptrdiff_t dj = 0; dj < f; dj++) {                                \
                    const T *restrict src = a + ((y0 + di) * Wp + w0 * stride + dj) * C; \
                    const T *restrict wsrc = w + (di * f + dj) * C * nC_pad + nb;     \
                    for (ptrdiff_t c = 0; c < C; c++) {                               \
                        const cnx_vec_##SUFFIX wv =                                   \
                            *(const cnx_vec_##SUFFIX *)(wsrc + c * nC_pad);           \
                        acc0 += src[offset[0] + c] * wv;                              \
                        acc1 += src[offset[1] + c] * wv;                              \
                        acc2 += src[offset[2] + c] * wv;                              \
                        acc3 += src[offset[3] + c] * wv;                              \
                    }                                                                 \
                }                                                                     \
            const cnx_vec_##SUFFIX acc[CNX_PIX] = {acc0, acc1, acc2, acc3};           \
            const ptrdiff_t n_out = nC - nb < CNX_VL_##SUFFIX ? nC - nb : CNX_VL_##SUFFIX; \
            for (ptrdiff_t p = 0; p < n_pix; p++)                                     \
                for (ptrdiff_t k = 0; k < n_out; k++)                                 \
                    z[(w0 + p) * nC + nb + k] = acc[p][k];                            \
        }                                                                             \
    }                                                                                 \
}

CNX_DEFINE_CONV_DIRECT(float, f)
CNX_DEFINE_CONV_DIRECT(double, d)

#undef CNX_DEFINE_CONV_DIRECT

#endif /* CNNEXT_CONV_DIRECT_H */
