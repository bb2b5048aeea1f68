/* Depthwise convolution (one input channel per output channel, MobileNet's
 * 3x3 layers), forward and backward, on one NHWC image, its padding
 * implicit: taps that fall on the padding are skipped, so the callers make
 * no padded copy (for a 3x3 layer, the copy alone took as long as PyTorch's
 * whole forward).
 *
 * The layer is memory-bound. Interior pixels, whose every tap is inside the
 * image, go through tiles of PIX pixels x one channel vector, their sums in
 * PIX vector registers: each weight vector is loaded once per tap and used
 * PIX times. Border pixels and the channels past the last full vector go
 * through a per-pixel path that lists the pixel's valid taps first.
 *
 * Layouts: `a` (H, Wd, C) the image, `w` (f_h, f_w, C), `z` and `dz`
 * (n_H, n_W, C); `geom` = {f_h, f_w, s_h, s_w, d_h, d_w, top, left} (the
 * padding before the first row and column).
 */
#ifndef CNNEXT_DEPTHWISE_H
#define CNNEXT_DEPTHWISE_H

#include <stddef.h>

#include "_dispatch.h"
#include "_vectors.h"

/* The per-pixel path gathers at most this many taps before it sums them
 * (larger windows are summed in several passes). */
enum { CNX_DW_MAX_TAPS = 64 };

/* The taps k of one window axis inside [0, n) for the window at output
 * position o: input o * s - p + k * d, k in [*lo, *hi). */
static inline void cnx_dw_taps_inside(ptrdiff_t o, ptrdiff_t s, ptrdiff_t p, ptrdiff_t d,
                                      ptrdiff_t f, ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
    const ptrdiff_t first = o * s - p;
    ptrdiff_t k_lo = first < 0 ? (-first + d - 1) / d : 0;
    ptrdiff_t k_hi = first > n - 1 ? 0 : (n - 1 - first) / d + 1;
    if (k_hi > f) k_hi = f;
    if (k_lo > k_hi) k_lo = k_hi;
    *lo = k_lo;
    *hi = k_hi;
}

/* The output positions [*lo, *hi) along one axis whose windows lie wholly
 * inside [0, n): o * s - p >= 0 and o * s - p + (f - 1) * d <= n - 1. */
static inline void cnx_dw_interior(ptrdiff_t s, ptrdiff_t p, ptrdiff_t d, ptrdiff_t f,
                                   ptrdiff_t n, ptrdiff_t n_out, ptrdiff_t *lo, ptrdiff_t *hi)
{
    const ptrdiff_t last = n - 1 - (f - 1) * d + p;
    ptrdiff_t o_lo = (p + s - 1) / s, o_hi = last < 0 ? 0 : last / s + 1;
    if (o_lo > n_out) o_lo = n_out;
    if (o_hi > n_out) o_hi = n_out;
    if (o_hi < o_lo) o_hi = o_lo;
    *lo = o_lo;
    *hi = o_hi;
}

/* Pixels per tile: 8 sums of 32 registers, 6 of 16. */
#define CNX_DW_PIX CNX_TILE(8, 6)

#define CNX_DEFINE_DEPTHWISE(T, SUFFIX, VEC, VL)                                       \
/* out[q * C + c .. + VL] (+)= sum over n_i rows and f_w taps of                         \
 * src[i * di + j * dj + q * dq + c] * w[i * wi + j * C + c], q < PIX. */                \
static inline __attribute__((always_inline)) void CNX_ISA(cnx_dw_tile_##SUFFIX)(       \
        const T *restrict src, ptrdiff_t di, ptrdiff_t dj, ptrdiff_t dq,               \
        const T *restrict w, ptrdiff_t wi, ptrdiff_t C, ptrdiff_t n_i, ptrdiff_t f_w,  \
        VEC start, T *restrict out, const int PIX)                                     \
{                                                                                      \
    VEC acc[CNX_DW_PIX];                                                               \
    for (int q = 0; q < PIX; q++) acc[q] = start;                                      \
    for (ptrdiff_t i = 0; i < n_i; i++)                                                \
        for (ptrdiff_t j = 0; j < f_w; j++) {                                          \
            const VEC wv = *(const VEC *)(w + i * wi + j * C);                         \
            const T *restrict s = src + i * di + j * dj;                               \
            for (int q = 0; q < PIX; q++) acc[q] += *(const VEC *)(s + q * dq) * wv;   \
        }                                                                              \
    for (int q = 0; q < PIX; q++) *(VEC *)(out + q * C) = acc[q];                      \
}                                                                                      \
                                                                                       \
