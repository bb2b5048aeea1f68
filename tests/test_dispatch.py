"""The per-instruction-set kernels: every level the CPU runs gives the
plain numpy reference's results, and CNNEXT_CPU_LEVEL is checked."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnext
from cnnext import _dispatch

from .reference import ref_conv_forward, ref_pool_forward

LEVELS = _dispatch._build_levels()
RUNNABLE = LEVELS[:LEVELS.index(_dispatch.cpu_level()) + 1]


@pytest.fixture
def level(request):
    before = _dispatch.selected
    yield _dispatch.select(request.param)
    _dispatch.select(before)


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
