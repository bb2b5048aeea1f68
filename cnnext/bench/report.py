"""The report of a run: header, table (plain or markdown), summary against
the targets of issue 3, and footer; from a run's results dict, whether just
measured or read back from a ``--json`` file."""
import os

from .environment import OPENBLAS_VARS

SCRATCH_LIMIT_MIB = 64.0
# Agreement of a contender's result with cnnext's: max |x - y| / max |y|.
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}
COLUMNS = ("case", "op", "dtype", "cnnext ms", "torch ms", "torch/cnnext",
           "onnx ms", "onnx/cnnext", "jax ms", "jax/cnnext",
           "numpy ms", "seed ms (extrap.)", "seed us/out", "seed/cnnext",
           "cnnext GFLOP/s", "cnnext % peak", "torch GFLOP/s", "cnnext GB/s", "cnnext % bw",
           "scratch MiB", "leak")
# What the command prints on stderr after each row.
PROGRESS_COLUMNS = ("cnnext ms", "torch/cnnext", "onnx/cnnext", "jax/cnnext",
                    "seed/cnnext", "cnnext % peak")
# The contenders compared with cnnext row by row (targets: ratio >= 1).
RIVALS = ("torch", "onnx", "jax")
# ResNet-style 3x3 layers: issue 10's target is float32 forward >= 85% of peak.
RESNET_3X3 = ("resnet", "resnet_b1", "resnet50_s3")


def _fmt_load(load):
    """The 1-minute load average of a (1, 5, 15) triple, "n/a" without one."""
    return "n/a" if load is None else f"{load[0]:.2f}"


def _header_lines(env, matmul, bandwidth=None):
    """The header of a run: machine, versions, threads, OpenBLAS, matmul."""
    lines = [f"cnnext {env['cnnext']} benchmark, {env['date_utc']} UTC",
             f"machine: {env['cpu']}, {env['cpus_available']} CPUs available, "
             f"load average at start {_fmt_load(env['loadavg_start'])}",
             f"python {env['python']}, numpy {env['numpy']}, "
             f"torch {env['torch'] or 'not installed'}"
             + (f" (threads {env['torch_threads']}, oneDNN "
                f"{'on' if env['torch_mkldnn'] else 'off'})" if env['torch'] else "")
             + "".join(f", {k} {env.get('contender_versions', {}).get(k) or 'not installed'}"
                       for k in ("onnx", "onnxruntime", "jax")),
             f"threads: {env['threads']} for every contender (threadpoolctl limits "
             f"on BLAS and OpenMP, torch.set_num_threads)" if env["threadpools"] is not None
             else f"threads: torch {env['threads']}; threadpoolctl is not installed, so "
                  "BLAS and OpenMP run with their own defaults"]
    for d in env["threadpools"] or []:
        lines.append(f"  threadpool: {d['internal_api']} {d['version'] or ''} "
                     f"kernel={d['architecture'] or '-'} threads={d['num_threads']} "
                     f"({os.path.basename(d['filepath'] or '')})")
    if env["openblas_env_unset_by_bench"]:
        lines.append(f"OpenBLAS: ran without {env['openblas_env_unset_by_bench']} "
                     "(they slow a current OpenBLAS; --keep-openblas-env keeps them)")
    elif env["openblas_env"]:
        lines.append(f"OpenBLAS: WARNING {env['openblas_env']} kept: BLAS may run a "
                     "slower kernel than this CPU allows")
    else:
        lines.append(f"OpenBLAS: {' / '.join(OPENBLAS_VARS)} not set")
    if env.get("contenders_left_out"):
        lines.append(f"left out by the options: {', '.join(env['contenders_left_out'])}")
    if env.get("xla_flags"):
        lines.append(f"XLA_FLAGS: {env['xla_flags']}")
    for dt, (n, g) in matmul.items():
        lines.append(f"matmul {n}x{n} @ {n}x{n} {dt} (numpy): {g:.1f} GFLOP/s = the peak "
                     f"that 'cnnext % peak' divides by ({env['threads']} threads)")
    if bandwidth:
        lines.append(f"memory copy of 256 MiB (numpy, {env['threads']} threads): "
                     f"{bandwidth:.1f} GB/s read+written = the bandwidth that 'cnnext % bw' "
                     "divides by")
    return lines


