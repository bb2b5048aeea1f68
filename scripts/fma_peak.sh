#!/usr/bin/env bash
# This machine's float32 FMA peak on one core, for reading the benchmark's
# GFLOP/s: 24 independent AVX-512 fused multiply-adds per loop iteration, no
# memory traffic (AVX2 on CPUs without AVX-512).
#
#   scripts/fma_peak.sh        prints GFLOP/s (one core)
set -euo pipefail
scratch="$(mktemp -d "${TMPDIR:-/tmp}/cnnext-fma.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
cat >"$scratch/peak.c" <<'C'
#include <stdio.h>
#include <time.h>
#ifdef __AVX512F__
#define LANES 16
#else
#define LANES 8
#endif
typedef float vec __attribute__((vector_size(4 * LANES)));
int main(void) {
    vec acc[24], a, b;
    for (int i = 0; i < LANES; i++) { a[i] = 1.0001f; b[i] = 0.9999f; }
    for (int k = 0; k < 24; k++) acc[k] = a * (float)k;
    const long n = 200000000L;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
#pragma GCC unroll 24
        for (int k = 0; k < 24; k++) acc[k] = acc[k] * a + b;
        __asm__ volatile("" : "+v"(a));  /* keep the loop from being folded */
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    float sum = 0;
    for (int k = 0; k < 24; k++) sum += acc[k][0];
    printf("float32 FMA peak, one core, %d lanes: %.1f GFLOP/s (checksum %g)\n",
           LANES, n * 24.0 * LANES * 2 / s / 1e9, sum);
    return 0;
}
C
flags="-O2 -mfma -mavx2"
grep -q avx512f /proc/cpuinfo 2>/dev/null && flags="$flags -mavx512f"
gcc $flags "$scratch/peak.c" -o "$scratch/peak"
"$scratch/peak"
