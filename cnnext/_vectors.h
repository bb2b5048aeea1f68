/* The vectors the kernels are written in (GCC vector extensions, which GCC
 * and clang take), and the tile sizes each instruction-set level affords.
 * Shared by _conv_direct.h and _depthwise.h. */
#ifndef CNNEXT_VECTORS_H
#define CNNEXT_VECTORS_H

#include "_dispatch.h"

/* GCC vectors of 64, 32 and 16 bytes: one register of AVX-512, AVX2 and
 * SSE2 / NEON. aligned(sizeof(T)) lets them load from any element address. */
typedef float cnx_vec_f_64 __attribute__((vector_size(64), aligned(4)));
typedef float cnx_vec_f_32 __attribute__((vector_size(32), aligned(4)));
typedef float cnx_vec_f_16 __attribute__((vector_size(16), aligned(4)));
typedef double cnx_vec_d_64 __attribute__((vector_size(64), aligned(8)));
typedef double cnx_vec_d_32 __attribute__((vector_size(32), aligned(8)));
typedef double cnx_vec_d_16 __attribute__((vector_size(16), aligned(8)));

/* The callers pad channel axes to the widest level's vector (16 floats, 8
 * doubles), or to half of it for layers with few output channels, where a
 * full vector would be mostly padding: every level's vectors divide these,
 * so one layout serves all levels. (Results differ between levels in the
 * last bits: the baseline has no fused multiply-add.) */
enum { CNX_VL_f = 16, CNX_VL_d = 8, CNX_HALF_VL_f = 8, CNX_HALF_VL_d = 4 };

/* One level's vectors (CNX_VEC(f): its full vector of floats; CNX_HALF(f)
 * the one for the half-padded layouts) and tile sizes: CNX_TILE(wide,
 * narrow) is `wide` on levels with 32 vector registers (AVX-512, NEON) and
 * `narrow` on those with 16 (AVX2, SSE2), whose tiles hold half the sums so
 * that they do not spill. _per_isa.h sets the CNX_ISA_* numbers. */
#define CNX_VEC(S) CNX_PASTE(cnx_vec_##S, CNX_ISA_VECTOR_BYTES)
#define CNX_HALF(S) CNX_PASTE(cnx_vec_##S, CNX_ISA_HALF_BYTES)
#define CNX_LANES(T, BYTES) ((BYTES) / (int)sizeof(T))
#define CNX_TILE(wide, narrow) (CNX_ISA_VECTOR_REGS >= 32 ? (wide) : (narrow))

#define CNX_FULL_LANES(T) CNX_LANES(T, CNX_ISA_VECTOR_BYTES)
#define CNX_HALF_LANES(T) CNX_LANES(T, CNX_ISA_HALF_BYTES)

#endif /* CNNEXT_VECTORS_H */