def header_text(env, matmul, markdown=False, bandwidth=None):
    """The header lines, as a markdown list with ``markdown``."""
    lines = _header_lines(env, matmul, bandwidth)
    return "\n".join(f"- {h.strip()}" for h in lines) if markdown else "\n".join(lines)


def _fmt_ms(s):
    if s is None:
        return "-"
    ms = s * 1e3
    if ms >= 1000:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 0.1:
        return f"{ms:.3f}"
    return f"{ms:.4f}"


def _fmt_gflops(g):
    if g is None:
        return "-"
    return f"{g:.1f}" if g >= 1 else f"{g:.2g}"


def _fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:.0f}x" if x >= 100 else f"{x:.2f}x"


def table_rows(results):
    """The cells of :data:`COLUMNS` for each row result."""
    out = []
    for r in results:
        med = r["median_s"]
        g = r.get("gflops", {})
        sub = r.get("seed_subsample")
        seed = _fmt_ms(r.get("seed_s_extrapolated"))
        if sub and sub["rows"] < sub["of_rows"]:
            seed = "~" + seed
        leak = r["leak"]
        out.append((r["case"], r["op"].replace("_", " "), r["dtype"],
                    _fmt_ms(med["cnnext"]), _fmt_ms(med.get("torch")),
                    _fmt_ratio(r.get("ratio_torch_over_cnnext")),
                    _fmt_ms(med.get("onnx")), _fmt_ratio(r.get("ratio_onnx_over_cnnext")),
                    _fmt_ms(med.get("jax")), _fmt_ratio(r.get("ratio_jax_over_cnnext")),
                    _fmt_ms(med.get("numpy")), seed,
                    "-" if "seed_s_per_out_element" not in r
                    else f"{r['seed_s_per_out_element'] * 1e6:.2f}",
                    _fmt_ratio(r.get("ratio_seed_over_cnnext")),
                    _fmt_gflops(g.get("cnnext")),
                    "-" if "cnnext_share_of_peak" not in r
                    else f"{r['cnnext_share_of_peak']:.0%}",
                    _fmt_gflops(g.get("torch")),
                    _fmt_gflops(r.get("gbytes_per_s", {}).get("cnnext")),
                    "-" if "cnnext_share_of_bandwidth" not in r
                    else f"{r['cnnext_share_of_bandwidth']:.0%}",
                    f"{r['scratch_mib']:.1f}",
                    "SUSPECT" if leak["suspect"] else "no"))
    return out


