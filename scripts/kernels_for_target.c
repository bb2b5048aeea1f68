/* The kernels and the CPU check, for scripts/cross_compile_kernels.sh:
 * compiled for another target as its compiler (clang-cl on Windows, Apple
 * clang) would. Every level's kernels must compile. */
#include "_window_ops.h"
#include "_conv_direct.h"
#include "_depthwise.h"
int select_best(void)
{
    int level = cnx_cpu_level();
    cnx_conv_select(level);
    cnx_window_ops_select(level);
    cnx_depthwise_select(level);
    return level;
}
/* Every kernel pointer used, so that no level's code is dropped as dead. */
#define CNX_EXPORT(name) void *exported_##name(void) { return (void *)name; }
CNX_CONV_KERNELS(CNX_EXPORT)
CNX_WINDOW_KERNELS(CNX_EXPORT)
CNX_DEPTHWISE_KERNELS(CNX_EXPORT)
void *exported_planar_pad_f(void) { return (void *)cnx_planar_pad_f; }
void *exported_planar_pad_d(void) { return (void *)cnx_planar_pad_d; }