/* The tile above for windows 3 columns wide at stride and dilation 1, the         \
 * commonest: each input column of a row is loaded once and used by the up to         \
 * 3 pixels whose windows hold it (PIX + 2 loads for 3 * PIX multiply-adds,             \
 * rather than 4 * PIX). `src` points at pixel 0's tap 0. FLIP reads the window         \
 * mirrored, which makes the tile the input gradient's. */                             \
static inline __attribute__((always_inline)) void CNX_ISA(cnx_dw_tile3_##SUFFIX)(      \
        const T *restrict src, ptrdiff_t di, const T *restrict w, ptrdiff_t wi,        \
        ptrdiff_t C, ptrdiff_t n_i, VEC start, T *restrict out, const int PIX,         \
        const int FLIP)                                                                \
{                                                                                      \
    VEC acc[CNX_DW_PIX];                                                               \
    for (int q = 0; q < PIX; q++) acc[q] = start;                                      \
    for (ptrdiff_t i = 0; i < n_i; i++) {                                              \
        VEC wv[3];                                                                     \
        for (int j = 0; j < 3; j++) wv[j] = *(const VEC *)(w + i * wi + (FLIP ? 2 - j : j) * C); \
        const T *restrict s = src + i * di;                                            \
        for (int k = 0; k < PIX + 2; k++) {                                            \
            const VEC column = *(const VEC *)(s + k * C);                              \
            for (int j = 0; j < 3; j++)                                                \
                if (k - j >= 0 && k - j < PIX) acc[k - j] += column * wv[j];           \
        }                                                                              \
    }                                                                                  \
    for (int q = 0; q < PIX; q++) *(VEC *)(out + q * C) = acc[q];                      \
}                                                                                      \
                                                                                       \
/* out[c] = start[c] (0 if NULL) + sum over n taps t of                                 \
 * src[src_at[t] + c] * w[w_at[t] + c], for c in [c0, C). */                           \
static void CNX_ISA(cnx_dw_taps_sum_##SUFFIX)(                                         \
        const T *restrict src, const ptrdiff_t *src_at, const T *restrict w,           \
        const ptrdiff_t *w_at, ptrdiff_t n, const T *start, ptrdiff_t c0, ptrdiff_t C, \
        T *out)                                                                        \
{                                                                                      \
    ptrdiff_t c = c0;                                                                  \
    for (; c + VL <= C; c += VL) {                                                     \
        VEC acc = start ? *(const VEC *)(start + c) : (VEC){0};                        \
        for (ptrdiff_t t = 0; t < n; t++)                                              \
            acc += *(const VEC *)(src + src_at[t] + c) * *(const VEC *)(w + w_at[t] + c); \
        *(VEC *)(out + c) = acc;                                                       \
    }                                                                                  \
    for (; c < C; c++) {                                                               \
        T acc = start ? start[c] : (T)0;                                               \
        for (ptrdiff_t t = 0; t < n; t++) acc += src[src_at[t] + c] * w[w_at[t] + c];  \
        out[c] = acc;                                                                  \
    }                                                                                  \
}                                                                                      \
                                                                                       \
/* A pixel's valid taps, listed (offsets into src and w) and summed into out      \
 * CNX_DW_MAX_TAPS at a time: the per-pixel path of the forward and of the            \
 * input gradient. `start` is what the sum starts from: the bias (or NULL) at         \
 * first, `out` once a full list has been summed. */                                  \
