"""Build the Cython kernels of cnnext.

Compiler directives are set here, once for every kernel. Set
CNNEXT_BOUNDSCHECK=1 in the environment to rebuild with bounds and
wrap-around checks on, for debugging a kernel.
"""
import os
import shutil
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

debug_checks = os.environ.get("CNNEXT_BOUNDSCHECK", "0") == "1"

directives = {
    "language_level": 3,
    "boundscheck": debug_checks,
    "wraparound": debug_checks,
    "initializedcheck": debug_checks,
    "cdivision": True,
    "embedsignature": True,
    # Free-threaded CPython (3.13t+) keeps the GIL off on import. Checked
    # (scripts/freethreaded.sh): the kernels share no state between calls;
    # the thread pool and thread count are set under a lock, and a pool is
    # never shut down under a call using it; the kernel tables are written
    # at import only (CNNEXT_CPU_LEVEL; _dispatch.select is for tests).
    "freethreading_compatible": True,
}

# No -march=native: a wheel must run on any x86-64. The kernels are compiled
# once per instruction-set level with per-function targets (_per_isa.h) and
# picked at import (_dispatch.py).
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]


def _accepts(compiler, flag):
    """Whether a GCC-style compiler compiles an empty file with `flag`."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "empty.c")
        with open(source, "w") as fh:
            fh.write("int main(void) { return 0; }\n")
        try:
            compiler.compile([source], output_dir=tmp, extra_postargs=[flag])
        except CompileError:
            return False
    return True


class BuildKernels(build_ext):
    """Optimisation flags for the compiler at hand.

    The kernels are written in GCC's vector extensions, which GCC and clang
    take and MSVC's cl does not: on Windows they are built with clang-cl
    (LLVM's cl-compatible driver, on GitHub's Windows runners and in Visual
    Studio's "C++ Clang tools"), which links with MSVC's runtime like cl."""

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            self._use_clang_cl()
            flags = ["/clang:-O3"]
        else:
            flags = ["-O3"] if _accepts(self.compiler, "-O3") else []
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
        super().build_extensions()

    def _use_clang_cl(self):
        clang_cl = os.environ.get("CNNEXT_CLANG_CL") or shutil.which("clang-cl")
        if clang_cl is None:
            raise CompileError(
                "cnnext's kernels need clang-cl on Windows (MSVC's cl does not take "
                "GCC vector extensions): install LLVM (or Visual Studio's C++ Clang "
                "tools) so that clang-cl is on PATH, or set CNNEXT_CLANG_CL to it")
        if not self.compiler.initialized:
            self.compiler.initialize()
        self.compiler.cc = clang_cl


extensions = [
    Extension(
        f"cnnext.{name}",
        [f"cnnext/{name}.pyx"],
        depends=[f"cnnext/{h}.h" for h in ("_window_ops", "_tie_bits", "_conv_direct", "_depthwise", "_dispatch", "_per_isa", "_vectors")],
        include_dirs=[np.get_include(), "cnnext"],
        define_macros=macros,
    )
    for name in ("_conv", "_pool")
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives),
      cmdclass={"build_ext": BuildKernels})
