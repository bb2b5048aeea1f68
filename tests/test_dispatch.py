"""The per-instruction-set kernels: every level the CPU runs gives the
plain numpy reference's results, and CNNEXT_CPU_LEVEL is checked."""
import importlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cnnext
from cnnext import _dispatch

from .reference import ref_conv_forward, ref_pool_forward

LEVELS = _dispatch._build_levels()
RUNNABLE = _dispatch.runnable_levels()


@pytest.mark.parametrize("level", RUNNABLE, indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 9, 11, 3, 4, 8, 1, 2),    # planar / half vectors
                                   (2, 8, 8, 16, 3, 20, 1, 1),   # channel vectors
                                   (1, 9, 9, 5, 3, 33, 2, 0)])   # strided, odd channels
def test_every_level_matches_the_reference(level, dtype, shape):
    m, H, W, C, f, n_C, stride, pad = shape
    rng = np.random.default_rng(7)
    A = rng.standard_normal((m, H, W, C)).astype(dtype)
    Wt = rng.standard_normal((f, f, C, n_C)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, n_C)).astype(dtype)
    hp = {"stride": stride, "pad": pad}
    Z, _ = cnnext.conv_forward(A, Wt, b, hp)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(Z, ref_conv_forward(A, Wt, b, hp), rtol=tol, atol=tol)
    for mode in ("max", "average"):
        P, _ = cnnext.pool_forward(A, {"f": 2, "stride": 2}, mode)
        np.testing.assert_allclose(P, ref_pool_forward(A, {"f": 2, "stride": 2}, mode),
                                   rtol=tol, atol=tol)


def _import_with(value):
    # Run beside the cnnext these tests import, so that the subprocess
    # imports the same one (not the uncompiled source tree from the cwd).
    env = dict(os.environ, CNNEXT_CPU_LEVEL=value)
    return subprocess.run([sys.executable, "-c", "import cnnext; print(cnnext._dispatch.selected)"],
                          env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(cnnext.__file__)))


def test_the_environment_variable_forces_a_level():
    done = _import_with("baseline")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "baseline"


def test_an_unknown_level_is_refused_by_name():
    done = _import_with("avx3")
    assert done.returncode != 0
    assert "CNNEXT_CPU_LEVEL must be one of" in done.stderr and "'avx3'" in done.stderr


def test_show_config_names_the_level_and_compiler(capsys):
    info = cnnext.show_config(mode="dicts")
    assert info["kernels"]["level running"] == _dispatch.selected
    assert info["kernels"]["compiler"]
    cnnext.show_config()
    assert "level running" in capsys.readouterr().out
    with pytest.raises(ValueError, match="mode"):
        cnnext.show_config(mode="yaml")


def _cpuinfo_flags():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


@pytest.mark.skipif(_cpuinfo_flags() is None or LEVELS == ("baseline",),
                    reason="needs an x86-64 build and Linux's /proc/cpuinfo")
def test_the_cpu_check_agrees_with_the_kernel():
    """cnnext reads cpuid and XCR0 itself; Linux's flags (what the kernel
    found and enabled) are the independent reference."""
    flags = _cpuinfo_flags()
    avx2 = {"avx2", "fma", "bmi1", "bmi2", "popcnt"} <= flags
    avx512 = avx2 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    expected = "avx512" if avx512 else "avx2" if avx2 else "baseline"
    assert _dispatch.cpu_level() == expected


def _relocation_types(path):
    done = subprocess.run(["readelf", "--relocs", "--wide", path],
                          capture_output=True, text=True, check=True)
    return {line.split()[2] for line in done.stdout.splitlines()
            if len(line.split()) > 2 and line.split()[2].startswith("R_")}


@pytest.mark.skipif(sys.platform != "linux" or not shutil.which("readelf"),
                    reason="needs Linux's readelf")
@pytest.mark.parametrize("module", ["_conv", "_pool"])
def test_no_ifunc_relocation_so_musl_loads_it(module):
    """musl's loader refuses IRELATIVE relocations ("unsupported relocation
    type 37"), which target_clones/IFUNC dispatch needs."""
    path = importlib.import_module(f"cnnext.{module}").__file__
    assert not any("IRELATIVE" in kind for kind in _relocation_types(path))
