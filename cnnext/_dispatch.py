"""Which instruction-set level the kernels run at.

Every kernel is compiled once per level (``_per_isa.h``); at import this
module points the kernel tables of ``_conv`` and ``_pool`` at the highest
level that the build has and the CPU runs, or at a lower one asked for by
the environment variable ``CNNEXT_CPU_LEVEL`` (``baseline``, ``avx2`` or
``avx512``), as numpy's ``NPY_DISABLE_CPU_FEATURES`` does: to compare levels,
or to work around a CPU or compiler bug. Results are the same at every level
up to rounding (the lanes of a sum differ).
"""
import os

from . import _conv, _pool

ENV_VAR = "CNNEXT_CPU_LEVEL"
_X86_LEVELS = ("baseline", "avx2", "avx512")


def _build_levels():
    compiler, has_x86_levels = _pool.build_info()
    return _X86_LEVELS if has_x86_levels else ("baseline",)


def cpu_level():
    """The name of the highest level this build has and this CPU runs."""
    return _build_levels()[_pool.cpu_level()]


def runnable_levels():
    """The levels of this build that this CPU runs, lowest first."""
    levels = _build_levels()
    return levels[:levels.index(cpu_level()) + 1]


def _parse_env(value, best):
    levels = _build_levels()
    if value not in levels:
        raise ValueError(f"{ENV_VAR} must be one of {', '.join(levels)} (the levels "
                         f"this build of cnnext has), got {value!r}")
    if levels.index(value) > levels.index(best):
        raise ValueError(f"{ENV_VAR}={value} asks for more than this CPU runs: "
                         f"its highest level is {best!r}")
    return value


def select(level):
    """Point every kernel at `level` (a name of ``_build_levels()``) and
    return it. Not thread-safe against running kernels: for tests and import."""
    index = _build_levels().index(_parse_env(level, cpu_level()))
    _conv.select_level(index)
    _pool.select_level(index)
    global selected
    selected = level
    return level


selected = select(os.environ.get(ENV_VAR) or cpu_level())


def config():
    """What show_config prints, as a dict."""
    compiler, _ = _pool.build_info()
    info = {
        "kernels": {
            "compiler": compiler,
            "levels built": list(_build_levels()),
            "CPU's highest level": cpu_level(),
            "level running": selected,
            "forced by": f"{ENV_VAR}={os.environ[ENV_VAR]}" if os.environ.get(ENV_VAR)
                         else None,
        },
    }
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["BLAS"] = "threadpoolctl not installed: pip install threadpoolctl to see it"
    else:
        info["BLAS"] = [
            {key: pool.get(key) for key in ("internal_api", "version", "architecture",
                                            "num_threads", "filepath")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return info
