/* Max pooling that records where each window's maxima are, and the backward
 * pass that sends the gradient there without reading A_prev again.
 *
 * The record holds one bit per entry of each window, set where the entry
 * equals the window's max in its channel: the seed's `x == np.max(x)`, so
 * every tie is set, and a NaN max (which equals nothing) sets none. A window
 * row's f pixels x C channels are f*C consecutive elements of the NHWC
 * image, and its bits are f*C consecutive bits: element k of row di is bit
 * k % 8 of byte di * CNX_TIE_ROW_BYTES(f, C) + k / 8 of the window's record.
 * Laid out along the elements rather than per channel, a vector's compare
 * is one store of its mask (AVX-512's k-registers, AVX2's movemask), and a
 * loaded mask selects a vector of gradients.
 *
 * Written per instruction set, by hand, since they are what the sets differ
 * in (the compilers do not turn a compare into a bit mask on their own):
 * two primitives on runs of n elements, and AVX-512's window kernels that
 * keep the max in registers. The window loops over them are plain C,
 * compiled once per level by _per_isa.h as _window_ops.h's are. */
#ifndef CNNEXT_TIE_BITS_H
#define CNNEXT_TIE_BITS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_window_ops.h"

#if CNX_X86_LEVELS
#include <immintrin.h>
#endif

#define CNX_TIE_ROW_BYTES(f, C) (((f) * (C) + 7) / 8)

/* The baseline, and every machine without the x86 levels: one bit at a time.
 *
 * cnx_eq_bits_*: bits[0 .. (n + 7) / 8) = (a[k] == ref[k]) for k < n, the
 * bits past n clear. cnx_bits_times_*: dst[k] (+)= bit k * grad[k], a
 * product, so that an inf or NaN gradient spreads over the window as the
 * seed's mask * dA does (0 * NaN is NaN). */
#define CNX_DEFINE_SCALAR_TIE_BITS(T, S)                                                 \
static inline void cnx_eq_bits_##S##_baseline(const T *restrict a, const T *restrict ref, \
                                              ptrdiff_t n, uint8_t *restrict bits)      \
{                                                                                       \
    for (ptrdiff_t byte = 0; byte * 8 < n; byte++) {                                    \
        unsigned v = 0;                                                                 \
        for (ptrdiff_t j = 0; j < 8 && byte * 8 + j < n; j++)                           \
            v |= (unsigned)(a[byte * 8 + j] == ref[byte * 8 + j]) << j;                 \
        bits[byte] = (uint8_t)v;                                                        \
    }                                                                                   \
}                                                                                       \
static inline void cnx_bits_times_##S##_baseline(const uint8_t *restrict bits,          \
                                                 const T *restrict grad, ptrdiff_t n,   \
                                                 T *restrict dst, int accumulate)       \
{                                                                                       \
    for (ptrdiff_t k = 0; k < n; k++) {                                                 \
        T v = (T)((bits[k >> 3] >> (k & 7)) & 1) * grad[k];                             \
        dst[k] = accumulate ? dst[k] + v : v;                                           \
    }                                                                                   \
}
CNX_DEFINE_SCALAR_TIE_BITS(float, f)
CNX_DEFINE_SCALAR_TIE_BITS(double, d)
#undef CNX_DEFINE_SCALAR_TIE_BITS

/* The baseline's (and for now AVX2's) window kernel in registers: none,
 * the general path of cnx_window_max_tie_bits runs. */
#define CNX_DEFINE_NO_WINDOW_IN_REGISTERS(T, S, ISA)                                    \
static inline int cnx_window_max_tie_bits_in_registers_##S##_##ISA(                     \
        const T *a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C, T *out,             \
        uint8_t *bits, ptrdiff_t row_bytes)                                             \
{                                                                                       \
    (void)a, (void)row_stride, (void)f, (void)C, (void)out, (void)bits, (void)row_bytes; \
    return 0;                                                                           \
}
CNX_DEFINE_NO_WINDOW_IN_REGISTERS(float, f, baseline)
CNX_DEFINE_NO_WINDOW_IN_REGISTERS(double, d, baseline)

#if CNX_X86_LEVELS
/* The features of _per_isa.h's AVX2 and AVX-512 levels. */
#define CNX_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,popcnt")))
#define CNX_TARGET_AVX512 \
    __attribute__((target("avx2,fma,bmi,bmi2,popcnt,avx512f,avx512bw,avx512cd,avx512dq,avx512vl")))