def format_table(results, markdown=False):
    """The table of the row results, aligned text or markdown."""
    rows = table_rows(results)
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |",
                 "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(COLUMNS), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def summary_lines(results, matmul, bandwidth=None):
    """The run against the targets of issues 3 and 10, one line per target;
    the depthwise rows' memory traffic against the copy bandwidth."""
    lines = []
    for r in results:
        if r["kind"] == "conv" and r["case"] in RESNET_3X3 and r["dtype"] in matmul:
            n, peak = matmul[r["dtype"]]
            g = r["gflops"]
            lines.append(f"{r['case']} {r['op'].replace('_', ' ')} {r['dtype']}: cnnext "
                         f"{g['cnnext']:.1f} GFLOP/s = {g['cnnext'] / peak:.0%} of matmul"
                         + (f", torch {g['torch']:.1f} = {g['torch'] / peak:.0%}"
                            if "torch" in g else "")
                         + (" (target >= 85%)" if r["op"] == "conv_fwd"
                            and r["dtype"] == "float32" else ""))
    for r in results:
        if "gbytes_per_s" in r:
            gb = r["gbytes_per_s"]
            lines.append(f"{r['case']} {r['op'].replace('_', ' ')} {r['dtype']}: cnnext "
                         f"{gb['cnnext']:.1f} GB/s"
                         + (f" = {gb['cnnext'] / bandwidth:.0%} of the copy bandwidth"
                            if bandwidth else "")
                         + "".join(f", {n} {gb[n]:.1f}" for n in RIVALS if n in gb)
                         + f" ({r['bytes'] / 1e6:.0f} MB read+written once each)")
    for rival in RIVALS:
        key = f"ratio_{rival}_over_cnnext"
        with_rival = [r for r in results if key in r]
        if not with_rival:
            continue
        slow = [f"{r['case']} {r['op']} {r['dtype']} ({r[key]:.2f}x)"
                for r in with_rival if r[key] < 1.0]
        lines.append(f"{rival}/cnnext >= 1: {len(with_rival) - len(slow)} of "
                     f"{len(with_rival)} rows" + (f"; below: {', '.join(slow)}" if slow else ""))
        small = [r for r in with_rival if r["case"] == "seed"]
        if rival == "torch" and small:
            below = [f"{r['op']} {r['dtype']} ({r[key]:.2f}x)"
                     for r in small if r[key] < 3.0]
            lines.append(f"seed-sized calls torch/cnnext >= 3: {len(small) - len(below)} "
                         f"of {len(small)}" + (f"; below: {', '.join(below)}" if below else ""))
    conv_seed = [r for r in results if r["kind"] == "conv" and "ratio_seed_over_cnnext" in r]
    if conv_seed:
        below = [f"{r['case']} {r['op']} {r['dtype']} ({r['ratio_seed_over_cnnext']:.0f}x)"
                 for r in conv_seed if r["ratio_seed_over_cnnext"] < 1000]
        lines.append(f"conv seed-loops/cnnext >= 1000: {len(conv_seed) - len(below)} of "
                     f"{len(conv_seed)}" + (f"; below: {', '.join(below)}" if below else ""))
    big = [f"{r['case']} {r['op']} {r['dtype']} ({r['scratch_mib']:.0f} MiB)"
           for r in results if r["scratch_mib"] >= SCRATCH_LIMIT_MIB]
    lines.append(f"scratch < {SCRATCH_LIMIT_MIB:.0f} MiB: {len(results) - len(big)} of "
                 f"{len(results)}" + (f"; over: {', '.join(big)}" if big else ""))
    leaks = [f"{r['case']} {r['op']} {r['dtype']}" for r in results if r["leak"]["suspect"]]
    lines.append("leak check (traced growth > 64 KiB or RSS growth > 64 MiB over repeated "
                 "calls): " + (f"SUSPECT {', '.join(leaks)}" if leaks else "none"))
    bad = [f"{r['case']} {r['op']} {r['dtype']} {n} ({e:.1e})"
           for r in results for n, e in r["max_rel_err_vs_cnnext"].items()
           if not e <= TOLERANCE[r["dtype"]]]
    lines.append("results agree with cnnext: " + ("yes, every contender and row" if not bad
                                                  else f"NO: {', '.join(bad)}"))
    return lines


def report_text(out, markdown=False, header=True):
    """The report of a run's results ``out``: header (optional), table,
    summary and footer, as printed."""
    parts = []
    if header:
        matmul = {dt: (v["n"], v["gflops"]) for dt, v in out["matmul_gflops"].items()}
        parts.append(header_text(out["environment"], matmul, markdown,
                                 out.get("copy_bandwidth_gbs")))
    summary = out["summary"]
    env = out["environment"]
    parts += ["", format_table(out["rows"], markdown=markdown), "",
              "\n".join(f"- {s}" for s in summary) if markdown else "\n".join(summary), "",
              f"{len(out['rows'])} rows in {env['elapsed_s']:.0f} s; load average at end "
              f"{_fmt_load(env['loadavg_end'])}. Times: median of "
              f"{out['config']['repeats']} samples, contenders alternated; seed ms with ~ "
              "is extrapolated from a subsample; torch max-pool backward gets its "
              "indices from an untimed forward; onnx (float32 forwards only) is fed "
              "NCHW arrays prepared untimed, jax device arrays; every contender is "
              "warmed up before its calls per sample are calibrated."]
    return "\n".join(parts)
