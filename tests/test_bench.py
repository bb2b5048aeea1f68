"""The benchmark command (cnnext.bench): its contenders compute what cnnext
computes, and a tiny run produces the table and JSON it promises.

Nothing here asserts on a timing: the machine is shared and a benchmark is a
command, not a test.
"""
import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnext
from cnnext import bench
from cnnext.bench import cases, environment, report
from cnnext.bench import numpy_vectorised as vec
from cnnext.bench import seed_loops as seed

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}

# (m, H, W, C, f, n_C, stride, pad): the seed's, no padding, odd sizes and a
# stride that leaves input rows unused.
CONV_SHAPES = [(10, 4, 4, 3, 2, 8, 2, 2), (2, 5, 7, 3, 3, 4, 1, 0), (3, 9, 6, 2, 3, 5, 2, 1)]
# (m, H, W, C, f, stride): the seed's, overlapping windows, a stride that leaves
# input rows unused.
POOL_SHAPES = [(5, 5, 3, 2, 2, 1), (2, 7, 6, 3, 3, 1), (3, 9, 8, 2, 2, 3)]


def _conv_inputs(shape, dtype, seed=0):
    m, H, W, C, f, n_C, stride, pad = shape
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, H, W, C)).astype(dtype)
    Wt = rng.standard_normal((f, f, C, n_C)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, n_C)).astype(dtype)
    return A, Wt, b, {"stride": stride, "pad": pad}


def _pool_inputs(shape, dtype, seed=0):
    m, H, W, C, f, stride = shape
    A = np.random.default_rng(seed).standard_normal((m, H, W, C)).astype(dtype)
    return A, {"f": f, "stride": stride}


# --- the seed transcription against the seed document's printed numbers ---

def test_seed_loops_reproduce_the_seed_conv_results():
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, cache = seed.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2})
    assert np.mean(Z) == pytest.approx(0.0489952035289, abs=1e-11)
    np.testing.assert_allclose(
        Z[3, 2, 1], [-0.61490741, -6.7439236, -2.55153897, 1.75698377,
                     3.56208902, 0.53036437, 5.18531798, 8.75898442], atol=1e-8)
    dA, dW, db = seed.conv_backward(Z, cache)
    assert np.mean(dA) == pytest.approx(1.45243777754, abs=1e-10)
    assert np.mean(dW) == pytest.approx(1.72699145831, abs=1e-10)
    assert np.mean(db) == pytest.approx(7.83923256462, abs=1e-10)


def test_seed_loops_reproduce_the_seed_pool_results():
    np.random.seed(1)
    A_prev = np.random.randn(2, 4, 4, 3)
    A, _ = seed.pool_forward(A_prev, {"stride": 1, "f": 4})
    np.testing.assert_allclose(A.ravel(), [1.74481176, 1.6924546, 2.10025514,
                                           1.19891788, 1.51981682, 2.18557541], atol=1e-8)
    A, _ = seed.pool_forward(A_prev, {"stride": 1, "f": 4}, mode="average")
    np.testing.assert_allclose(A.ravel(), [-0.09498456, 0.11180064, -0.14263511,
                                           -0.09525108, 0.28325018, 0.33035185], atol=1e-8)

    np.random.seed(1)
    A_prev = np.random.randn(5, 5, 3, 2)
    hp = {"stride": 1, "f": 2}
    _, cache = seed.pool_forward(A_prev, hp)
    dA = np.random.randn(5, 4, 2, 2)
    np.testing.assert_allclose(seed.pool_backward(dA, cache, mode="max")[1, 1],
                               [[0, 0], [5.05844394, -1.68282702], [0, 0]], atol=1e-8)
    np.testing.assert_allclose(seed.pool_backward(dA, cache, mode="average")[1, 1],
                               [[0.08485462, 0.2787552], [1.26461098, -0.25749373],
                                [1.17975636, -0.53624893]], atol=1e-8)