/* AVX2: a compare's movemask is a byte of float bits, half a byte of double
 * bits. To select, a byte is spread over the lanes and tested against each
 * lane's bit. The tails (n % 8) go bit by bit. */
CNX_TARGET_AVX2 static inline void cnx_eq_bits_f_avx2(const float *restrict a,
        const float *restrict ref, ptrdiff_t n, uint8_t *restrict bits)
{
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8)
        bits[k / 8] = (uint8_t)_mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(ref + k), _CMP_EQ_OQ));
    if (k < n)
        cnx_eq_bits_f_baseline(a + k, ref + k, n - k, bits + k / 8);
}

CNX_TARGET_AVX2 static inline void cnx_eq_bits_d_avx2(const double *restrict a,
        const double *restrict ref, ptrdiff_t n, uint8_t *restrict bits)
{
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        int low = _mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_loadu_pd(a + k), _mm256_loadu_pd(ref + k), _CMP_EQ_OQ));
        int high = _mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_loadu_pd(a + k + 4), _mm256_loadu_pd(ref + k + 4), _CMP_EQ_OQ));
        bits[k / 8] = (uint8_t)(low | high << 4);
    }
    if (k < n)
        cnx_eq_bits_d_baseline(a + k, ref + k, n - k, bits + k / 8);
}

CNX_TARGET_AVX2 static inline void cnx_bits_times_f_avx2(const uint8_t *restrict bits,
        const float *restrict grad, ptrdiff_t n, float *restrict dst, int accumulate)
{
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256 one = _mm256_set1_ps(1.0f);
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256i spread = _mm256_and_si256(_mm256_set1_epi32(bits[k / 8]), lane_bit);
        __m256 is_tie = _mm256_castsi256_ps(_mm256_cmpeq_epi32(spread, lane_bit));
        __m256 v = _mm256_mul_ps(_mm256_and_ps(is_tie, one), _mm256_loadu_ps(grad + k));
        if (accumulate)
            v = _mm256_add_ps(_mm256_loadu_ps(dst + k), v);
        _mm256_storeu_ps(dst + k, v);
    }
    if (k < n)
        cnx_bits_times_f_baseline(bits + k / 8, grad + k, n - k, dst + k, accumulate);
}

CNX_TARGET_AVX2 static inline void cnx_bits_times_d_avx2(const uint8_t *restrict bits,
        const double *restrict grad, ptrdiff_t n, double *restrict dst, int accumulate)
{
    const __m256i lane_bit = _mm256_setr_epi64x(1, 2, 4, 8);
    const __m256d one = _mm256_set1_pd(1.0);
    ptrdiff_t k = 0;
    for (; k + 4 <= n; k += 4) {
        int nibble = bits[k / 8] >> (k & 4);
        __m256i spread = _mm256_and_si256(_mm256_set1_epi64x(nibble), lane_bit);
        __m256d is_tie = _mm256_castsi256_pd(_mm256_cmpeq_epi64(spread, lane_bit));
        __m256d v = _mm256_mul_pd(_mm256_and_pd(is_tie, one), _mm256_loadu_pd(grad + k));
        if (accumulate)
            v = _mm256_add_pd(_mm256_loadu_pd(dst + k), v);
        _mm256_storeu_pd(dst + k, v);
    }
    for (; k < n; k++) {
        double v = (double)((bits[k >> 3] >> (k & 7)) & 1) * grad[k];
        dst[k] = accumulate ? dst[k] + v : v;
    }
}

/* AVX-512: a compare's k-register is the bits, 16 floats or 8 doubles, and
 * masked loads and stores take the tail (n % LANES) in the same
 * instructions. The full vectors store and load their masks whole, with
 * memcpy of a constant size (one move); the tail's go byte by byte. */
