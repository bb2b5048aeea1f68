/* Expands CNX_PER_ISA_KERNELS once per instruction-set level, each copy
 * compiled for its level and named by CNX_ISA (see _dispatch.h). Included,
 * without a guard, by each kernel header after it defines the macro.
 *
 * The levels are x86-64's: baseline (SSE2), AVX2 + FMA (x86-64-v3's vector
 * part) and AVX-512 (x86-64-v4's F, BW, CD, DQ, VL). The features named
 * here are the ones cnx_cpu_level checks. Each level also says the size of
 * its vectors and how many vector registers it has (CNX_ISA_VECTOR_BYTES,
 * CNX_ISA_HALF_BYTES: the vector of the half-padded layouts, and
 * CNX_ISA_VECTOR_REGS), from which the kernels size their tiles. */
#include "_dispatch.h"

#define CNX_ISA_SUFFIX baseline
#define CNX_ISA_VECTOR_BYTES 16
#define CNX_ISA_HALF_BYTES 16
#if defined(__aarch64__)
#define CNX_ISA_VECTOR_REGS 32
#else
#define CNX_ISA_VECTOR_REGS 16
#endif
CNX_PER_ISA_KERNELS
#undef CNX_ISA_SUFFIX
#undef CNX_ISA_VECTOR_BYTES
#undef CNX_ISA_HALF_BYTES
#undef CNX_ISA_VECTOR_REGS

#if CNX_X86_LEVELS

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt")
#endif
#define CNX_ISA_SUFFIX avx2
#define CNX_ISA_VECTOR_BYTES 32
#define CNX_ISA_HALF_BYTES 32
#define CNX_ISA_VECTOR_REGS 16
CNX_PER_ISA_KERNELS
#undef CNX_ISA_SUFFIX
#undef CNX_ISA_VECTOR_BYTES
#undef CNX_ISA_HALF_BYTES
#undef CNX_ISA_VECTOR_REGS
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2,popcnt,avx512f,avx512bw,avx512cd,avx512dq,avx512vl"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,avx512f,avx512bw,avx512cd,avx512dq,avx512vl")
#endif
#define CNX_ISA_SUFFIX avx512
#define CNX_ISA_VECTOR_BYTES 64
#define CNX_ISA_HALF_BYTES 32
#define CNX_ISA_VECTOR_REGS 32
CNX_PER_ISA_KERNELS
#undef CNX_ISA_SUFFIX
#undef CNX_ISA_VECTOR_BYTES
#undef CNX_ISA_HALF_BYTES
#undef CNX_ISA_VECTOR_REGS
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif /* CNX_X86_LEVELS */

#undef CNX_PER_ISA_KERNELS
