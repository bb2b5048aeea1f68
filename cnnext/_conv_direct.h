/* Direct convolution of one output row, for layers with few input channels.
 *
 * With n_C_prev of 1 or 3, im2row copies every input f*f times to build a
 * matrix whose rows are too short for BLAS to run well. Here the window is
 * read in place instead, and blocks of output pixels x output channels are
 * accumulated in vector registers (GCC vector extensions). Compiled for
 * several instruction sets, picked at load time (see _window_ops.h).
 *
 * Layouts: `a` is one zero-padded NHWC image (Hp, Wp, C); `w` the filters as
 * (f, f, C, nC_pad) and `bias` (nC_pad,) with the channel axis zero-padded
 * to a multiple of the kernel's vector length; `z` one output row (n_W, nC).
 */
#ifndef CNNEXT_CONV_DIRECT_H
#define CNNEXT_CONV_DIRECT_H

#include <stddef.h>
#include "_window_ops.h" /* CNX_DISPATCH */

/* GCC vectors of 64 bytes (one AVX-512 register, two AVX2 or four SSE ones)
 * and of 32 bytes for layers with few output channels, where a 64-byte
 * vector would be mostly padding. aligned(sizeof(T)) lets them load from any
 * element address. */
typedef float cnx_vec_f __attribute__((vector_size(64), aligned(4)));
typedef double cnx_vec_d __attribute__((vector_size(64), aligned(8)));
typedef float cnx_half_f __attribute__((vector_size(32), aligned(4)));
typedef double cnx_half_d __attribute__((vector_size(32), aligned(8)));
enum { CNX_VL_f = 16, CNX_VL_d = 8, CNX_HALF_VL_f = 8, CNX_HALF_VL_d = 4 };

/* One tile: PIX output pixels of a row x NB vectors of output channels
 * from channel nb, summed over the whole window in PIX * NB vector registers.
 * Each input value is broadcast once and used NB times, each weight vector
 * loaded once and used PIX times, and PIX * NB >= 8 independent sums hide
 * the latency of the fused multiply-adds. Pixels past the row's end
 * (n_pix < PIX) recompute the last one and are never stored, so that no read
 * leaves the image. */
