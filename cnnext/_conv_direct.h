/* Direct convolution kernels: windows read in place, no im2row matrix.
 *
 * Blocks of output values are accumulated in vector registers (GCC vector
 * extensions) over a whole window: output pixels x output channels for the
 * forward (over channel vectors, or over pixel vectors on a planar copy when
 * the output channels are few), window positions x output channels for the
 * weight gradient. With few input channels, im2row would copy every input
 * f*f times into rows too short for BLAS; up to 64 channels, these tiles
 * also beat im2row + GEMM. Compiled once per instruction-set level, the
 * level picked at import (see _dispatch.h).
 *
 * Layouts of the channel-vector kernels: `a` is one zero-padded NHWC image
 * (Hp, Wp, C); `w` the filters as (f, f, C, nC_pad) and `bias` (nC_pad,) with
 * the channel axis zero-padded to a multiple of the kernel's vector length;
 * `z` one output row (n_W, nC).
 */
#ifndef CNNEXT_CONV_DIRECT_H
#define CNNEXT_CONV_DIRECT_H

#include <stddef.h>
#include "_dispatch.h"
#include "_vectors.h"


/* One tile: PIX output pixels of a row x NB vectors of output channels
 * from channel nb, summed over the whole window in PIX * NB vector registers.
 * Each input value is broadcast once and used NB times, each weight vector
 * loaded once and used PIX times, and PIX * NB >= 8 independent sums hide
 * the latency of the fused multiply-adds. Pixels past the row's end
 * (n_pix < PIX) recompute the last one and are never stored, so that no read
 * leaves the image. */