# --- every contender against cnnext ---

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv_contenders_agree_with_cnnext(shape, dtype):
    A, W, b, hp = _conv_inputs(shape, dtype)
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    dZ = np.random.default_rng(1).standard_normal(Z.shape).astype(dtype)
    expected = cnnext.conv_backward(dZ, cache)
    for fwd, bwd in [(vec.conv_forward, vec.conv_backward),
                     (seed.conv_forward, seed.conv_backward)]:
        Zc, cache_c = fwd(A, W, b, hp)
        assert Zc.shape == Z.shape and Zc.dtype == dtype
        np.testing.assert_allclose(Zc, Z, **TOL[dtype])
        got = bwd(dZ, cache_c)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == dtype
            np.testing.assert_allclose(g, e, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_pool_contenders_agree_with_cnnext(shape, mode, dtype):
    A, hp = _pool_inputs(shape, dtype)
    out, cache = cnnext.pool_forward(A, hp, mode)
    dA = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    expected = cnnext.pool_backward(dA, cache, mode)
    for fwd, bwd in [(vec.pool_forward, vec.pool_backward),
                     (seed.pool_forward, seed.pool_backward)]:
        got, cache_c = fwd(A, hp, mode)
        assert got.shape == out.shape and got.dtype == dtype
        np.testing.assert_allclose(got, out, **TOL[dtype])
        got = bwd(dA, cache_c, mode)
        assert got.shape == A.shape and got.dtype == dtype
        np.testing.assert_allclose(got, expected, **TOL[dtype])


def test_numpy_max_pool_backward_gives_ties_the_full_gradient():
    # The seed's mask x == max(x): every tied entry gets the gradient.
    A = np.array([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    cache = (A, {"f": 2, "stride": 1})
    got = vec.pool_backward(np.full((1, 1, 1, 1), 2.0), cache, "max")
    np.testing.assert_array_equal(got[0, :, :, 0], [[0.0, 2.0], [2.0, 0.0]])
    np.testing.assert_array_equal(cnnext.pool_backward(np.full((1, 1, 1, 1), 2.0), cache),
                                  got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_contenders_agree_with_cnnext(dtype):
    pytest.importorskip("torch")
    from cnnext.bench import torch_cpu
    for shape in CONV_SHAPES:
        A, W, b, hp = _conv_inputs(shape, dtype)
        Z, cache = cnnext.conv_forward(A, W, b, hp)
        Zt, _ = torch_cpu.conv_forward(A, W, b, hp)
        assert Zt.flags.c_contiguous and Zt.dtype == dtype
        np.testing.assert_allclose(Zt, Z, **TOL[dtype])
        dZ = np.random.default_rng(1).standard_normal(Z.shape).astype(dtype)
        for g, e in zip(torch_cpu.conv_backward(dZ, cache),
                        cnnext.conv_backward(dZ, cache)):
            assert g.shape == e.shape and g.flags.c_contiguous
            np.testing.assert_allclose(g, e, **TOL[dtype])
    for shape in POOL_SHAPES:
        A, hp = _pool_inputs(shape, dtype)
        for mode in ("max", "average"):
            out, cache = cnnext.pool_forward(A, hp, mode)
            np.testing.assert_allclose(torch_cpu.pool_forward(A, hp, mode)[0],
                                       out, **TOL[dtype])
            dA = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
            idx = torch_cpu.max_indices(A, hp) if mode == "max" else None
            expected = cnnext.pool_backward(dA, cache, mode)
            np.testing.assert_allclose(torch_cpu.pool_backward(dA, cache, mode, idx),
                                       expected, **TOL[dtype])
            # Without indices, the call finds them itself.
            np.testing.assert_allclose(torch_cpu.pool_backward(dA, cache, mode),
                                       expected, **TOL[dtype])


def _contender_calls(module, op, args):
    """The result of ``module``'s timed call of ``op`` on cnnext's ``args``,
    as cnnext's arrays: the path a benchmark row takes."""
    from cnnext.bench.contenders import call_of
    got = call_of(module, op, args)()
    return module.to_cnnext(op, got) if hasattr(module, "to_cnnext") else got


def test_onnx_runtime_contender_agrees_with_the_reference(ref, assert_close):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from cnnext.bench import onnx_runtime as ox
    assert ox.supports("conv_fwd", "float32") and not ox.supports("conv_fwd", "float64")
    assert not ox.supports("conv_bwd", "float32")
    for shape in CONV_SHAPES:
        A, W, b, hp = _conv_inputs(shape, np.float32)
        got = _contender_calls(ox, "conv_fwd", (A, W, b, hp))
        expected = ref.conv_forward(A, W, b, hp)
        assert got.shape == expected.shape and got.dtype == np.float32
        assert_close(got, expected, np.float32)
    for shape in POOL_SHAPES:
        A, hp = _pool_inputs(shape, np.float32)
        for mode, op in (("max", "max_fwd"), ("average", "avg_fwd")):
            got = _contender_calls(ox, op, (A, hp, mode))
            assert_close(got, ref.pool_forward(A, hp, mode), np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jax_contender_agrees_with_the_reference(dtype, ref, assert_close):
    pytest.importorskip("jax")
    from cnnext.bench import jax_xla
    for shape in CONV_SHAPES:
        A, W, b, hp = _conv_inputs(shape, dtype)
        Z = _contender_calls(jax_xla, "conv_fwd", (A, W, b, hp))
        expected, cache = ref.conv_forward(A, W, b, hp), (A, W, b, hp)
        assert Z.shape == expected.shape and Z.dtype == dtype  # float64 runs in float64
        assert_close(Z, expected, dtype)
        dZ = np.random.default_rng(1).standard_normal(Z.shape).astype(dtype)
        got = _contender_calls(jax_xla, "conv_bwd", (dZ, (A, W, b, hp)))
        for g, e in zip(got, ref.conv_backward(dZ, cache)):
            assert g.shape == e.shape and g.dtype == dtype
            assert_close(g, e, dtype)
    for shape in POOL_SHAPES:
        A, hp = _pool_inputs(shape, dtype)
        for mode, kind in (("max", "max"), ("average", "avg")):
            out, cache = ref.pool_forward(A, hp, mode), (A, hp)
            got = _contender_calls(jax_xla, f"{kind}_fwd", (A, hp, mode))
            assert got.dtype == dtype
            assert_close(got, out, dtype)
            dA = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
            got = _contender_calls(jax_xla, f"{kind}_bwd", (dA, (A, hp), mode))
            assert got.shape == A.shape
            assert_close(got, ref.pool_backward(dA, cache, mode), dtype)


def test_rows_leave_out_what_a_contender_does_not_run():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from cnnext.bench import onnx_runtime
    here = {"cnnext": cnnext, "onnx": onnx_runtime}
    assert set(cases.Row("conv", "seed", "conv_fwd", "float32", here).fns) == {"cnnext", "onnx"}
    assert set(cases.Row("conv", "seed", "conv_fwd", "float64", here).fns) == {"cnnext"}
    assert set(cases.Row("conv", "seed", "conv_bwd", "float32", here).fns) == {"cnnext"}


def test_warm_up_waits_for_slow_first_calls_to_pass():
    # A call whose first calls take 50, 20 and 5 ms, then 0.2 ms: calibrated
    # from a first call, a sample would hold 1 call where it should hold ~100.
    from cnnext.bench import timing
    import time as _time
    calls = []

    def fn():
        calls.append(1)
        _time.sleep((0.05, 0.02, 0.005)[len(calls) - 1] if len(calls) <= 3 else 0.0002)

    cfg = type("Cfg", (), {"warmup_calls": 3, "warmup_max": 20, "warmup_time": 5.0})()
    t = timing.settled_call_time(fn, cfg)
    assert len(calls) > 3
    assert t < 0.005, t


# --- the rows ---

def test_rows_have_the_output_shapes_of_the_seed_formulas():
    # The assignment's formulas, written out here: floor((n - f + 2p)/s) + 1.
    here = {"cnnext": cnnext}
    for name, (m, H, W, C, f, n_C, s, p) in cases.CONV_CASES.items():
        row = cases.Row("conv", name, "conv_fwd", "float32", here)
        assert row.out_shape == (m, (H - f + 2 * p) // s + 1, (W - f + 2 * p) // s + 1, n_C)
    for name, (m, H, W, C, f, s) in cases.POOL_CASES.items():
        row = cases.Row("pool", name, "avg_bwd", "float32", here)
        assert row.out_shape == (m, (H - f) // s + 1, (W - f) // s + 1, C)
        assert row.args[0].shape == row.out_shape  # the gradient of the output


# --- the seed loops' subsample ---

def test_seed_subsample_computes_the_first_rows_only():
    A, W, b, hp = _conv_inputs((3, 6, 5, 2, 3, 4, 1, 1), np.float64)
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    rows = seed.subsample_rows(Z.shape[0], Z.shape[1], 8)      # example 0 and 2 rows of example 1
    assert rows == [(0, h) for h in range(6)] + [(1, 0), (1, 1)]
    Zs, _ = seed.conv_forward(A, W, b, hp, limit=8)
    sel = tuple(np.array(rows).T)
    np.testing.assert_allclose(Zs[sel], Z[sel], rtol=1e-12, atol=1e-12)
    assert not Zs[1, 2:].any() and not Zs[2].any()
    # The subsampled backward is the backward of dZ zeroed outside those rows.
    dZ = np.random.default_rng(3).standard_normal(Z.shape)
    for g, e in zip(seed.conv_backward(dZ, cache, limit=8),
                    cnnext.conv_backward(cases.mask_rows(dZ, rows), cache)):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


# --- the command ---

ROW_KEYS = {"kind", "case", "op", "dtype", "median_s", "min_s", "samples_s",
            "max_rel_err_vs_cnnext", "seed_s_per_out_element", "seed_s_extrapolated",
            "ratio_seed_over_cnnext", "scratch_mib", "leak"}


def test_bench_command_tiny_run(tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = bench.main(["--quick", "--repeats", "1", "--cases", "seed", "--matmul-n", "64",
                         "--json", str(out)])
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["rows"] == json.loads(json.dumps(result["rows"]))
    rows = data["rows"]
    # conv seed: 2 ops x 2 dtypes; pool seed: 4 ops x 2 dtypes.
    assert [(r["kind"], r["op"], r["dtype"]) for r in rows] == (
        [("conv", op, dt) for op in ("conv_fwd", "conv_bwd") for dt in cases.DTYPES]
        + [("pool", op, dt) for op in ("max_fwd", "max_bwd", "avg_fwd", "avg_bwd")
           for dt in cases.DTYPES])
    have_torch = data["environment"]["torch"] is not None
    for r in rows:
        assert ROW_KEYS <= set(r)
        versions = data["environment"]["contender_versions"]
        contenders = ({"cnnext", "numpy", "seed"} | ({"torch"} if have_torch else set())
                      | ({"jax"} if "jax" in versions else set())
                      | ({"onnx"} if "onnxruntime" in versions and r["dtype"] == "float32"
                         and r["op"].endswith("fwd") else set()))
        assert set(r["median_s"]) == contenders
        assert all(len(v) == 1 and v[0] > 0 for v in r["samples_s"].values())
        # The seed loops run in full unless a row's run outlasts --quick's
        # time budget (as on a loaded machine): then they run on a subsample
        # and are extrapolated per output element.
        sub = r["seed_subsample"]
        assert 1 <= sub["rows"] <= sub["of_rows"]
        assert r["seed_s_extrapolated"] == pytest.approx(
            r["median_s"]["seed"] * sub["of_out_elements"] / sub["out_elements"])
        if sub["rows"] == sub["of_rows"]:
            assert r["seed_s_extrapolated"] == pytest.approx(r["median_s"]["seed"])
        for name, err in r["max_rel_err_vs_cnnext"].items():
            assert err <= report.TOLERANCE[r["dtype"]], (r["case"], r["op"], name, err)
        assert r["leak"]["calls"] >= 3 and r["scratch_mib"] >= 0
        assert ("gflops" in r) == (r["kind"] == "conv")
        assert ("ratio_torch_over_cnnext" in r) == have_torch
    assert set(data["matmul_gflops"]) == {"float32", "float64"}
    assert data["environment"]["threads"] >= 1
    # The printed table: a header line with every column, then one line per row.
    lines = printed.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("case "))
    for col in report.COLUMNS:
        assert col in lines[head]
    body = lines[head + 2:head + 2 + len(rows)]
    assert [line.split()[0] for line in body] == ["seed"] * len(rows)
    assert "results agree with cnnext: yes" in printed
    assert "threadpool:" in printed and "matmul 64x64" in printed


def test_bench_command_markdown_without_torch(capsys):
    result = bench.main(["--quick", "--repeats", "1", "--cases", "conv:seed", "--ops", "fwd",
                         "--dtype", "float32", "--matmul-n", "0", "--no-torch", "--markdown"])
    printed = capsys.readouterr().out
    assert len(result["rows"]) == 1 and "torch" not in result["rows"][0]["median_s"]
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(report.COLUMNS) + " |"
    assert len(table) == 3
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:3] == ["seed", "conv fwd", "float32"]
    assert cells[report.COLUMNS.index("torch ms")] == "-"


# A run of one row, a fraction of a second.
TINY = ["--quick", "--repeats", "1", "--cases", "conv:seed", "--ops", "fwd",
        "--dtype", "float32", "--no-torch"]


@pytest.mark.parametrize("argv, message", [
    (["--cases", "alexnet"], "unknown case 'alexnet'"),
    (["--cases", "conv:overlap"], "unknown case 'conv:overlap'"),
    (["--ops", "conv_sideways"], "unknown op 'conv_sideways'"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    # Each of these once ran (or crashed after the matmul) instead.
    (TINY + ["--matmul-n", "-1"], "--matmul-n must be >= 0"),
    (TINY + ["--ops", ""], "--ops names no op"),
    (TINY + ["--cases", ","], "--cases names no case"),
    (TINY + ["--matmul-n", "0", "--ops", "pool"],
     "--cases conv:seed and --ops pool select no row"),
    (["--render", "run.json", "--json", "out.json"],
     "--render runs nothing, so --json would have nothing to write"),
])
def test_bench_command_refuses_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert f"cnnext-bench: error: {message}" in captured.err and captured.out == ""


def _error_line(capsys):
    """The one line a failed command printed on stderr (nothing on stdout)."""
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnext-bench: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("where, message", [
    ("missing directory", "directory {parent} does not exist"),
    ("a directory", "is a directory; give a file name"),
])
def test_bench_command_checks_the_json_path_before_timing(where, message, tmp_path, capsys):
    path = tmp_path / "no" / "run.json" if where == "missing directory" else tmp_path
    assert bench.console_main(TINY + ["--matmul-n", "0", "--json", str(path)]) == 1
    # Nothing ran: a run prints its header first.
    line = _error_line(capsys)
    assert line == f"cnnext-bench: error: --json {path}: " + message.format(parent=path.parent)


def test_bench_json_check_leaves_no_file_behind_and_an_existing_one_as_it_was(tmp_path):
    new, kept = tmp_path / "new.json", tmp_path / "kept.json"
    kept.write_text("old")
    bench.cli._check_writable(str(new))
    bench.cli._check_writable(str(kept))
    assert not new.exists() and kept.read_text() == "old"


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory):
    """A --json run of two rows, and what it printed."""
    path = tmp_path_factory.mktemp("kept") / "run.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        bench.main(["--quick", "--repeats", "1", "--cases", "pool:seed", "--ops", "max",
                    "--dtype", "float64", "--matmul-n", "32", "--json", str(path)])
    return path, printed.getvalue()


def test_bench_render_reprints_a_json_run(kept_run, capsys):
    path, first = kept_run
    assert bench.console_main(["--render", str(path)]) == 0
    again = capsys.readouterr().out
    table = [line for line in first.splitlines() if line.startswith(("case ", "seed "))]
    assert len(table) == 3 and table == [line for line in again.splitlines()
                                         if line.startswith(("case ", "seed "))]
    assert "matmul 32x32 @ 32x32 float64" in again
    # The whole report after the header is the same text.
    assert first[first.index("\ncase "):].replace(f"wrote {path}\n", "") == \
        again[again.index("\ncase "):]


def test_bench_report_without_load_average(kept_run, tmp_path, capsys):
    data = json.loads(kept_run[0].read_text())
    data["environment"]["loadavg_start"] = data["environment"]["loadavg_end"] = None
    path = tmp_path / "noload.json"
    path.write_text(json.dumps(data))
    assert bench.console_main(["--render", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "load average at start n/a" in printed and "load average at end n/a" in printed


def test_bench_load_average_is_none_where_the_os_has_none(monkeypatch):
    assert len(environment.loadavg()) == 3
    monkeypatch.delattr(os, "getloadavg")
    assert environment.loadavg() is None


NOT_A_RUN = "not the results of a cnnext-bench --json run"


@pytest.mark.parametrize("content, message", [
    ("cnnext 0.1.0 benchmark\n", "not a JSON file (Expecting value at line 1, column 1)"),
    (b"\xff\xfe{", "not a JSON file (not UTF-8 text)"),
    ("[1, 2]", f"{NOT_A_RUN} (a JSON list, not an object)"),
    ('{"rows": []}', f"{NOT_A_RUN} (no 'environment', 'config', 'matmul_gflops', 'summary')"),
    (None, f"{NOT_A_RUN} (no 'median_s' where a run has one)"),  # a kept run, cut
], ids=["text", "binary", "list", "object", "row without a key"])
def test_bench_render_refuses_a_file_that_is_not_a_run(content, message, kept_run, tmp_path,
                                                       capsys):
    if content is None:
        data = json.loads(kept_run[0].read_text())
        del data["rows"][1]["median_s"]
        content = json.dumps(data)
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert bench.console_main(["--render", str(path)]) == 1
    assert _error_line(capsys) == f"cnnext-bench: error: --render {path}: {message}"


def test_bench_render_refuses_a_missing_file_and_a_directory(tmp_path, capsys):
    assert bench.console_main(["--render", str(tmp_path / "nosuch.json")]) == 1
    assert _error_line(capsys) == (f"cnnext-bench: error: --render {tmp_path / 'nosuch.json'}:"
                                   " no such file")
    assert bench.console_main(["--render", str(tmp_path)]) == 1
    assert _error_line(capsys) == (f"cnnext-bench: error: --render {tmp_path}: is a "
                                   "directory, not the --json file of a run")


def _run_module(args, cwd, **env):
    """``python -m cnnext.bench ARGS`` without the OpenBLAS variables but ``env``."""
    env = {**{k: v for k, v in os.environ.items() if k not in environment.OPENBLAS_VARS},
           **env}
    return subprocess.run([sys.executable, "-m", "cnnext.bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_python_m_cnnext_bench_error_is_one_line(tmp_path):
    done = _run_module(["--render", "nosuch.json"], tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "cnnext-bench: error: --render nosuch.json: no such file\n"


def test_python_m_cnnext_bench_reruns_without_the_openblas_variables(tmp_path):
    # The command runs itself again without them; the header says so.
    done = _run_module(TINY + ["--matmul-n", "0", "--json", "run.json"], tmp_path,
                       OPENBLAS_L2_SIZE="1048576")
    assert done.returncode == 0, done.stderr
    assert "OpenBLAS: ran without OPENBLAS_L2_SIZE=1048576 (they slow" in done.stdout
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["environment"]["openblas_env_unset_by_bench"] == "OPENBLAS_L2_SIZE=1048576"
    assert run["environment"]["openblas_env"] == {}
    assert len(run["rows"]) == 1


# --- the whole geometry's rows (issue 12) ---

# Each geometry case at a tiny size: the same hparameters and filter, fewer
# examples, pixels and channels (depthwise: groups == channels still); the
# 'same' ones keep uneven padding, SIGNS' pool gets some (18 = 2*8 + 2).
TINY_GEOMETRY = {
    ("conv", "depthwise_s1"): ((2, 9, 10, 128), (3, 3, 1, 128)),
    ("conv", "depthwise_s2"): ((2, 12, 11, 64), (3, 3, 1, 64)),
    ("conv", "dilated"): ((1, 9, 8, 6), (3, 3, 6, 5)),
    ("conv", "inception_1x7"): ((2, 5, 9, 4), (1, 7, 4, 6)),
    ("conv", "inception_7x1"): ((2, 9, 5, 4), (7, 1, 4, 6)),
    ("conv", "signs_same"): ((2, 10, 9, 3), (4, 4, 3, 8)),
    ("pool", "signs_same"): ((2, 18, 17, 3),),
    ("pool", "resnet_stem_pad"): ((2, 12, 11, 4),),
    ("pool", "resnet_stem_same"): ((2, 12, 11, 4),),
}


def _tiny_spec(kind, name):
    """The case's spec with TINY_GEOMETRY's shapes and its own hparameters."""
    return (*TINY_GEOMETRY[kind, name], cases.ALL_CASES[kind][name][-1])


def test_every_geometry_case_has_a_tiny_variant():
    assert set(TINY_GEOMETRY) == ({("conv", n) for n in cases.CONV_GEOMETRY_CASES}
                                  | {("pool", n) for n in cases.POOL_GEOMETRY_CASES})
    for (kind, name), shapes in TINY_GEOMETRY.items():
        if kind == "conv":  # the same filter size, depthwise still depthwise
            W_shape = cases.CONV_GEOMETRY_CASES[name][1]
            assert shapes[1][:2] == W_shape[:2]
            groups = cases.CONV_GEOMETRY_CASES[name][2].get("groups", 1)
            assert shapes[0][3] == shapes[1][2] * groups


def test_geometry_rows_build_with_their_shapes_flops_and_bytes():
    here = {"cnnext": cnnext}
    expected = {  # output shapes, worked out by hand
        "depthwise_s1": (8, 56, 56, 128), "depthwise_s2": (4, 56, 56, 64),
        "dilated": (1, 33, 33, 256), "inception_1x7": (8, 17, 17, 128),
        "inception_7x1": (8, 17, 17, 128), "signs_same": (16, 64, 64, 8)}
    for name, (A_shape, W_shape, hp) in cases.CONV_GEOMETRY_CASES.items():
        for op in cases.CONV_OPS:
            row = cases.Row("conv", name, op, "float32", here)
            assert row.out_shape == expected[name]
            f_h, f_w, C_g, n_C = W_shape
            flops = 2.0 * np.prod(row.out_shape) * f_h * f_w * C_g
            assert row.flops == (flops if op == "conv_fwd" else 2 * flops)
            if op == "conv_fwd":
                assert row.args[3] == hp and row.args[1].shape == W_shape
            else:
                assert row.args[0].shape == row.out_shape
    row = cases.Row("conv", "depthwise_s1", "conv_fwd", "float64", here)
    assert row.bytes == 8 * (2 * 8 * 56 * 56 * 128 + 9 * 128)  # A, Z, W once each
    assert cases.Row("conv", "dilated", "conv_fwd", "float64", here).bytes is None
    pool_expected = {"signs_same": (64, 8, 8, 8), "resnet_stem_pad": (8, 56, 56, 64),
                     "resnet_stem_same": (8, 56, 56, 64)}
    for name, (A_shape, hp) in cases.POOL_GEOMETRY_CASES.items():
        row = cases.Row("pool", name, "max_bwd", "float32", here)
        assert row.out_shape == pool_expected[name] and row.args[0].shape == row.out_shape
        assert row.args[1] == (row.args[1][0], hp) and row.args[1][0].shape == A_shape


def test_geometry_case_names_select_their_rows():
    rows = cases.select_rows(["depthwise_s1", "signs_same"], ["fwd"], ["float32"])
    assert rows == [("conv", "depthwise_s1", "conv_fwd", "float32"),
                    ("conv", "signs_same", "conv_fwd", "float32"),
                    ("pool", "signs_same", "max_fwd", "float32"),
                    ("pool", "signs_same", "avg_fwd", "float32")]
    everything = cases.select_rows()
    for name in cases.CONV_GEOMETRY_CASES:
        assert ("conv", name, "conv_bwd", "float64") in everything
    for name in cases.POOL_GEOMETRY_CASES:
        assert ("pool", name, "avg_bwd", "float64") in everything
    assert not set(cases.CONV_GEOMETRY_CASES) & set(cases.QUICK_CASES)


def _all_contenders():
    from cnnext.bench import contenders
    return contenders.load()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind, name", sorted(TINY_GEOMETRY), ids=lambda x: str(x))
def test_geometry_rows_every_contender_agrees_with_cnnext(kind, name, dtype):
    """The path of a benchmark row: each contender's timed call, converted,
    against cnnext's result, with the check the benchmark makes."""
    from cnnext.bench.timing import max_rel_err
    here = _all_contenders()
    ops = cases.CONV_OPS if kind == "conv" else cases.POOL_OPS
    for op in ops:
        row = cases.Row(kind, name, op, dtype, here, spec=_tiny_spec(kind, name))
        # The seed loops and numpy do the assignment's geometry only.
        assert "seed" not in row.fns and "numpy" not in row.fns
        want = {"cnnext"} | {n for n in ("torch", "jax") if n in here} | (
            {"onnx"} if "onnx" in here and dtype == "float32" and op.endswith("fwd")
            else set())
        assert set(row.fns) == want, op
        ref = row.fns["cnnext"]()
        for n in want - {"cnnext"}:
            got = row.fns[n]()
            if n in row.to_cnnext:
                got = row.to_cnnext[n](got)
            assert max_rel_err(got, ref) <= report.TOLERANCE[dtype], (n, op)


@pytest.mark.parametrize("hp", [{"f": 3, "stride": 1, "pad": (1, 0, 0, 1)},
                                {"f": 2, "stride": 1, "pad": 1, "dilation": 2},
                                {"f": 3, "stride": 2, "pad": "same"}],
                         ids=["uneven", "dilated", "same"])
def test_pool_contenders_with_padding_the_benchmark_has_no_row_of(hp):
    # F.pad with -inf (max), window sums / counts (average), dilation; what
    # a contender cannot run it leaves out (torch: dilated averages; jax:
    # a dilated max backward), not crash.
    from cnnext.bench.timing import max_rel_err
    here = _all_contenders()
    for op in cases.POOL_OPS:
        row = cases.Row("pool", "x", op, "float64", here, spec=((2, 9, 8, 3), hp))
        assert "cnnext" in row.fns and "seed" not in row.fns and "numpy" not in row.fns
        if len(row.fns) < 2:
            pytest.skip("needs PyTorch or JAX, the contenders that run padded pooling")
        ref = row.fns["cnnext"]()
        for n, fn in row.fns.items():
            got = fn()
            got = row.to_cnnext[n](got) if n in row.to_cnnext else got
            assert max_rel_err(got, ref) <= 1e-9, (n, op)


def test_seed_and_numpy_leave_the_geometry_rows_out():
    here = {"cnnext": cnnext, "numpy": vec, "seed": seed}
    for kind, name in TINY_GEOMETRY:
        for op in (cases.CONV_OPS if kind == "conv" else cases.POOL_OPS):
            row = cases.Row(kind, name, op, "float64", here, spec=_tiny_spec(kind, name))
            assert set(row.fns) == {"cnnext"}, (kind, name, op)
    # The assignment's rows keep them.
    assert set(cases.Row("conv", "seed", "conv_bwd", "float64", here).fns) == set(here)
    assert set(cases.Row("pool", "odd", "avg_fwd", "float32", here).fns) == set(here)
    # Asked about the op and dtype alone, they run it.
    assert seed.supports("conv_fwd", "float64") and vec.supports("max_bwd", "float32")


def test_bench_command_depthwise_row_reports_bandwidth(tmp_path, monkeypatch, capsys):
    # The real case at a tiny size: every contender checked, GB/s reported.
    monkeypatch.setitem(cases.ALL_CASES["conv"], "depthwise_s1",
                        _tiny_spec("conv", "depthwise_s1"))
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--repeats", "1", "--cases", "conv:depthwise_s1",
                "--matmul-n", "64", "--json", str(out)])
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["copy_bandwidth_gbs"] > 0
    assert len(data["rows"]) == 4
    for r in data["rows"]:
        assert not {"seed", "numpy"} & set(r["median_s"])
        assert r["gbytes_per_s"]["cnnext"] == pytest.approx(
            r["bytes"] / r["median_s"]["cnnext"] / 1e9)
        assert 0 < r["cnnext_share_of_bandwidth"]
        for name, err in r["max_rel_err_vs_cnnext"].items():
            assert err <= report.TOLERANCE[r["dtype"]], (r["op"], name, err)
    assert "memory copy of 256 MiB" in printed and "cnnext GB/s" in printed
    assert "depthwise_s1 conv fwd float32: cnnext " in printed
    assert "results agree with cnnext: yes" in printed
