/* Instruction-set levels of the kernels, and the CPU check that picks one.
 *
 * Each kernel header is compiled once per level (see _per_isa.h), and a
 * table of function pointers is pointed at one level when the module is
 * imported (cnnext/_dispatch.py decides which). No IFUNC or target_clones:
 * plain function pointers load on glibc, musl, macOS and Windows alike, and
 * any GCC or clang compiles the per-level code.
 */
#ifndef CNNEXT_DISPATCH_H
#define CNNEXT_DISPATCH_H

/* x86-64 levels need a compiler that takes per-function targets. Other
 * machines (aarch64: NEON is part of the baseline) have the baseline only. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CNX_X86_LEVELS 1
#else
#define CNX_X86_LEVELS 0
#endif

enum { CNX_LEVEL_BASELINE = 0, CNX_LEVEL_AVX2 = 1, CNX_LEVEL_AVX512 = 2 };

#if CNX_X86_LEVELS
#include <cpuid.h>

/* Which register state the OS saves on a context switch (XCR0). Read with
 * inline asm: the _xgetbv intrinsic needs -mxsave on GCC. */
static inline unsigned long long cnx_os_saved_state(void)
{
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

/* The highest level this build has and this CPU (and its OS) can run.
 *
 * From cpuid, as numpy's npy_cpu_features.c does, rather than
 * __builtin_cpu_supports: that one needs compiler-rt's __cpu_model, which
 * clang-cl (Windows) does not link. An instruction set counts only if the OS
 * also saves its registers (XCR0): the ymm halves for AVX2, the opmask and
 * zmm state for AVX-512. macOS enables AVX-512 state on first use, so XCR0
 * does not show it there and those Macs run the AVX2 level. */
static inline int cnx_cpu_level(void)
{
#if CNX_X86_LEVELS
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return CNX_LEVEL_BASELINE;
    int fma = (ecx >> 12) & 1, popcnt = (ecx >> 23) & 1;
    int osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1;
    if (!(osxsave && avx && fma && popcnt) || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return CNX_LEVEL_BASELINE;
    unsigned long long saved = cnx_os_saved_state();
    const unsigned long long ymm_state = 0x6, zmm_state = 0xe6; /* XCR0 bits 1-2, 5-7 */
    int avx2 = (saved & ymm_state) == ymm_state && ((ebx >> 5) & 1) /* avx2 */
               && ((ebx >> 3) & 1) && ((ebx >> 8) & 1);          /* bmi1, bmi2 */
    const unsigned int avx512_bits = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30)
                                     | (1u << 31);                /* f, dq, cd, bw, vl */
    int avx512 = avx2 && (saved & zmm_state) == zmm_state && (ebx & avx512_bits) == avx512_bits;
    return avx512 ? CNX_LEVEL_AVX512 : avx2 ? CNX_LEVEL_AVX2 : CNX_LEVEL_BASELINE;
#else
    return CNX_LEVEL_BASELINE;
#endif
}

/* The compiler that built the kernels, for cnnext.show_config(). */
static inline const char *cnx_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "GCC " __VERSION__;
#elif defined(_MSC_VER)
    return "MSVC";
#else
    return "unknown";
#endif
}

/* A kernel's name at one level: CNX_ISA(cnx_window_max_f) is
 * cnx_window_max_f_avx2 while _per_isa.h compiles the AVX2 level. */
#define CNX_PASTE_(a, b) a##_##b
#define CNX_PASTE(a, b) CNX_PASTE_(a, b)
#define CNX_ISA(name) CNX_PASTE(name, CNX_ISA_SUFFIX)

/* `name`, the pointer the callers use, starts at the baseline level. */
#define CNX_DISPATCHED(name) static __typeof__(name##_baseline) *name = name##_baseline;
#if CNX_X86_LEVELS
#define CNX_SELECT(name, level)                                                        \
    name = (level) >= CNX_LEVEL_AVX512 ? name##_avx512                                 \
           : (level) >= CNX_LEVEL_AVX2 ? name##_avx2 : name##_baseline;
#else
#define CNX_SELECT(name, level) name = name##_baseline;
#endif

/* static void select_name(int level): points every kernel of the X-macro
 * list KERNELS at `level`. */
#define CNX_SELECT_AT_LEVEL(name) CNX_SELECT(name, level)
#define CNX_DEFINE_SELECT(select_name, KERNELS)                                        \
    static void select_name(int level) { KERNELS(CNX_SELECT_AT_LEVEL) }

#endif /* CNNEXT_DISPATCH_H */