typedef struct {                                                                       \
    const T *src, *w, *start;                                                          \
    T *out;                                                                            \
    ptrdiff_t c0, C, n, src_at[CNX_DW_MAX_TAPS], w_at[CNX_DW_MAX_TAPS];                \
} CNX_ISA(cnx_dw_taps_##SUFFIX);                                                       \
                                                                                       \
/* An empty list (its offset arrays are left unset: they are written before          \
 * they are read, and zeroing them would cost each border pixel 1 KiB). */             \
static inline void CNX_ISA(cnx_dw_taps_begin_##SUFFIX)(                                \
        CNX_ISA(cnx_dw_taps_##SUFFIX) *taps, const T *src, const T *w, const T *start, \
        T *out, ptrdiff_t c0, ptrdiff_t C)                                             \
{                                                                                      \
    taps->src = src;                                                                   \
    taps->w = w;                                                                       \
    taps->start = start;                                                               \
    taps->out = out;                                                                   \
    taps->c0 = c0;                                                                     \
    taps->C = C;                                                                       \
    taps->n = 0;                                                                       \
}                                                                                      \
                                                                                       \
static inline void CNX_ISA(cnx_dw_taps_add_##SUFFIX)(                                  \
        CNX_ISA(cnx_dw_taps_##SUFFIX) *taps, ptrdiff_t src_at, ptrdiff_t w_at)         \
{                                                                                      \
    taps->src_at[taps->n] = src_at;                                                    \
    taps->w_at[taps->n++] = w_at;                                                      \
    if (taps->n == CNX_DW_MAX_TAPS) {                                                  \
        CNX_ISA(cnx_dw_taps_sum_##SUFFIX)(taps->src, taps->src_at, taps->w, taps->w_at, \
                                          taps->n, taps->start, taps->c0, taps->C, taps->out); \
        taps->start = taps->out;                                                       \
        taps->n = 0;                                                                   \
    }                                                                                  \
}                                                                                      \
                                                                                       \
/* Sums what is left (or, for a pixel with no valid tap, writes `start`). */          \
static inline void CNX_ISA(cnx_dw_taps_finish_##SUFFIX)(CNX_ISA(cnx_dw_taps_##SUFFIX) *taps) \
{                                                                                      \
    if (taps->n > 0 || taps->start != taps->out)                                       \
        CNX_ISA(cnx_dw_taps_sum_##SUFFIX)(taps->src, taps->src_at, taps->w, taps->w_at, \
                                          taps->n, taps->start, taps->c0, taps->C, taps->out); \
}                                                                                      \
                                                                                       \
/* One output pixel (y, x), channels [c0, C), its valid taps listed first. */          \
static void CNX_ISA(cnx_dw_forward_pixel_##SUFFIX)(                                    \
        const T *restrict a, ptrdiff_t H, ptrdiff_t Wd, ptrdiff_t C, const T *restrict w, \
        const T *restrict bias, const ptrdiff_t *geom, ptrdiff_t y, ptrdiff_t x,       \
        ptrdiff_t c0, T *restrict out)                                                 \
{                                                                                      \
    const ptrdiff_t f_w = geom[1], d_h = geom[4], d_w = geom[5];                       \
    const ptrdiff_t row0 = y * geom[2] - geom[6], col0 = x * geom[3] - geom[7];        \
    ptrdiff_t i_lo, i_hi, j_lo, j_hi;                                                  \
    cnx_dw_taps_inside(y, geom[2], geom[6], d_h, geom[0], H, &i_lo, &i_hi);            \
    cnx_dw_taps_inside(x, geom[3], geom[7], d_w, f_w, Wd, &j_lo, &j_hi);               \
    CNX_ISA(cnx_dw_taps_##SUFFIX) taps;                                                \
    CNX_ISA(cnx_dw_taps_begin_##SUFFIX)(&taps, a, w, bias, out, c0, C);                \
    for (ptrdiff_t i = i_lo; i < i_hi; i++)                                            \
        for (ptrdiff_t j = j_lo; j < j_hi; j++)                                        \
            CNX_ISA(cnx_dw_taps_add_##SUFFIX)(&taps, ((row0 + i * d_h) * Wd + col0 + j * d_w) * C, \
                                              (i * f_w + j) * C);                      \
    CNX_ISA(cnx_dw_taps_finish_##SUFFIX)(&taps);                                       \
}                                                                                      \
                                                                                       \
/* Output pixels x .. x + PIX - 1 of row y, all inside the interior columns:       \
 * PIX-pixel tiles over the full channel vectors, the per-pixel path for the          \
 * rest (and for the whole row when its windows lie wholly in the padding). */        \
static inline __attribute__((always_inline)) void CNX_ISA(cnx_dw_forward_span_##SUFFIX)( \
        const T *restrict a, ptrdiff_t H, ptrdiff_t Wd, ptrdiff_t C, const T *restrict w, \
        const T *restrict bias, const ptrdiff_t *geom, ptrdiff_t n_W, ptrdiff_t y,     \
        ptrdiff_t x, T *restrict z, const int PIX)                                     \
{                                                                                      \
    const ptrdiff_t f_w = geom[1], s_w = geom[3], d_h = geom[4], d_w = geom[5];        \
    const ptrdiff_t C_vec = C - C % VL;                                                \
    T *restrict out = z + (y * n_W + x) * C;                                           \
    ptrdiff_t i_lo, i_hi, c0 = 0;                                                      \
    cnx_dw_taps_inside(y, geom[2], geom[6], d_h, geom[0], H, &i_lo, &i_hi);            \
    if (i_lo < i_hi) {                                                                 \
        /* Offset of tap (i_lo, 0) of pixel x (>= 0: x is interior). */               \
        const ptrdiff_t at = ((y * geom[2] - geom[6] + i_lo * d_h) * Wd + x * s_w - geom[7]) * C; \
        const T *restrict w_rows = w + i_lo * f_w * C;                                 \
        for (ptrdiff_t c = 0; c < C_vec; c += VL) {                                    \
            const VEC start = bias ? *(const VEC *)(bias + c) : (VEC){0};              \
            if (PIX > 1 && f_w == 3 && s_w == 1 && d_w == 1)                           \
                CNX_ISA(cnx_dw_tile3_##SUFFIX)(a + at + c, d_h * Wd * C, w_rows + c, f_w * C, C, \
                                               i_hi - i_lo, start, out + c, PIX, 0);   \
            else                                                                       \
                CNX_ISA(cnx_dw_tile_##SUFFIX)(a + at + c, d_h * Wd * C, d_w * C, s_w * C, \
                                              w_rows + c, f_w * C, C, i_hi - i_lo, f_w, start, \
                                              out + c, PIX);                           \
        }                                                                              \
        c0 = C_vec;                                                                    \
    }                                                                                  \
    if (c0 < C)                                                                        \
        for (int q = 0; q < PIX; q++)                                                  \
            CNX_ISA(cnx_dw_forward_pixel_##SUFFIX)(a, H, Wd, C, w, bias, geom, y, x + q, c0, \
                                                   out + q * C);                       \
}                                                                                      \
                                                                                       \
/* z = the depthwise convolution of `a` by `w`, plus bias (or not, NULL).             \
 * The interior is swept in strips CNX_DW_PIX pixels wide, each from the top         \
 * row to the bottom, so that the rows a window spans stay in L1 cache from one        \
 * output row to the next: a row of C = 128 channels is 28 KiB at width 56, and       \
 * three such rows (what a row-by-row sweep needs) overflow L1, which halved the       \
 * speed of MobileNet's (8, 56, 56, 128) layer. */                                     \
static void CNX_ISA(cnx_depthwise_forward_##SUFFIX)(                                   \
        const T *restrict a, ptrdiff_t H, ptrdiff_t Wd, ptrdiff_t C, const T *restrict w, \
        const T *restrict bias, const ptrdiff_t *geom, ptrdiff_t n_H, ptrdiff_t n_W,   \
        T *restrict z)                                                                 \
{                                                                                      \
    ptrdiff_t x_lo, x_hi;                                                              \
    cnx_dw_interior(geom[3], geom[7], geom[5], geom[1], Wd, n_W, &x_lo, &x_hi);        \
    const ptrdiff_t strips_end = x_lo + (x_hi - x_lo) / CNX_DW_PIX * CNX_DW_PIX;       \
    for (ptrdiff_t x = x_lo; x < strips_end; x += CNX_DW_PIX)                          \
        for (ptrdiff_t y = 0; y < n_H; y++)                                            \
            CNX_ISA(cnx_dw_forward_span_##SUFFIX)(a, H, Wd, C, w, bias, geom, n_W, y, x, z, \
                                                  CNX_DW_PIX);                         \
    for (ptrdiff_t y = 0; y < n_H; y++) {                                              \
        T *restrict out = z + y * n_W * C;                                             \
        for (ptrdiff_t x = 0; x < x_lo; x++)                                           \
            CNX_ISA(cnx_dw_forward_pixel_##SUFFIX)(a, H, Wd, C, w, bias, geom, y, x, 0, out + x * C); \
        /* The interior's last columns (fewer than a strip) in 4-, 2- and          \
         * 1-pixel tiles: single pixels would leave the sums one dependent chain. */  \
        ptrdiff_t x = strips_end;                                                      \
        if (x_hi - x >= 4) {                                                           \
            CNX_ISA(cnx_dw_forward_span_##SUFFIX)(a, H, Wd, C, w, bias, geom, n_W, y, x, z, 4); \
            x += 4;                                                                    \
        }                                                                              \
        if (x_hi - x >= 2) {                                                           \
            CNX_ISA(cnx_dw_forward_span_##SUFFIX)(a, H, Wd, C, w, bias, geom, n_W, y, x, z, 2); \
            x += 2;                                                                    \
        }                                                                              \
        if (x < x_hi)                                                                  \
            CNX_ISA(cnx_dw_forward_span_##SUFFIX)(a, H, Wd, C, w, bias, geom, n_W, y, x, z, 1); \
        for (x = x_hi; x < n_W; x++)                                                   \
            CNX_ISA(cnx_dw_forward_pixel_##SUFFIX)(a, H, Wd, C, w, bias, geom, y, x, 0, out + x * C); \
    }                                                                                  \
}                                                                                      \
                                                                                       \
/* One input pixel (iy, ix)'s gradient, channels [c0, C): the sum over the            \
 * windows that cover it of dz times the tap's weight. */                              \
static void CNX_ISA(cnx_dw_input_grad_pixel_##SUFFIX)(                                 \
        const T *restrict dz, ptrdiff_t n_H, ptrdiff_t n_W, ptrdiff_t C,               \
        const T *restrict w, const ptrdiff_t *geom, ptrdiff_t iy, ptrdiff_t ix,        \
        ptrdiff_t c0, T *restrict out)                                                 \
{                                                                                      \
    const ptrdiff_t f_h = geom[0], f_w = geom[1], s_h = geom[2], s_w = geom[3];        \
    const ptrdiff_t d_h = geom[4], d_w = geom[5];                                      \
    CNX_ISA(cnx_dw_taps_##SUFFIX) taps;                                                \
    CNX_ISA(cnx_dw_taps_begin_##SUFFIX)(&taps, dz, w, NULL, out, c0, C);               \
    for (ptrdiff_t i = 0; i < f_h; i++) {                                              \
        const ptrdiff_t ty = iy + geom[6] - i * d_h;                                   \
        if (ty < 0 || ty % s_h != 0 || ty / s_h >= n_H) continue;                      \
        for (ptrdiff_t j = 0; j < f_w; j++) {                                          \
            const ptrdiff_t tx = ix + geom[7] - j * d_w;                               \
            if (tx < 0 || tx % s_w != 0 || tx / s_w >= n_W) continue;                  \
            CNX_ISA(cnx_dw_taps_add_##SUFFIX)(&taps, ((ty / s_h) * n_W + tx / s_w) * C,  \
                                              (i * f_w + j) * C);                      \
        }                                                                              \
    }                                                                                  \
    CNX_ISA(cnx_dw_taps_finish_##SUFFIX)(&taps);                                       \
}                                                                                      \
                                                                                       \
/* Input pixels ix .. ix + PIX - 1 of row iy at stride 1, all inside the            \
 * interior columns: the forward's tiles over dz with the window mirrored. */          \
static inline __attribute__((always_inline)) void CNX_ISA(cnx_dw_input_grad_span_##SUFFIX)( \
        const T *restrict dz, ptrdiff_t n_H, ptrdiff_t n_W, ptrdiff_t C,               \
        const T *restrict w, const ptrdiff_t *geom, ptrdiff_t Wd, ptrdiff_t iy,        \
        ptrdiff_t ix, T *restrict da, const int PIX)                                   \
{                                                                                      \
    const ptrdiff_t f_h = geom[0], f_w = geom[1], d_h = geom[4], d_w = geom[5];        \
    const ptrdiff_t C_vec = C - C % VL;                                                \
    T *restrict out = da + (iy * Wd + ix) * C;                                         \
    /* dz rows iy + top - i * d_h inside [0, n_H): i in [i_lo, i_hi). */               \
    const ptrdiff_t first = iy + geom[6];                                              \
    ptrdiff_t i_lo = first - (n_H - 1) > 0 ? (first - (n_H - 1) + d_h - 1) / d_h : 0;  \
    ptrdiff_t i_hi = first < 0 ? 0 : first / d_h + 1, c0 = 0;                          \
    if (i_hi > f_h) i_hi = f_h;                                                        \
    if (i_lo < i_hi) {                                                                 \
        /* Offset of dz's pixel under tap (i_lo, 0) (>= 0: ix is interior). */       \
        const ptrdiff_t at = ((first - i_lo * d_h) * n_W + ix + geom[7]) * C;          \
        for (ptrdiff_t c = 0; c < C_vec; c += VL) {                                    \
            if (PIX > 1 && f_w == 3 && d_w == 1) /* from pixel 0's tap 2 */            \
                CNX_ISA(cnx_dw_tile3_##SUFFIX)(dz + at - 2 * C + c, -d_h * n_W * C,     \
                                               w + i_lo * f_w * C + c, f_w * C, C,     \
                                               i_hi - i_lo, (VEC){0}, out + c, PIX, 1); \
            else                                                                       \
                CNX_ISA(cnx_dw_tile_##SUFFIX)(dz + at + c, -d_h * n_W * C, -d_w * C, C, \
                                              w + i_lo * f_w * C + c, f_w * C, C,      \
                                              i_hi - i_lo, f_w, (VEC){0}, out + c, PIX); \
        }                                                                              \
        c0 = C_vec;                                                                    \
    }                                                                                  \
    if (c0 < C)                                                                        \
        for (int q = 0; q < PIX; q++)                                                  \
            CNX_ISA(cnx_dw_input_grad_pixel_##SUFFIX)(dz, n_H, n_W, C, w, geom, iy, ix + q, \
                                                      c0, out + q * C);                \
}                                                                                      \
                                                                                       \
/* da = the input gradient of the image (H, Wd, C), every entry written. At          \
 * stride 1 the input pixels whose windows all lie inside the output go in            \
 * strips, as the forward's do; the others, and every pixel at other strides,         \
 * through the per-pixel path. */                                                      \
static void CNX_ISA(cnx_depthwise_input_grad_##SUFFIX)(                                \
        const T *restrict dz, ptrdiff_t n_H, ptrdiff_t n_W, ptrdiff_t C,               \
        const T *restrict w, const ptrdiff_t *geom, ptrdiff_t H, ptrdiff_t Wd,         \
        T *restrict da)                                                                \
{                                                                                      \
    /* At stride 1, input column ix reads dz columns ix + left - j * d_w: all        \
     * inside [0, n_W) for ix in [x_lo, x_hi). */                                      \
    ptrdiff_t x_lo = 0, x_hi = 0;                                                      \
    if (geom[2] == 1 && geom[3] == 1) {                                                \
        x_lo = (geom[1] - 1) * geom[5] - geom[7];                                      \
        x_hi = n_W - geom[7];                                                          \
        if (x_lo < 0) x_lo = 0;                                                        \
        if (x_hi > Wd) x_hi = Wd;                                                      \
        if (x_hi < x_lo) x_hi = x_lo;                                                  \
    }                                                                                  \
    const ptrdiff_t strips_end = x_lo + (x_hi - x_lo) / CNX_DW_PIX * CNX_DW_PIX;       \
    for (ptrdiff_t ix = x_lo; ix < strips_end; ix += CNX_DW_PIX)                       \
        for (ptrdiff_t iy = 0; iy < H; iy++)                                           \
            CNX_ISA(cnx_dw_input_grad_span_##SUFFIX)(dz, n_H, n_W, C, w, geom, Wd, iy, ix, da, \
                                                     CNX_DW_PIX);                      \
    for (ptrdiff_t iy = 0; iy < H; iy++) {                                             \
        T *restrict out = da + iy * Wd * C;                                            \
        for (ptrdiff_t ix = 0; ix < x_lo; ix++)                                        \
            CNX_ISA(cnx_dw_input_grad_pixel_##SUFFIX)(dz, n_H, n_W, C, w, geom, iy, ix, 0, out + ix * C); \
        ptrdiff_t ix = strips_end; /* the rest in 4-, 2- and 1-pixel tiles */          \
        if (x_hi - ix >= 4) {                                                          \
            CNX_ISA(cnx_dw_input_grad_span_##SUFFIX)(dz, n_H, n_W, C, w, geom, Wd, iy, ix, da, 4); \
            ix += 4;                                                                   \
        }                                                                              \
        if (x_hi - ix >= 2) {                                                          \
            CNX_ISA(cnx_dw_input_grad_span_##SUFFIX)(dz, n_H, n_W, C, w, geom, Wd, iy, ix, da, 2); \
            ix += 2;                                                                   \
        }                                                                              \
        if (ix < x_hi)                                                                 \
            CNX_ISA(cnx_dw_input_grad_span_##SUFFIX)(dz, n_H, n_W, C, w, geom, Wd, iy, ix, da, 1); \
        for (ix = x_hi; ix < Wd; ix++)                                                 \
            CNX_ISA(cnx_dw_input_grad_pixel_##SUFFIX)(dz, n_H, n_W, C, w, geom, iy, ix, 0, out + ix * C); \
    }                                                                                  \
}                                                                                      \
                                                                                       \
/* dw[i, j] += sum over the output row's pixels x in [x0, x1) of                       \
 * dz[x] * a[at + (x * s_w + j * d_w) * C] (`at`: the row's tap 0 for pixel 0,        \
 * plus the channel), for the NJ taps j from j0: 2 * NJ sums in registers,             \
 * the pixels taken two at a time. */                                                  \
static inline __attribute__((always_inline)) void CNX_ISA(cnx_dw_wgrad_taps_##SUFFIX)( \
        const T *restrict a, ptrdiff_t at, const T *restrict g, ptrdiff_t x0, ptrdiff_t x1, \
        ptrdiff_t s_w, ptrdiff_t d_w, ptrdiff_t C, ptrdiff_t j0, T *restrict dw_row,   \
        const int NJ)                                                                  \
{                                                                                      \
    VEC even[4], odd[4];                                                               \
    for (int t = 0; t < NJ; t++) {                                                     \
        even[t] = *(const VEC *)(dw_row + (j0 + t) * C);                               \
        odd[t] = (VEC){0};                                                             \
    }                                                                                  \
    ptrdiff_t x = x0;                                                                  \
    for (; x + 2 <= x1; x += 2) {                                                      \
        const VEC g0 = *(const VEC *)(g + x * C), g1 = *(const VEC *)(g + (x + 1) * C); \
        const T *restrict s0 = a + (at + (x * s_w + j0 * d_w) * C);                    \
        for (int t = 0; t < NJ; t++) {                                                 \
            even[t] += g0 * *(const VEC *)(s0 + t * d_w * C);                          \
            odd[t] += g1 * *(const VEC *)(s0 + (s_w + t * d_w) * C);                   \
        }                                                                              \
    }                                                                                  \
    if (x < x1) {                                                                      \
        const VEC g0 = *(const VEC *)(g + x * C);                                      \
        for (int t = 0; t < NJ; t++)                                                   \
            even[t] += g0 * *(const VEC *)(a + (at + (x * s_w + (j0 + t) * d_w) * C)); \
    }                                                                                  \
    for (int t = 0; t < NJ; t++) *(VEC *)(dw_row + (j0 + t) * C) = even[t] + odd[t];   \
}                                                                                      \
                                                                                       \
/* dw += the image's weight gradient: sum over output pixels of dz times the          \
 * input under each tap. */                                                            \
static void CNX_ISA(cnx_depthwise_weight_grad_##SUFFIX)(                               \
        const T *restrict a, ptrdiff_t H, ptrdiff_t Wd, ptrdiff_t C,                   \
        const T *restrict dz, const ptrdiff_t *geom, ptrdiff_t n_H, ptrdiff_t n_W,     \
        T *restrict dw)                                                                \
{                                                                                      \
    const ptrdiff_t f_w = geom[1], s_w = geom[3], d_h = geom[4], d_w = geom[5];        \
    const ptrdiff_t C_vec = C - C % VL;                                                \
    ptrdiff_t x_lo, x_hi;                                                              \
    cnx_dw_interior(s_w, geom[7], d_w, f_w, Wd, n_W, &x_lo, &x_hi);                    \
    for (ptrdiff_t y = 0; y < n_H; y++) {                                              \
        ptrdiff_t i_lo, i_hi;                                                          \
        cnx_dw_taps_inside(y, geom[2], geom[6], d_h, geom[0], H, &i_lo, &i_hi);        \
        const T *restrict g = dz + y * n_W * C;                                        \
        for (ptrdiff_t i = i_lo; i < i_hi; i++) {                                      \
            const ptrdiff_t iy = y * geom[2] - geom[6] + i * d_h;                      \
            const ptrdiff_t row_at = (iy * Wd - geom[7]) * C; /* can be < 0 */         \
            T *restrict dw_row = dw + i * f_w * C;                                     \
            for (ptrdiff_t c = 0; c < C_vec && x_lo < x_hi; c += VL) {                 \
                ptrdiff_t j = 0;                                                       \
                for (; j + 4 <= f_w; j += 4)                                           \
                    CNX_ISA(cnx_dw_wgrad_taps_##SUFFIX)(a, row_at + c, g + c, x_lo, x_hi, s_w, d_w, \
                                                        C, j, dw_row + c, 4);          \
                if (f_w - j == 3)                                                      \
                    CNX_ISA(cnx_dw_wgrad_taps_##SUFFIX)(a, row_at + c, g + c, x_lo, x_hi, s_w, d_w, \
                                                        C, j, dw_row + c, 3);          \
                else if (f_w - j == 2)                                                 \
                    CNX_ISA(cnx_dw_wgrad_taps_##SUFFIX)(a, row_at + c, g + c, x_lo, x_hi, s_w, d_w, \
                                                        C, j, dw_row + c, 2);          \
                else if (f_w - j == 1)                                                 \
                    CNX_ISA(cnx_dw_wgrad_taps_##SUFFIX)(a, row_at + c, g + c, x_lo, x_hi, s_w, d_w, \
                                                        C, j, dw_row + c, 1);          \
            }                                                                          \
            /* The border pixels, and the interior's channels past C_vec. */          \
            for (ptrdiff_t x = 0; x < n_W; x++) {                                      \
                const ptrdiff_t c0 = x >= x_lo && x < x_hi ? C_vec : 0;                \
                if (c0 == C) continue;                                                 \
                ptrdiff_t j_lo, j_hi;                                                  \
                cnx_dw_taps_inside(x, s_w, geom[7], d_w, f_w, Wd, &j_lo, &j_hi);        \
                for (ptrdiff_t j = j_lo; j < j_hi; j++) {                              \
                    const T *restrict s = a + (row_at + (x * s_w + j * d_w) * C);      \
                    const T *restrict gx = g + x * C;                                  \
                    T *restrict dwk = dw_row + j * C;                                  \
                    for (ptrdiff_t c = c0; c < C; c++) dwk[c] += gx[c] * s[c];         \
                }                                                                      \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}

#define CNX_PER_ISA_KERNELS                                                            \
    CNX_DEFINE_DEPTHWISE(float, f, CNX_VEC(f), CNX_FULL_LANES(float))                  \
    CNX_DEFINE_DEPTHWISE(double, d, CNX_VEC(d), CNX_FULL_LANES(double))
#include "_per_isa.h"
#undef CNX_DEFINE_DEPTHWISE

#define CNX_DEPTHWISE_KERNELS(X)                                                       \
    X(cnx_depthwise_forward_f) X(cnx_depthwise_forward_d)                              \
    X(cnx_depthwise_input_grad_f) X(cnx_depthwise_input_grad_d)                        \
    X(cnx_depthwise_weight_grad_f) X(cnx_depthwise_weight_grad_d)
CNX_DEPTHWISE_KERNELS(CNX_DISPATCHED)

/* Points every depthwise kernel at `level` (a CNX_LEVEL_*). */
CNX_DEFINE_SELECT(cnx_depthwise_select, CNX_DEPTHWISE_KERNELS)

#endif /* CNNEXT_DEPTHWISE_H */
