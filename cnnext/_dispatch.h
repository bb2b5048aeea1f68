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

/* The highest level this build has and this CPU (and its OS) can run. */
static inline int cnx_cpu_level(void)
{
#if CNX_X86_LEVELS
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
               && __builtin_cpu_supports("popcnt");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f")
                 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd")
                 && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
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