#define CNX_DEFINE_CONV_TILE(T, NAME, VEC, VL, PIX, NB)                               \
static inline __attribute__((always_inline)) void CNX_ISA(NAME)(                               \
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
    /* A window row's (dj, c) positions are contiguous in the NHWC image and  \
     * in w: one loop of f * C steps, not f loops of C (lenet's C = 1 paid    \
     * the loop set-up per step: 29% of a clang build's time). */             \
    for (ptrdiff_t di = 0; di < f; di++) {                                            \
        const T *restrict src = a + ((y0 + di) * Wp + w0 * stride) * C;               \
        const T *restrict wsrc = w + di * f * C * nC_pad + nb;                        \
        for (ptrdiff_t k = 0; k < f * C; k++) {                                       \
            VEC wv[NB];                                                               \
            _Pragma("GCC unroll 4")                                                   \
            for (int q = 0; q < NB; q++)                                              \
                wv[q] = *(const VEC *)(wsrc + k * nC_pad + q * VL);                   \
            _Pragma("GCC unroll 16")                                                  \
            for (int p = 0; p < PIX; p++) {                                           \
                const T x = src[offset[p] + k];                                       \
                _Pragma("GCC unroll 4")                                               \
                for (int q = 0; q < NB; q++) acc[p][q] += x * wv[q];                  \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
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

/* The row's last pixels go 4 at a time; with 4 channel vectors, 3 on levels
 * with 16 registers (12 sums + 4 weight vectors; 4 pixels spilled there). */
#define CNX_TAIL4_PIX CNX_TILE(4, 3)

/* One output row: z = conv of the window rows from y0, in tiles of
 * CNX_DEFINE_CONV_TILE. The channel vectors go NB at a time, NB the largest
 * of 4, 2, 1 that divides their number; the more vectors a tile holds, the
 * fewer pixels (PIX4 <= PIX2 <= PIX1), to fit the 32 vector registers of
 * AVX-512. A row's last pixels go in smaller tiles, which waste less. */
#define CNX_DEFINE_CONV_DIRECT(T, NAME, VEC, VL, PIX1, PIX2, PIX4)                    \
CNX_DEFINE_CONV_TILE(T, NAME##_tile1, VEC, VL, PIX1, 1)                               \
CNX_DEFINE_CONV_TILE(T, NAME##_tile2, VEC, VL, PIX2, 2)                               \
CNX_DEFINE_CONV_TILE(T, NAME##_tile4, VEC, VL, PIX4, 4)                               \
CNX_DEFINE_CONV_TILE(T, NAME##_tail1, VEC, VL, 4, 1)                                  \
CNX_DEFINE_CONV_TILE(T, NAME##_tail2, VEC, VL, 4, 2)                                  \
CNX_DEFINE_CONV_TILE(T, NAME##_tail4, VEC, VL, CNX_TAIL4_PIX, 4)                      \
static void CNX_ISA(NAME)(                                                        \
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
                if (NB == 4) CNX_ISA(NAME##_tile4)(CNX_TILE_ARGS);                             \
                else if (NB == 2) CNX_ISA(NAME##_tile2)(CNX_TILE_ARGS);                        \
                else CNX_ISA(NAME##_tile1)(CNX_TILE_ARGS);                                     \
                continue;                                                             \
            }                                                                         \
            const ptrdiff_t tail = NB == 4 ? CNX_TAIL4_PIX : 4;                       \
            for (ptrdiff_t t = 0; t < n_pix; t += tail) { /* the row's last pixels */ \
                const ptrdiff_t n_tail = n_pix - t < tail ? n_pix - t : tail;         \
                if (NB == 4) CNX_ISA(NAME##_tail4)(CNX_TAIL_ARGS);                             \
                else if (NB == 2) CNX_ISA(NAME##_tail2)(CNX_TAIL_ARGS);                        \
                else CNX_ISA(NAME##_tail1)(CNX_TAIL_ARGS);                                     \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
}
#define CNX_TILE_ARGS a, Wp, C, w, bias, f, nC, nC_pad, stride, y0, w0, n_pix, nb, z
#define CNX_TAIL_ARGS a, Wp, C, w, bias, f, nC, nC_pad, stride, y0, w0 + t, n_tail, nb, z

/* Pixels (or window positions) per tile with 1, 2 and 4 vectors of
 * output channels: 12, 12, 6 fill 24 of AVX-512's 32 registers. */
#define CNX_CONV_DIRECT_KERNELS \
    CNX_DEFINE_CONV_DIRECT(float, cnx_conv_direct_row_f, CNX_VEC(f), CNX_FULL_LANES(float), 12, CNX_TILE(12, 6), CNX_TILE(6, 3)) \
    CNX_DEFINE_CONV_DIRECT(double, cnx_conv_direct_row_d, CNX_VEC(d), CNX_FULL_LANES(double), 12, CNX_TILE(12, 6), CNX_TILE(6, 3)) \
    CNX_DEFINE_CONV_DIRECT(float, cnx_conv_direct_row_half_f, CNX_HALF(f), CNX_HALF_LANES(float), 12, CNX_TILE(12, 6), CNX_TILE(6, 3)) \
    CNX_DEFINE_CONV_DIRECT(double, cnx_conv_direct_row_half_d, CNX_HALF(d), CNX_HALF_LANES(double), 12, CNX_TILE(12, 6), CNX_TILE(6, 3))

/* Direct convolution at stride 1 vectorised over output pixels, for layers
 * with few output channels: there a tile of channel vectors would be mostly
 * padding or half-width, while a row of output pixels fills whole vectors.
 *
 * `a` is one zero-padded image made planar, (C, Hp, Wq) (see
 * cnx_planar_pad), so that VL consecutive output pixels read one contiguous
 * vector per window position (di, dj, c); `w` the filters as (f*f*C, nC),
 * `bias` (nC,), `z` the NHWC output image (n_H, n_W, nC). Each output row
 * is n_vec = ceil(n_W / VL) vectors of pixels, the last one partial, and
 * Wq = n_vec * VL + f - 1 covers every vector read.
 *
 * A tile is NV vectors of pixels x G output channels from n0, G * NV sums
 * in registers; each input vector is loaded once and used G times, each
 * weight broadcast once and used NV times. The vectors are numbered over
 * the whole image, row after row, so that a tile may span rows and only
 * the image's last tile is partial (its missing vectors recompute the last
 * one and are never stored). The sums run over the window in the order
 * (di, dj, c), as in the channel-vector tiles, so both give the same bits.
 * At the end the [channel][pixel] tile is transposed into z's
 * [pixel][channel] layout. */
#define CNX_DEFINE_PLANAR_TILE(T, NAME, VEC, VL, NV, G)                               \
static inline __attribute__((always_inline)) void CNX_ISA(NAME)(                               \
        const T *restrict a, ptrdiff_t Hp, ptrdiff_t Wq, ptrdiff_t C,                 \
        const T *restrict w, const T *restrict bias, ptrdiff_t f, ptrdiff_t nC,       \
        ptrdiff_t n_W, ptrdiff_t n_vec, ptrdiff_t q0, ptrdiff_t n_q, ptrdiff_t n0,    \
        T *restrict z)                                                                \
{                                                                                     \
    ptrdiff_t offset[NV];                                                             \
    for (int v = 0; v < NV; v++) {                                                    \
        const ptrdiff_t q = q0 + (v < n_q ? v : n_q - 1);                             \
        offset[v] = q / n_vec * Wq + q % n_vec * VL;                                  \
    }                                                                                 \
    VEC acc[G][NV];                                                                   \
    _Pragma("GCC unroll 8")                                                           \
    for (int g = 0; g < G; g++)                                                       \
        _Pragma("GCC unroll 8")                                                       \
        for (int v = 0; v < NV; v++) acc[g][v] = (VEC){0} + bias[n0 + g];            \
    const ptrdiff_t plane = Hp * Wq;                                                  \
    for (ptrdiff_t di = 0; di < f; di++)                                              \
        for (ptrdiff_t dj = 0; dj < f; dj++) {                                        \
            const T *restrict src = a + di * Wq + dj;                                 \
            const T *restrict wk = w + (di * f + dj) * C * nC + n0;                   \
            for (ptrdiff_t c = 0; c < C; c++) {                                       \
                VEC x[NV];                                                            \
                _Pragma("GCC unroll 8")                                               \
                for (int v = 0; v < NV; v++)                                          \
                    x[v] = *(const VEC *)(src + c * plane + offset[v]);               \
                _Pragma("GCC unroll 8")                                               \
                for (int g = 0; g < G; g++) {                                         \
                    const T wv = wk[c * nC + g];                                      \
                    _Pragma("GCC unroll 8")                                           \
                    for (int v = 0; v < NV; v++) acc[g][v] += x[v] * wv;              \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    T out[G][NV * VL] __attribute__((aligned(64)));                                   \
    _Pragma("GCC unroll 8")                                                           \
    for (int g = 0; g < G; g++)                                                       \
        _Pragma("GCC unroll 8")                                                       \
        for (int v = 0; v < NV; v++) *(VEC *)&out[g][v * VL] = acc[g][v];             \
    for (ptrdiff_t v = 0; v < n_q; v++) {                                             \
        const ptrdiff_t y = (q0 + v) / n_vec, x0 = (q0 + v) % n_vec * VL;             \
        const ptrdiff_t n_pix = n_W - x0 < VL ? n_W - x0 : VL;                        \
        T *restrict dst = z + (y * n_W + x0) * nC + n0;                               \
        for (ptrdiff_t p = 0; p < n_pix; p++)                                         \
            _Pragma("GCC unroll 8")                                                   \
            for (int g = 0; g < G; g++) dst[p * nC + g] = out[g][v * VL + p];         \
    }                                                                                 \
}

/* Output rows h0 .. h1 - 1 of one image: the channels go in groups of
 * G <= 8, each over those rows' pixel vectors in tiles of NV_G (G * NV_G = 16 to 24 sums, enough
 * to hide the latency of the multiply-adds and few enough to stay in the
 * 32 registers of AVX-512 with the NV_G input vectors). Each output value
 * is the same sum however the rows are cut into bands. */
/* Pixel vectors per tile of G channels; with 16 registers, G * NV + NV <= 16. */
#define CNX_PLANAR_NV_1 CNX_TILE(8, 6)
#define CNX_PLANAR_NV_2 CNX_TILE(8, 5)
#define CNX_PLANAR_NV_3 CNX_TILE(6, 4)
#define CNX_PLANAR_NV_4 CNX_TILE(5, 3)
#define CNX_PLANAR_NV_5 CNX_TILE(4, 2)
#define CNX_PLANAR_NV_6 CNX_TILE(4, 2)
#define CNX_PLANAR_NV_7 CNX_TILE(3, 1)
#define CNX_PLANAR_NV_8 CNX_TILE(3, 1)
#define CNX_DEFINE_PLANAR_IMAGE(T, NAME, VEC, VL)                                     \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g1, VEC, VL, CNX_PLANAR_NV_1, 1)                      \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g2, VEC, VL, CNX_PLANAR_NV_2, 2)                      \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g3, VEC, VL, CNX_PLANAR_NV_3, 3)                      \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g4, VEC, VL, CNX_PLANAR_NV_4, 4)                      \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g5, VEC, VL, CNX_PLANAR_NV_5, 5)                      \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g6, VEC, VL, CNX_PLANAR_NV_6, 6)                      \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g7, VEC, VL, CNX_PLANAR_NV_7, 7)                      \
CNX_DEFINE_PLANAR_TILE(T, NAME##_g8, VEC, VL, CNX_PLANAR_NV_8, 8)                      \
static void CNX_ISA(NAME)(                                                        \
        const T *restrict a, ptrdiff_t Hp, ptrdiff_t Wq, ptrdiff_t C,                 \
        const T *restrict w, const T *restrict bias, ptrdiff_t f, ptrdiff_t nC,       \
        ptrdiff_t h0, ptrdiff_t h1, ptrdiff_t n_W, T *restrict z)                     \
{                                                                                     \
    static const int tile_vectors[9] = {0, CNX_PLANAR_NV_1, CNX_PLANAR_NV_2,          \
        CNX_PLANAR_NV_3, CNX_PLANAR_NV_4, CNX_PLANAR_NV_5, CNX_PLANAR_NV_6,           \
        CNX_PLANAR_NV_7, CNX_PLANAR_NV_8};                                            \
    const ptrdiff_t n_vec = (n_W + VL - 1) / VL, total = h1 * n_vec;                  \
    for (ptrdiff_t n0 = 0; n0 < nC; n0 += 8) {                                        \
        const int G = nC - n0 < 8 ? (int)(nC - n0) : 8;                               \
        const ptrdiff_t NV = tile_vectors[G];                                         \
        for (ptrdiff_t q0 = h0 * n_vec; q0 < total; q0 += NV) {                       \
            const ptrdiff_t n_q = total - q0 < NV ? total - q0 : NV;                  \
            switch (G) {                                                              \
            case 1: CNX_ISA(NAME##_g1)(CNX_PLANAR_ARGS); break;                                \
            case 2: CNX_ISA(NAME##_g2)(CNX_PLANAR_ARGS); break;                                \
            case 3: CNX_ISA(NAME##_g3)(CNX_PLANAR_ARGS); break;                                \
            case 4: CNX_ISA(NAME##_g4)(CNX_PLANAR_ARGS); break;                                \
            case 5: CNX_ISA(NAME##_g5)(CNX_PLANAR_ARGS); break;                                \
            case 6: CNX_ISA(NAME##_g6)(CNX_PLANAR_ARGS); break;                                \
            case 7: CNX_ISA(NAME##_g7)(CNX_PLANAR_ARGS); break;                                \
            default: CNX_ISA(NAME##_g8)(CNX_PLANAR_ARGS);                                      \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
}
#define CNX_PLANAR_ARGS a, Hp, Wq, C, w, bias, f, nC, n_W, n_vec, q0, n_q, n0, z

#define CNX_PLANAR_KERNELS \
    CNX_DEFINE_PLANAR_IMAGE(float, cnx_conv_planar_image_f, CNX_VEC(f), CNX_FULL_LANES(float)) \
    CNX_DEFINE_PLANAR_IMAGE(double, cnx_conv_planar_image_d, CNX_VEC(d), CNX_FULL_LANES(double))

/* The interior of a planar padded image: out[c, pad + y, pad + x] =
 * a[y, x, c] for the NHWC image `a` (H, W, C), `out` (C, Hp, Wq). The
 * border is left alone: zeroed once, it stays zero from image to image. */
#define CNX_DEFINE_PLANAR_PAD(T, SUFFIX)                                              \
static void cnx_planar_pad_##SUFFIX(                                                  \
        const T *restrict a, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t pad,    \
        ptrdiff_t Hp, ptrdiff_t Wq, T *restrict out)                                  \
{                                                                                     \
    for (ptrdiff_t y = 0; y < H; y++)                                                 \
        for (ptrdiff_t c = 0; c < C; c++) {                                           \
            const T *restrict src = a + y * W * C + c;                                \
            T *restrict dst = out + (c * Hp + pad + y) * Wq + pad;                    \
            for (ptrdiff_t x = 0; x < W; x++) dst[x] = src[x * C];                    \
        }                                                                             \
}

CNX_DEFINE_PLANAR_PAD(float, f)
CNX_DEFINE_PLANAR_PAD(double, d)

/* Weight gradient of one image, in register tiles: dw[k, nb:nb + NB*VL] +=
 * sum over the output pixels of a_k * dz, for KT window positions k at a
 * time (k flat over (di, dj, c), as the rows of W2). The transpose of the
 * forward's tiles: each dz vector loaded is used KT times, each input value
 * broadcast once and used NB times, and the sums stay in registers over all
 * of the image's pixels. Positions past K (k0 + KT > K) recompute the last
 * one and are never stored.
 *
 * `a` is the zero-padded image (Hp, Wp, C); `dz` the output gradient of its
 * rows y0 .. y1 - 1 with the channel axis zero-padded: (y1 - y0, n_W,
 * nC_pad); `dw` is (K, nC_pad). */
#define CNX_DEFINE_WGRAD_TILE(T, NAME, VEC, VL, KT, NB)                               \
static inline __attribute__((always_inline)) void CNX_ISA(NAME)(                               \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C, const T *restrict dz,         \
        ptrdiff_t n_W, ptrdiff_t nC_pad, ptrdiff_t f,                                 \
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
            const T *restrict g = dz + ((y - y0) * n_W + x) * nC_pad + nb;            \
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

/* dw += the weight gradient of output rows h0 .. h1 - 1 of one image, tiled
 * as CNX_DEFINE_WGRAD_TILE: `a` is the whole padded image, `dz` points at
 * output row h0 (a band's gradient may be all the caller holds). */
#define CNX_DEFINE_WGRAD(T, NAME, VEC, VL, KT1, KT2, KT4)                             \
CNX_DEFINE_WGRAD_TILE(T, NAME##_tile1, VEC, VL, KT1, 1)                               \
CNX_DEFINE_WGRAD_TILE(T, NAME##_tile2, VEC, VL, KT2, 2)                               \
CNX_DEFINE_WGRAD_TILE(T, NAME##_tile4, VEC, VL, KT4, 4)                               \
static void CNX_ISA(NAME)(                                                        \
        const T *restrict a, ptrdiff_t Wp, ptrdiff_t C, const T *restrict dz,         \
        ptrdiff_t h0, ptrdiff_t h1, ptrdiff_t n_W, ptrdiff_t nC_pad, ptrdiff_t f,     \
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
    for (ptrdiff_t y0 = h0; y0 < h1; y0 += band) {                                    \
        const ptrdiff_t y1 = h1 - y0 < band ? h1 : y0 + band;                         \
        for (ptrdiff_t nb = 0; nb < nC_pad; nb += NB * VL)                            \
            for (ptrdiff_t k0 = 0; k0 < K; k0 += KT) {                                \
                const ptrdiff_t n_k = K - k0 < KT ? K - k0 : KT;                      \
                if (NB == 4) CNX_ISA(NAME##_tile4)(CNX_WGRAD_ARGS);                            \
                else if (NB == 2) CNX_ISA(NAME##_tile2)(CNX_WGRAD_ARGS);                       \
                else CNX_ISA(NAME##_tile1)(CNX_WGRAD_ARGS);                                    \
            }                                                                         \
    }                                                                                 \
}
enum { CNX_WGRAD_BAND_BYTES = 512 * 1024 };
#define CNX_WGRAD_ARGS a, Wp, C, dz + (y0 - h0) * n_W * nC_pad, n_W, nC_pad, f, stride, \
    y0, y1, k0, n_k, nb, dw

#define CNX_WGRAD_KERNELS \
    CNX_DEFINE_WGRAD(float, cnx_conv_weight_grad_f, CNX_VEC(f), CNX_FULL_LANES(float), 12, CNX_TILE(12, 6), CNX_TILE(6, 3)) \
    CNX_DEFINE_WGRAD(double, cnx_conv_weight_grad_d, CNX_VEC(d), CNX_FULL_LANES(double), 12, CNX_TILE(12, 6), CNX_TILE(6, 3)) \
    CNX_DEFINE_WGRAD(float, cnx_conv_weight_grad_half_f, CNX_HALF(f), CNX_HALF_LANES(float), 12, CNX_TILE(12, 6), CNX_TILE(6, 3)) \
    CNX_DEFINE_WGRAD(double, cnx_conv_weight_grad_half_d, CNX_HALF(d), CNX_HALF_LANES(double), 12, CNX_TILE(12, 6), CNX_TILE(6, 3))

/* dst[:n] += src[:n] in the widest vectors that fit: a window row is often
 * shorter than one full vector (f * C = 12 for a 4x4 RGB filter), which the
 * compiler's own vectorisation would leave to a scalar loop. */
#define CNX_DEFINE_ADD(T, SUFFIX)                                                     \
static inline void cnx_add_##SUFFIX(T *restrict dst, const T *restrict src,          \
                                    ptrdiff_t n)                                      \
{                                                                                     \
    ptrdiff_t k = 0;                                                                  \
    for (; k + CNX_HALF_VL_##SUFFIX <= n; k += CNX_HALF_VL_##SUFFIX)                  \
        *(cnx_vec_##SUFFIX##_32 *)(dst + k) += *(const cnx_vec_##SUFFIX##_32 *)(src + k); \
    for (; k + (ptrdiff_t)(16 / sizeof(T)) <= n; k += 16 / sizeof(T))                 \
        *(cnx_vec_##SUFFIX##_16 *)(dst + k) += *(const cnx_vec_##SUFFIX##_16 *)(src + k); \
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
 * built. (Used where the transposed convolution is not: stride > 1, or
 * pad >= f.)
 */
#define CNX_DEFINE_CONV_INPUT_GRAD(T, SUFFIX)                                         \
static void CNX_ISA(cnx_conv_input_grad_row_##SUFFIX)(                            \
        T *restrict da, ptrdiff_t Wp, ptrdiff_t C, const T *restrict dz,              \
        const T *restrict wt, ptrdiff_t f, ptrdiff_t nC, ptrdiff_t K_pad,             \
        ptrdiff_t stride, ptrdiff_t n_W, T *restrict dcol)                            \
{                                                                                     \
    const ptrdiff_t fC = f * C;                                                       \
    for (ptrdiff_t w = 0; w < n_W; w++) {                                             \
        const T *restrict g = dz + w * nC;                                            \
        for (ptrdiff_t kb = 0; kb < K_pad; kb += CNX_FULL_LANES(T)) {                 \
            CNX_VEC(SUFFIX) acc = {0};                                                \
            for (ptrdiff_t n = 0; n < nC; n++)                                        \
                acc += g[n] * *(const CNX_VEC(SUFFIX) *)(wt + n * K_pad + kb);       \
            *(CNX_VEC(SUFFIX) *)(dcol + kb) = acc;                                    \
        }                                                                             \
        for (ptrdiff_t di = 0; di < f; di++)                                          \
            cnx_add_##SUFFIX(da + di * Wp * C + w * stride * C, dcol + di * fC, fC);  \
    }                                                                                 \
}

#define CNX_INPUT_GRAD_KERNELS \
    CNX_DEFINE_CONV_INPUT_GRAD(float, f) \
    CNX_DEFINE_CONV_INPUT_GRAD(double, d)

#define CNX_PER_ISA_KERNELS CNX_CONV_DIRECT_KERNELS CNX_PLANAR_KERNELS CNX_WGRAD_KERNELS \
    CNX_INPUT_GRAD_KERNELS
#include "_per_isa.h"

#define CNX_CONV_KERNELS(X)                                                            \
    X(cnx_conv_direct_row_f) X(cnx_conv_direct_row_d)                                  \
    X(cnx_conv_direct_row_half_f) X(cnx_conv_direct_row_half_d)                        \
    X(cnx_conv_planar_image_f) X(cnx_conv_planar_image_d)                              \
    X(cnx_conv_weight_grad_f) X(cnx_conv_weight_grad_d)                                \
    X(cnx_conv_weight_grad_half_f) X(cnx_conv_weight_grad_half_d)                      \
    X(cnx_conv_input_grad_row_f) X(cnx_conv_input_grad_row_d)
CNX_CONV_KERNELS(CNX_DISPATCHED)

/* Points every convolution kernel at `level` (a CNX_LEVEL_*). */
CNX_DEFINE_SELECT(cnx_conv_select, CNX_CONV_KERNELS)

#undef CNX_DEFINE_CONV_DIRECT
#undef CNX_DEFINE_CONV_TILE
#undef CNX_TILE_ARGS
#undef CNX_TAIL_ARGS
#undef CNX_DEFINE_PLANAR_TILE
#undef CNX_DEFINE_PLANAR_IMAGE
#undef CNX_PLANAR_ARGS
#undef CNX_DEFINE_PLANAR_PAD
#undef CNX_DEFINE_WGRAD
#undef CNX_DEFINE_WGRAD_TILE
#undef CNX_WGRAD_ARGS
#undef CNX_DEFINE_CONV_INPUT_GRAD
#undef CNX_DEFINE_ADD
#undef CNX_CONV_DIRECT_KERNELS
#undef CNX_PLANAR_KERNELS
#undef CNX_WGRAD_KERNELS
#undef CNX_INPUT_GRAD_KERNELS

#endif /* CNNEXT_CONV_DIRECT_H */
