"""Build the Cython kernels of cnnext.

Compiler directives are set here, once for every kernel. Set
CNNEXT_BOUNDSCHECK=1 in the environment to rebuild with bounds and
wrap-around checks on, for debugging a kernel.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

debug_checks = os.environ.get("CNNEXT_BOUNDSCHECK", "0") == "1"

directives = {
    "language_level": 3,
    "boundscheck": debug_checks,
    "wraparound": debug_checks,
    "initializedcheck": debug_checks,
    "cdivision": True,
    "embedsignature": True,
}

# No -march=native: a wheel must run on any x86-64. Wide SIMD comes from
# BLAS, which picks its kernel for the CPU at run time.
compile_args = ["-O3"]
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]

extensions = [
    Extension(
        f"cnnext.{name}",
        [f"cnnext/{name}.pyx"],
        depends=[f"cnnext/{h}.h" for h in ("_window_ops", "_conv_direct", "_dispatch", "_per_isa")],
        include_dirs=[np.get_include(), "cnnext"],
        define_macros=macros,
        extra_compile_args=compile_args,
    )
    for name in ("_conv", "_pool")
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