#define CNX_DEFINE_CONV_TILE(T, NAME, VEC, VL, PIX, NB)                               \
static inline __attribute__((always_inline)) void NAME(                               \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C, const T *restrict w,          \
        const T *restrict bias, ptrdiff_t f, ptrdiff_t nC, ptrdiff_t nC_pad,          \
        ptrdiff_t stride, ptrdiff_t y0, ptrdiff_t w0, ptrdiff_t n_pix, ptrdiff_t nb,  \
        T *restrict z)                                                                \
{                                                                                     \
    ptrdiff_t offset[PIX];                                                            \
    for (int p = 0; p < PIX; p++)                                                     \
        offset[p] = (p < n_pix ? p : n_pix - 1) * stride * C;                         \
    VEC acc[PIX][NB];                                                                 \
    _Pragma("GCC unroll 16")                                                          \
    for (int p = 0; p < PIX; p++)                                                     \
        _Pragma("GCC unroll 4")                                                       \
        for (int q = 0; q < NB; q++) acc[p][q] = *(const VEC *)(bias + nb + q * VL);  \
    for (ptrdiff_t di = 0; di < f; di++)                                              \
        for (ptrdiff_t dj = 0; dj < f; dj++) {                                        \
            const T *restrict src = a + ((y0 + di) * Wp + w0 * stride + dj) * C;      \
            const T *restrict wsrc = w + (di * f + dj) * C * nC_pad + nb;             \
            for (ptrdiff_t c = 0; c < C; c++) {                                       \
                VEC wv[NB];                                                           \
                _Pragma("GCC unroll 4")                                               \
                for (int q = 0; q < NB; q++)                                          \
                    wv[q] = *(const VEC *)(wsrc + c * nC_pad + q * VL);               \
                _Pragma("GCC unroll 16")                                              \
                for (int p = 0; p < PIX; p++) {                                       \
                    const T x = src[offset[p] + c];                                   \
                    _Pragma("GCC unroll 4")                                           \
                    for (int q = 0; q < NB; q++) acc[p][q] += x * wv[q];              \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    if (nC == nC_pad) { /* whole vectors: store them as they are */                   \
        for (ptrdiff_t p = 0; p < n_pix; p++)                                         \
            for (int q = 0; q < NB; q++)                                              \
                *(VEC *)(z + (w0 + p) * nC + nb + q * VL) = acc[p][q];                \
        return;                                                                       \
    }                                                                                 \
    for (ptrdiff_t p = 0; p < n_pix; p++)                                             \
        for (int q = 0; q < NB; q++)                                                  \
            for (ptrdiff_t k = 0; k < VL && nb + q * VL + k < nC; k++)                \
                z[(w0 + p) * nC + nb + q * VL + k] = acc[p][q][k];                    \
}

/* One output row: z = conv of the window rows from y0, in tiles of
 * CNX_DEFINE_CONV_TILE. The channel vectors go NB at a time, NB the largest
 * of 4, 2, 1 that divides their number; the more vectors a tile holds, the
 * fewer pixels (PIX4 <= PIX2 <= PIX1), to fit the 32 vector registers of
 * AVX-512. A row's last pixels go in tiles of 4, which waste less. */
#define CNX_DEFINE_CONV_DIRECT(T, NAME, VEC, VL, PIX1, PIX2, PIX4)                    \
CNX_DEFINE_CONV_TILE(T, NAME##_tile1, VEC, VL, PIX1, 1)                               \
CNX_DEFINE_CONV_TILE(T, NAME##_tile2, VEC, VL, PIX2, 2)                               \
CNX_DEFINE_CONV_TILE(T, NAME##_tile4, VEC, VL, PIX4, 4)                               \
CNX_DEFINE_CONV_TILE(T, NAME##_tail1, VEC, VL, 4, 1)                                  \
CNX_DEFINE_CONV_TILE(T, NAME##_tail2, VEC, VL, 4, 2)                                  \
CNX_DEFINE_CONV_TILE(T, NAME##_tail4, VEC, VL, 4, 4)                                  \
CNX_DISPATCH static void NAME(                                                        \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C,                               \
        const T *restrict w, const T *restrict bias, ptrdiff_t f, ptrdiff_t nC,       \
        ptrdiff_t nC_pad, ptrdiff_t stride, ptrdiff_t y0, ptrdiff_t n_W,              \
        T *restrict z)                                                                \
{                                                                                     \
    const ptrdiff_t n_vec = nC_pad / VL;                                              \
    const int NB = n_vec % 4 == 0 ? 4 : n_vec % 2 == 0 ? 2 : 1;                      \
    const ptrdiff_t PIX = NB == 4 ? PIX4 : NB == 2 ? PIX2 : PIX1;                     \
    ptrdiff_t w0 = 0;                                                                 \
    for (; w0 < n_W; w0 += PIX) {                                                     \
        const ptrdiff_t n_pix = n_W - w0 < PIX ? n_W - w0 : PIX;                      \
        for (ptrdiff_t nb = 0; nb < nC_pad; nb += NB * VL) {                          \
            if (n_pix == PIX) {                                                       \
                if (NB == 4) NAME##_tile4(CNX_TILE_ARGS);                             \
                else if (NB == 2) NAME##_tile2(CNX_TILE_ARGS);                        \
                else NAME##_tile1(CNX_TILE_ARGS);                                     \
                continue;                                                             \
            }                                                                         \
            for (ptrdiff_t t = 0; t < n_pix; t += 4) { /* the row's last pixels */    \
                const ptrdiff_t n_tail = n_pix - t < 4 ? n_pix - t : 4;               \
                if (NB == 4) NAME##_tail4(CNX_TAIL_ARGS);                             \
                else if (NB == 2) NAME##_tail2(CNX_TAIL_ARGS);                        \
                else NAME##_tail1(CNX_TAIL_ARGS);                                     \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
}
#define CNX_TILE_ARGS a, Wp, C, w, bias, f, nC, nC_pad, stride, y0, w0, n_pix, nb, z
#define CNX_TAIL_ARGS a, Wp, C, w, bias, f, nC, nC_pad, stride, y0, w0 + t, n_tail, nb, z

CNX_DEFINE_CONV_DIRECT(float, cnx_conv_direct_row_f, cnx_vec_f, CNX_VL_f, 12, 12, 6)
CNX_DEFINE_CONV_DIRECT(double, cnx_conv_direct_row_d, cnx_vec_d, CNX_VL_d, 12, 12, 6)
CNX_DEFINE_CONV_DIRECT(float, cnx_conv_direct_row_half_f, cnx_half_f, CNX_HALF_VL_f, 12, 12, 6)
CNX_DEFINE_CONV_DIRECT(double, cnx_conv_direct_row_half_d, cnx_half_d, CNX_HALF_VL_d, 12, 12, 6)

/* Weight gradient of one image, in register tiles: dw[k, nb:nb + NB*VL] +=
 * sum over the output pixels of a_k * dz, for KT window positions k at a
 * time (k flat over (di, dj, c), as the rows of W2). The transpose of the
 * forward's tiles: each dz vector loaded is used KT times, each input value
 * broadcast once and used NB times, and the sums stay in registers over all
 * of the image's pixels. Positions past K (k0 + KT > K) recompute the last
 * one and are never stored.
 *
 * `a` is the zero-padded image (Hp, Wp, C); `dz` its output gradient with
 * the channel axis zero-padded: (n_H, n_W, nC_pad); `dw` is (K, nC_pad). */
#define CNX_DEFINE_WGRAD_TILE(T, NAME, VEC, VL, KT, NB)                               \
static inline __attribute__((always_inline)) void NAME(                               \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C, const T *restrict dz,         \
        ptrdiff_t n_H, ptrdiff_t n_W, ptrdiff_t nC_pad, ptrdiff_t f,                  \
        ptrdiff_t stride, ptrdiff_t y0, ptrdiff_t y1, ptrdiff_t k0, ptrdiff_t n_k,    \
        ptrdiff_t nb, T *restrict dw)                                                 \
{                                                                                     \
    ptrdiff_t offset[KT];                                                             \
    for (int t = 0; t < KT; t++) {                                                    \
        const ptrdiff_t k = k0 + (t < n_k ? t : n_k - 1);                             \
        const ptrdiff_t di = k / (f * C), dj = k / C % f, c = k % C;                  \
        offset[t] = (di * Wp + dj) * C + c;                                           \
    }                                                                                 \
    VEC acc[KT][NB];                                                                  \
    _Pragma("GCC unroll 16")                                                          \
    for (int t = 0; t < KT; t++)                                                      \
        _Pragma("GCC unroll 4")                                                       \
        for (int q = 0; q < NB; q++) acc[t][q] = (VEC){0};                            \
    for (ptrdiff_t y = y0; y < y1; y++)                                               \
        for (ptrdiff_t x = 0; x < n_W; x++) {                                         \
            const T *restrict src = a + (y * Wp + x) * stride * C;                    \
            const T *restrict g = dz + (y * n_W + x) * nC_pad + nb;                   \
            VEC gv[NB];                                                               \
            _Pragma("GCC unroll 4")                                                   \
            for (int q = 0; q < NB; q++) gv[q] = *(const VEC *)(g + q * VL);          \
            _Pragma("GCC unroll 16")                                                  \
            for (int t = 0; t < KT; t++) {                                            \
                const T v = src[offset[t]];                                           \
                _Pragma("GCC unroll 4")                                               \
                for (int q = 0; q < NB; q++) acc[t][q] += v * gv[q];                  \
            }                                                                         \
        }                                                                             \
    for (ptrdiff_t t = 0; t < n_k; t++)                                               \
        for (int q = 0; q < NB; q++)                                                  \
            *(VEC *)(dw + (k0 + t) * nC_pad + nb + q * VL) += acc[t][q];              \
}

/* dw += the weight gradient of one image, tiled as CNX_DEFINE_WGRAD_TILE. */
#define CNX_DEFINE_WGRAD(T, NAME, VEC, VL, KT1, KT2, KT4)                             \
CNX_DEFINE_WGRAD_TILE(T, NAME##_tile1, VEC, VL, KT1, 1)                               \
CNX_DEFINE_WGRAD_TILE(T, NAME##_tile2, VEC, VL, KT2, 2)                               \
CNX_DEFINE_WGRAD_TILE(T, NAME##_tile4, VEC, VL, KT4, 4)                               \
CNX_DISPATCH static void NAME(                                                        \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C, const T *restrict dz,         \
        ptrdiff_t n_H, ptrdiff_t n_W, ptrdiff_t nC_pad, ptrdiff_t f,                  \
        ptrdiff_t stride, T *restrict dw)                                             \
{                                                                                     \
    const ptrdiff_t n_vec = nC_pad / VL, K = f * f * C;                               \
    const int NB = n_vec % 4 == 0 ? 4 : n_vec % 2 == 0 ? 2 : 1;                      \
    const ptrdiff_t KT = NB == 4 ? KT4 : NB == 2 ? KT2 : KT1;                         \
    /* Every tile passes over all the pixels: go a band of rows at a time, */        \
    /* small enough for its dz and input rows to stay in L2 between passes. */       \
    const ptrdiff_t row_bytes = (n_W * nC_pad + stride * Wp * C) * (ptrdiff_t)sizeof(T); \
    ptrdiff_t band = CNX_WGRAD_BAND_BYTES / (row_bytes > 0 ? row_bytes : 1);          \
    band = band < 1 ? 1 : band;                                                       \
    for (ptrdiff_t y0 = 0; y0 < n_H; y0 += band) {                                    \
        const ptrdiff_t y1 = n_H - y0 < band ? n_H : y0 + band;                       \
        for (ptrdiff_t nb = 0; nb < nC_pad; nb += NB * VL)                            \
            for (ptrdiff_t k0 = 0; k0 < K; k0 += KT) {                                \
                const ptrdiff_t n_k = K - k0 < KT ? K - k0 : KT;                      \
                if (NB == 4) NAME##_tile4(CNX_WGRAD_ARGS);                            \
                else if (NB == 2) NAME##_tile2(CNX_WGRAD_ARGS);                       \
                else NAME##_tile1(CNX_WGRAD_ARGS);                                    \
            }                                                                         \
    }                                                                                 \
}
enum { CNX_WGRAD_BAND_BYTES = 512 * 1024 };
#define CNX_WGRAD_ARGS a, Wp, C, dz, n_H, n_W, nC_pad, f, stride, y0, y1, k0, n_k, nb, dw

CNX_DEFINE_WGRAD(float, cnx_conv_weight_grad_f, cnx_vec_f, CNX_VL_f, 12, 12, 6)
CNX_DEFINE_WGRAD(double, cnx_conv_weight_grad_d, cnx_vec_d, CNX_VL_d, 12, 12, 6)
CNX_DEFINE_WGRAD(float, cnx_conv_weight_grad_half_f, cnx_half_f, CNX_HALF_VL_f, 12, 12, 6)
CNX_DEFINE_WGRAD(double, cnx_conv_weight_grad_half_d, cnx_half_d, CNX_HALF_VL_d, 12, 12, 6)

/* dst[:n] += src[:n] in the widest vectors that fit: a window row is often
 * shorter than one full vector (f * C = 12 for a 4x4 RGB filter), which the
 * compiler's own vectorisation would leave to a scalar loop. */
typedef float cnx_quarter_f __attribute__((vector_size(16), aligned(4)));
typedef double cnx_quarter_d __attribute__((vector_size(16), aligned(8)));
#define CNX_DEFINE_ADD(T, SUFFIX)                                                     \
static inline void cnx_add_##SUFFIX(T *restrict dst, const T *restrict src,          \
                                    ptrdiff_t n)                                      \
{                                                                                     \
    ptrdiff_t k = 0;                                                                  \
    for (; k + CNX_HALF_VL_##SUFFIX <= n; k += CNX_HALF_VL_##SUFFIX)                  \
        *(cnx_half_##SUFFIX *)(dst + k) += *(const cnx_half_##SUFFIX *)(src + k);     \
    for (; k + (ptrdiff_t)(16 / sizeof(T)) <= n; k += 16 / sizeof(T))                 \
        *(cnx_quarter_##SUFFIX *)(dst + k) += *(const cnx_quarter_##SUFFIX *)(src + k); \
    for (; k < n; k++) dst[k] += src[k];                                              \
}

CNX_DEFINE_ADD(float, f)
CNX_DEFINE_ADD(double, d)

/* Input gradient of one output row h, for layers with few input channels.
 *
 * `da` points at row h * stride of the zero-padded image's gradient
 * (Hp, Wp, C); `dz` is the row's output gradient (n_W, nC); `wt` holds the
 * filters transposed, (nC, K_pad) with K = f*f*C padded to a multiple of the
 * vector length; `dcol` is scratch of K_pad elements.
 *
 * For each output pixel, dcol = W2 @ dz (its K window gradients, vectorised
 * over K) is added onto the window in place: the im2row matrix is never
 * built. (With few input channels this beats the transposed convolution,
 * whose vectors over the input channels would be mostly padding.)
 */
#define CNX_DEFINE_CONV_INPUT_GRAD(T, SUFFIX)                                         \
CNX_DISPATCH static void cnx_conv_input_grad_row_##SUFFIX(                            \
        T *restrict da, ptrdiff_t Wp, ptrdiff_t C, const T *restrict dz,              \
        const T *restrict wt, ptrdiff_t f, ptrdiff_t nC, ptrdiff_t K_pad,             \
        ptrdiff_t stride, ptrdiff_t n_W, T *restrict dcol)                            \
{                                                                                     \
    const ptrdiff_t fC = f * C;                                                       \
    for (ptrdiff_t w = 0; w < n_W; w++) {                                             \
        const T *restrict g = dz + w * nC;                                            \
        for (ptrdiff_t kb = 0; kb < K_pad; kb += CNX_VL_##SUFFIX) {                   \
            cnx_vec_##SUFFIX acc = {0};                                               \
            for (ptrdiff_t n = 0; n < nC; n++)                                        \
                acc += g[n] * *(const cnx_vec_##SUFFIX *)(wt + n * K_pad + kb);       \
            *(cnx_vec_##SUFFIX *)(dcol + kb) = acc;                                   \
        }                                                                             \
        for (ptrdiff_t di = 0; di < f; di++)                                          \
            cnx_add_##SUFFIX(da + di * Wp * C + w * stride * C, dcol + di * fC, fC);  \
    }                                                                                 \
}

CNX_DEFINE_CONV_INPUT_GRAD(float, f)
CNX_DEFINE_CONV_INPUT_GRAD(double, d)

#undef CNX_DEFINE_CONV_DIRECT
#undef CNX_DEFINE_CONV_TILE
#undef CNX_TILE_ARGS
#undef CNX_TAIL_ARGS
#undef CNX_DEFINE_WGRAD
#undef CNX_DEFINE_WGRAD_TILE
#undef CNX_WGRAD_ARGS
#undef CNX_DEFINE_CONV_INPUT_GRAD
#undef CNX_DEFINE_ADD

#endif /* CNNEXT_CONV_DIRECT_H */