#define CNX_DEFINE_AVX512_TIE_BITS(T, S, LANES, MASK, VEC, SUFFIX)                      \
CNX_TARGET_AVX512 static inline MASK cnx_eq_mask_##S(const T *a, const T *ref, MASK in_run) \
{                                                                                       \
    return _mm512_mask_cmp_##SUFFIX##_mask(in_run, _mm512_maskz_loadu_##SUFFIX(in_run, a), \
                                           _mm512_maskz_loadu_##SUFFIX(in_run, ref),    \
                                           _CMP_EQ_OQ);                                 \
}                                                                                       \
CNX_TARGET_AVX512 static inline void cnx_eq_bits_##S##_avx512(const T *restrict a,      \
        const T *restrict ref, ptrdiff_t n, uint8_t *restrict bits)                     \
{                                                                                       \
    const MASK all = (MASK)~(MASK)0;                                                    \
    ptrdiff_t k = 0;                                                                    \
    for (; k + LANES <= n; k += LANES) {                                                \
        MASK eq = cnx_eq_mask_##S(a + k, ref + k, all);                                 \
        memcpy(bits + k / 8, &eq, sizeof eq);                                           \
    }                                                                                   \
    if (k < n) {                                                                        \
        unsigned long long eq = cnx_eq_mask_##S(a + k, ref + k,                         \
                                                (MASK)((1ull << (n - k)) - 1));         \
        for (ptrdiff_t byte = 0; byte * 8 < n - k; byte++)                              \
            bits[k / 8 + byte] = (uint8_t)(eq >> (8 * byte));                           \
    }                                                                                   \
}                                                                                       \
CNX_TARGET_AVX512 static inline VEC cnx_bits_times_vec_##S(MASK is_tie, const T *grad,  \
        const T *dst, MASK in_run, int accumulate)                                      \
{                                                                                       \
    VEC v = _mm512_mul_##SUFFIX(_mm512_maskz_mov_##SUFFIX(is_tie, _mm512_set1_##SUFFIX(1)), \
                                _mm512_maskz_loadu_##SUFFIX(in_run, grad));             \
    return accumulate ? _mm512_add_##SUFFIX(_mm512_maskz_loadu_##SUFFIX(in_run, dst), v) : v; \
}                                                                                       \
CNX_TARGET_AVX512 static inline void cnx_bits_times_##S##_avx512(                       \
        const uint8_t *restrict bits, const T *restrict grad, ptrdiff_t n,              \
        T *restrict dst, int accumulate)                                                \
{                                                                                       \
    const MASK all = (MASK)~(MASK)0;                                                    \
    ptrdiff_t k = 0;                                                                    \
    for (; k + LANES <= n; k += LANES) {                                                \
        MASK is_tie;                                                                    \
        memcpy(&is_tie, bits + k / 8, sizeof is_tie);                                   \
        _mm512_storeu_##SUFFIX(dst + k, cnx_bits_times_vec_##S(is_tie, grad + k, dst + k, \
                                                              all, accumulate));       \
    }                                                                                   \
    if (k < n) {                                                                        \
        MASK in_run = (MASK)((1ull << (n - k)) - 1);                                    \
        unsigned long long is_tie = 0;                                                  \
        for (ptrdiff_t byte = 0; byte * 8 < n - k; byte++)                              \
            is_tie |= (unsigned long long)bits[k / 8 + byte] << (8 * byte);             \
        _mm512_mask_storeu_##SUFFIX(dst + k, in_run,                                    \
            cnx_bits_times_vec_##S((MASK)is_tie, grad + k, dst + k, in_run, accumulate)); \
    }                                                                                   \
}
CNX_DEFINE_AVX512_TIE_BITS(float, f, 16, __mmask16, __m512, ps)
CNX_DEFINE_AVX512_TIE_BITS(double, d, 8, __mmask8, __m512d, pd)
#undef CNX_DEFINE_AVX512_TIE_BITS

/* AVX-512, the window's max kept in registers and each tap's compare
 * stored as its mask, in one of two ways:
 *  - by channel vectors, when C fills whole vectors (C % LANES == 0; for
 *    floats also half vectors, C % 8 == 0): over the f*f taps, four
 *    running maxima in turn, so that the compares do not wait on each
 *    other (one chain of 64 taps made SIGNS' 8x8 windows latency-bound);
 *  - by window rows, when a row's f*C elements fill at most 8 vectors and
 *    C divides a vector (SIGNS: f = 8, C = 8): the max over the rows per
 *    vector, then over the vectors, then across the C-periodic lanes by
 *    halving swaps, which leaves every lane holding its channel's max, the
 *    row pattern to compare with.
 * Windows of more taps than CNX_TAPS_LISTED, and the shapes neither way
 * takes, go the general way (the functions below return 0 for them). */
enum { CNX_TAPS_LISTED = 256 }; /* windows up to 16 x 16 */
#define CNX_DEFINE_AVX512_WINDOWS(T, S, LANES, MASK, VEC, P, SUFFIX)                    \
/* max(m, v) as np.max takes it: v when v > m or v is a NaN. */                         \
CNX_TARGET_AVX512 static inline VEC cnx_nan_max_##S##LANES(VEC m, VEC v)                 \
{                                                                                       \
    MASK take = P##_cmp_##SUFFIX##_mask(v, m, _CMP_GT_OQ) | P##_cmp_##SUFFIX##_mask(v, v, _CMP_UNORD_Q); \
    return P##_mask_mov_##SUFFIX(m, take, v);                                           \
}                                                                                       \
CNX_TARGET_AVX512 static inline void cnx_window_max_tie_bits_by_vector_##S##LANES(      \
        const T *restrict a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C,            \
        T *restrict out, uint8_t *restrict bits, ptrdiff_t row_bytes)                   \
{                                                                                       \
    const ptrdiff_t taps = f * f; /* <= CNX_TAPS_LISTED, chosen by the caller */       \
    ptrdiff_t at[CNX_TAPS_LISTED], bit_at[CNX_TAPS_LISTED]; /* element, record offsets */ \
    for (ptrdiff_t di = 0, k = 0; di < f; di++)                                         \
        for (ptrdiff_t dj = 0; dj < f; dj++, k++) {                                     \
            at[k] = di * row_stride + dj * C;                                           \
            bit_at[k] = di * row_bytes + dj * C / 8;                                    \
        }                                                                               \
    for (ptrdiff_t c0 = 0; c0 < C; c0 += LANES) {                                       \
        const T *restrict block = a + c0;                                               \
        VEC m0 = P##_loadu_##SUFFIX(block), m1 = m0, m2 = m0, m3 = m0;                  \
        ptrdiff_t k = 1;                                                                \
        for (; k + 4 <= taps; k += 4) {                                                 \
            m0 = cnx_nan_max_##S##LANES(m0, P##_loadu_##SUFFIX(block + at[k]));         \
            m1 = cnx_nan_max_##S##LANES(m1, P##_loadu_##SUFFIX(block + at[k + 1]));     \
            m2 = cnx_nan_max_##S##LANES(m2, P##_loadu_##SUFFIX(block + at[k + 2]));     \
            m3 = cnx_nan_max_##S##LANES(m3, P##_loadu_##SUFFIX(block + at[k + 3]));     \
        }                                                                               \
        for (; k < taps; k++)                                                           \
            m0 = cnx_nan_max_##S##LANES(m0, P##_loadu_##SUFFIX(block + at[k]));         \
        VEC max = cnx_nan_max_##S##LANES(cnx_nan_max_##S##LANES(m0, m1),                \
                                         cnx_nan_max_##S##LANES(m2, m3));               \
        P##_storeu_##SUFFIX(out + c0, max);                                             \
        for (k = 0; k < taps; k++) {                                                    \
            MASK eq = P##_cmp_##SUFFIX##_mask(P##_loadu_##SUFFIX(block + at[k]), max, _CMP_EQ_OQ); \
            memcpy(bits + bit_at[k] + c0 / 8, &eq, sizeof eq);                          \
        }                                                                               \
    }                                                                                   \
}
CNX_DEFINE_AVX512_WINDOWS(float, f, 16, __mmask16, __m512, _mm512, ps)
CNX_DEFINE_AVX512_WINDOWS(float, f, 8, __mmask8, __m256, _mm256, ps)
CNX_DEFINE_AVX512_WINDOWS(double, d, 8, __mmask8, __m512d, _mm512, pd)
#undef CNX_DEFINE_AVX512_WINDOWS

/* The vector with its halves of `half` lanes swapped. */
CNX_TARGET_AVX512 static inline __m512 cnx_swap_halves_f(__m512 v, int half)
{
    switch (half) {
    case 8: return _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2));
    case 4: return _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1));
    case 2: return _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2));
    default: return _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1));
    }
}

CNX_TARGET_AVX512 static inline __m512d cnx_swap_halves_d(__m512d v, int half)
{
    switch (half) {
    case 4: return _mm512_shuffle_f64x2(v, v, _MM_SHUFFLE(1, 0, 3, 2));
    case 2: return _mm512_shuffle_f64x2(v, v, _MM_SHUFFLE(2, 3, 0, 1));
    default: return _mm512_permute_pd(v, 0x55);
    }
}

#define CNX_DEFINE_AVX512_WINDOW_BY_ROWS(T, S, LANES, MASK, VEC, SUFFIX)                \
CNX_TARGET_AVX512 static inline void cnx_window_max_tie_bits_by_rows_##S(               \
        const T *restrict a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C,            \
        T *restrict out, uint8_t *restrict bits, ptrdiff_t row_bytes)                   \
{                                                                                       \
    const ptrdiff_t vectors = f * C / LANES;                                            \
    VEC max[8] = {0}; /* vectors <= 8, chosen by the caller */                         \
    for (ptrdiff_t r = 0; r < vectors; r++) max[r] = _mm512_loadu_##SUFFIX(a + r * LANES); \
    for (ptrdiff_t di = 1; di < f; di++)                                                \
        for (ptrdiff_t r = 0; r < vectors; r++)                                         \
            max[r] = cnx_nan_max_##S##LANES(                                            \
                max[r], _mm512_loadu_##SUFFIX(a + di * row_stride + r * LANES));        \
    VEC pattern = max[0];                                                               \
    for (ptrdiff_t r = 1; r < vectors; r++) pattern = cnx_nan_max_##S##LANES(pattern, max[r]); \
    for (int half = LANES / 2; half >= C; half /= 2)                                    \
        pattern = cnx_nan_max_##S##LANES(pattern, cnx_swap_halves_##S(pattern, half));  \
    _mm512_mask_storeu_##SUFFIX(out, (MASK)((1u << C) - 1), pattern);                   \
    for (ptrdiff_t di = 0; di < f; di++)                                                \
        for (ptrdiff_t r = 0; r < vectors; r++) {                                       \
            MASK eq = _mm512_cmp_##SUFFIX##_mask(                                       \
                _mm512_loadu_##SUFFIX(a + di * row_stride + r * LANES), pattern, _CMP_EQ_OQ); \
            memcpy(bits + di * row_bytes + r * (LANES / 8), &eq, sizeof eq);            \
        }                                                                               \
}
CNX_DEFINE_AVX512_WINDOW_BY_ROWS(float, f, 16, __mmask16, __m512, ps)
CNX_DEFINE_AVX512_WINDOW_BY_ROWS(double, d, 8, __mmask8, __m512d, pd)
#undef CNX_DEFINE_AVX512_WINDOW_BY_ROWS

CNX_TARGET_AVX512 static inline int cnx_window_max_tie_bits_in_registers_f_avx512(
        const float *a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C, float *out,
        uint8_t *bits, ptrdiff_t row_bytes)
{
    if (C % 16 == 0 && f * f <= CNX_TAPS_LISTED)
        cnx_window_max_tie_bits_by_vector_f16(a, row_stride, f, C, out, bits, row_bytes);
    else if (16 % C == 0 && f * C % 16 == 0 && f * C <= 8 * 16)
        cnx_window_max_tie_bits_by_rows_f(a, row_stride, f, C, out, bits, row_bytes);
    else if (C % 8 == 0 && f * f <= CNX_TAPS_LISTED)
        cnx_window_max_tie_bits_by_vector_f8(a, row_stride, f, C, out, bits, row_bytes);
    else
        return 0;
    return 1;
}

CNX_TARGET_AVX512 static inline int cnx_window_max_tie_bits_in_registers_d_avx512(
        const double *a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C, double *out,
        uint8_t *bits, ptrdiff_t row_bytes)
{
    if (C % 8 == 0 && f * f <= CNX_TAPS_LISTED)
        cnx_window_max_tie_bits_by_vector_d8(a, row_stride, f, C, out, bits, row_bytes);
    else if (8 % C == 0 && f * C % 8 == 0 && f * C <= 8 * 8)
        cnx_window_max_tie_bits_by_rows_d(a, row_stride, f, C, out, bits, row_bytes);
    else
        return 0;
    return 1;
}

CNX_DEFINE_NO_WINDOW_IN_REGISTERS(float, f, avx2)
CNX_DEFINE_NO_WINDOW_IN_REGISTERS(double, d, avx2)
#endif /* CNX_X86_LEVELS */
#undef CNX_DEFINE_NO_WINDOW_IN_REGISTERS

/* The window kernels, one per level, over that level's primitives.
 * `scratch` holds CNX_WINDOW_SCRATCH(f, C) elements.
 *
 * When a pixel's C channels fill whole bytes of bits (C % 8 == 0) and a
 * vector (C >= CNX_SHORT_C), the bits of each pixel are compared or applied
 * on their own, against the max or gradient as it is; otherwise those are
 * first repeated f times along a row, and whole rows go at once. (Repeating
 * them for every window cost as much as the compares: (32,56,56,64) 3x3 s1
 * float32, the record's forward 4.6 ms against 2.6 ms without a record.) */
static inline int cnx_tie_bits_by_pixel(ptrdiff_t C)
{
    return C >= CNX_SHORT_C && C % 8 == 0;
}

#define CNX_DEFINE_TIE_BIT_WINDOWS(T, S)                                                \
/* row[dj * C + c] = v[c] for the f pixels of a window row. */                          \
static inline void CNX_ISA(cnx_repeat_over_row_##S)(const T *restrict v, ptrdiff_t f,   \
                                                    ptrdiff_t C, T *restrict row)       \
{                                                                                       \
    for (ptrdiff_t dj = 0; dj < f; dj++)                                                \
        for (ptrdiff_t c = 0; c < C; c++) row[dj * C + c] = v[c];                       \
}                                                                                       \
                                                                                        \
/* out[c] = the window's max (as cnx_window_max), bits = where it is. */                \
static void CNX_ISA(cnx_window_max_tie_bits_##S)(                                       \
        const T *restrict a, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C,            \
        T *restrict out, uint8_t *restrict bits, T *restrict scratch)                   \
{                                                                                       \
    const ptrdiff_t n = f * C, row_bytes = CNX_TIE_ROW_BYTES(f, C);                     \
    if (CNX_ISA(cnx_window_max_tie_bits_in_registers_##S)(a, row_stride, f, C, out,   \
                                                          bits, row_bytes))                      \
        return;                                                                         \
    CNX_ISA(cnx_window_max_##S)(a, row_stride, f, C, out, scratch);                     \
    /* The window's rows are still in L1. */                                            \
    if (cnx_tie_bits_by_pixel(C)) {                                                     \
        for (ptrdiff_t di = 0; di < f; di++)                                            \
            for (ptrdiff_t dj = 0; dj < f; dj++)                                        \
                CNX_ISA(cnx_eq_bits_##S)(a + di * row_stride + dj * C, out, C,          \
                                         bits + di * row_bytes + dj * C / 8);           \
        return;                                                                         \
    }                                                                                   \
    T *restrict row_max = scratch + n;                                                  \
    CNX_ISA(cnx_repeat_over_row_##S)(out, f, C, row_max);                               \
    for (ptrdiff_t di = 0; di < f; di++)                                                \
        CNX_ISA(cnx_eq_bits_##S)(a + di * row_stride, row_max, n, bits + di * row_bytes); \
}                                                                                       \
                                                                                        \
/* da[window] (+)= grad where the bits are set, times 0 elsewhere. */                   \
static void CNX_ISA(cnx_window_backward_tie_bits_##S)(                                  \
        T *restrict da, ptrdiff_t row_stride, ptrdiff_t f, ptrdiff_t C,                 \
        const T *restrict grad, const uint8_t *restrict bits, T *restrict scratch,      \
        int accumulate)                                                                 \
{                                                                                       \
    const ptrdiff_t n = f * C, row_bytes = CNX_TIE_ROW_BYTES(f, C);                     \
    if (cnx_tie_bits_by_pixel(C)) {                                                     \
        for (ptrdiff_t di = 0; di < f; di++)                                            \
            for (ptrdiff_t dj = 0; dj < f; dj++)                                        \
                CNX_ISA(cnx_bits_times_##S)(bits + di * row_bytes + dj * C / 8, grad, C, \
                                            da + di * row_stride + dj * C, accumulate); \
        return;                                                                         \
    }                                                                                   \
    T *restrict row_grad = scratch;                                                     \
    CNX_ISA(cnx_repeat_over_row_##S)(grad, f, C, row_grad);                             \
    for (ptrdiff_t di = 0; di < f; di++)                                                \
        CNX_ISA(cnx_bits_times_##S)(bits + di * row_bytes, row_grad, n,                 \
                                    da + di * row_stride, accumulate);                  \
}

#define CNX_PER_ISA_KERNELS CNX_DEFINE_TIE_BIT_WINDOWS(float, f) CNX_DEFINE_TIE_BIT_WINDOWS(double, d)
#include "_per_isa.h"
#undef CNX_DEFINE_TIE_BIT_WINDOWS

#define CNX_TIE_BIT_KERNELS(X)                                                          \
    X(cnx_window_max_tie_bits_f) X(cnx_window_max_tie_bits_d)                           \
    X(cnx_window_backward_tie_bits_f) X(cnx_window_backward_tie_bits_d)
CNX_TIE_BIT_KERNELS(CNX_DISPATCHED)

/* Points every tie-bit kernel at `level` (a CNX_LEVEL_*). */
CNX_DEFINE_SELECT(cnx_tie_bits_select, CNX_TIE_BIT_KERNELS)

#endif /* CNNEXT_TIE_BITS_H */
