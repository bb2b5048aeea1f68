"""The ``cnnext-bench`` command: its options, their checks, and the run.

Mistakes are reported before anything is timed, not after a run of minutes:
bad options exit with status 2 (argparse's usage and a ``cnnext-bench:
error:`` line); a ``--json`` path that cannot be written, or a ``--render``
file that is not a kept run, with status 1 and one ``cnnext-bench: error:
...`` line.
"""
import argparse
import json
import os
import sys
import time

from .._threads import available_cpus, limit_all_threads, reexec
from .cases import (ALL_CASES, BANDWIDTH_CASES, DTYPES, OP_GROUPS, OPS, QUICK_CASES, Row,
                    select_rows)
from .contenders import CONTENDERS, load
from .environment import OPENBLAS_VARS, UNSET_MARK, environment, loadavg, threadpool_info
from .report import COLUMNS, PROGRESS_COLUMNS, header_text, report_text, summary_lines, table_rows
from .timing import copy_bandwidth_gbs, matmul_gflops, run_row

PROG = "cnnext-bench"
# What a --render file must hold: the keys of main()'s results.
RUN_KEYS = ("environment", "config", "matmul_gflops", "rows", "summary")


class BenchError(Exception):
    """A file named on the command line that cannot serve; one line for the user."""


def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv):
    """The options of ``argv``, checked; bad ones exit with status 2."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Time cnnext's conv and pool kernels, forward and backward, "
                    "against PyTorch CPU, ONNX Runtime, JAX, vectorised numpy and the "
                    "seed's loops.")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats, shorter samples, smaller seed-loop subsample "
                        "and matmul; without --cases, only the cases of issue 3 and "
                        "resnet_b1, pointwise, pool:odd")
    p.add_argument("--cases", type=_split, default=None,
                   help="comma list of case names (seed, signs, lenet, resnet, strided, "
                        "overlap, ...; the whole geometry's: depthwise_s1, depthwise_s2, "
                        "dilated, inception_1x7, inception_7x1, signs_same, "
                        "resnet_stem_pad, resnet_stem_same); 'conv:NAME' or 'pool:NAME' "
                        "picks one kind")
    p.add_argument("--ops", type=_split, default=None,
                   help=f"comma list of {', '.join(OPS)} or groups "
                        f"{', '.join(OP_GROUPS)}")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per contender (median taken); default 7, "
                        "--quick 3")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every contender (default: what BLAS is set to "
                        "use, e.g. by OMP_NUM_THREADS, else all available CPUs)")
    p.add_argument("--json", metavar="PATH", help="write every number to PATH")
    p.add_argument("--markdown", action="store_true",
                   help="print a README-ready markdown table")
    p.add_argument("--render", metavar="PATH",
                   help="run nothing: print the report of a --json file again "
                        "(with --markdown for the README)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-onnx", action="store_true", help="leave ONNX Runtime out")
    p.add_argument("--no-jax", action="store_true", help="leave JAX out")
    p.add_argument("--matmul-n", type=int, default=None,
                   help="size of the reference matmul (default 4096, --quick 2048; "
                        "0 skips it)")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="do not re-run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.matmul_n is not None and args.matmul_n < 0:
        p.error(f"--matmul-n must be >= 0 (0 skips the matmul), not {args.matmul_n}")
    if args.render and args.json:
        p.error("--render runs nothing, so --json would have nothing to write")
    conv_cases, pool_cases = ALL_CASES["conv"], ALL_CASES["pool"]
    known = set(conv_cases) | set(pool_cases)
    if args.cases == []:
        p.error("--cases names no case")
    for c in args.cases or []:
        kind, _, name = c.rpartition(":")
        if kind not in ("", "conv", "pool") or name not in known or (
                kind == "conv" and name not in conv_cases) or (
                kind == "pool" and name not in pool_cases):
            p.error(f"unknown case {c!r}; known: conv {sorted(conv_cases)}, "
                    f"pool {sorted(pool_cases)}")
    if args.ops == []:
        p.error("--ops names no op")
    for o in args.ops or []:
        if o not in OPS and o not in OP_GROUPS:
            p.error(f"unknown op {o!r}; known: {', '.join(OPS + tuple(OP_GROUPS))}")
    if not select_rows(args.cases, args.ops):
        p.error(f"--cases {','.join(args.cases)} and --ops {','.join(args.ops)} select "
                f"no row: conv cases take the conv ops, pool cases the pool ops")
    return args


class Config:
    """The run's settings, from the options; kept in the JSON as ``config``."""

    def __init__(self, args, threads, contenders):
        quick = args.quick
        self.repeats = args.repeats or (3 if quick else 7)
        self.sample_time = 0.01 if quick else 0.05   # seconds per timed sample
        # Untimed calls before a contender's calls per sample are calibrated
        # (timing.settled_call_time): at least warmup_calls, until two agree.
        self.warmup_calls = 3
        self.warmup_max = 6 if quick else 10
        self.warmup_time = 0.1 if quick else 0.5
        self.seed_budget = 0.03 if quick else 0.25   # seconds per seed-loop sample
        self.leak_time = 0.1 if quick else 1.0       # seconds of leak-check calls
        self.leak_min, self.leak_max = (3, 20) if quick else (5, 200)
        self.matmul_n = 2048 if quick else 4096
        if args.matmul_n is not None:
            self.matmul_n = args.matmul_n
        self.threads = threads
        self.contenders = [c for c in CONTENDERS if c in contenders]
        # dtype -> the GFLOP/s that "cnnext % peak" divides by (set after the matmul).
        self.peak_gflops = {}
        # The copy GB/s that "cnnext % bw" divides by (measured when a
        # depthwise row is selected and --matmul-n is not 0).
        self.bandwidth_gbs = None


def _check_writable(path):
    """Fail now, not after a run of minutes, if ``--json path`` cannot be written."""
    if os.path.isdir(path):
        raise BenchError(f"--json {path}: is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise BenchError(f"--json {path}: directory {parent} does not exist")
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):  # "a": an existing file stays as it is
            pass
    except OSError as exc:
        raise BenchError(f"--json {path}: cannot write it ({exc.strerror})") from None
    if not existed:
        os.remove(path)


def _what_is_missing(exc):
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} where a run has one"
    return f"{type(exc).__name__}: {exc}"


def read_run(path, markdown=False):
    """The results kept by ``--json`` in ``path``, and their report as text.

    Raises
    ------
    BenchError
        If ``path`` cannot be read, is not JSON, or is not a run's results.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            out = json.load(fh)
    except FileNotFoundError:
        raise BenchError(f"--render {path}: no such file") from None
    except IsADirectoryError:
        raise BenchError(f"--render {path}: is a directory, not the --json file "
                         "of a run") from None
    except OSError as exc:
        raise BenchError(f"--render {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BenchError(f"--render {path}: not a JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"--render {path}: not a JSON file ({exc.msg} at line "
                         f"{exc.lineno}, column {exc.colno})") from None
    not_a_run = f"--render {path}: not the results of a {PROG} --json run"
    if not isinstance(out, dict):
        raise BenchError(f"{not_a_run} (a JSON {type(out).__name__}, not an object)")
    missing = [k for k in RUN_KEYS if k not in out]
    if missing:
        raise BenchError(f"{not_a_run} (no {', '.join(map(repr, missing))})")
    # The report reads nested keys and formats numbers: a file that only
    # looks like a run fails here, before anything is printed.
    try:
        text = report_text(out, markdown)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise BenchError(f"{not_a_run} ({_what_is_missing(exc)})") from None
    return out, text


def _reexec_without_openblas_env(argv):
    """Run the benchmark again without the OpenBLAS variables (read at load)."""
    if any(k in os.environ for k in OPENBLAS_VARS):
        reexec("cnnext.bench", argv, unset_env=OPENBLAS_VARS, mark=UNSET_MARK)


def main(argv=None):
    """Run the benchmark, or with ``--render`` print a kept run again.

    Parameters
    ----------
    argv : list of str, optional
        The options, as on the command line (``--help`` lists them). None
        reads ``sys.argv[1:]`` and lets the process run itself again without
        the OpenBLAS variables, as the command does.

    Returns
    -------
    results : dict
        Every number of the run, as ``--json`` writes them.

    Raises
    ------
    BenchError
        For a ``--json`` path that cannot be written (before anything is
        timed) or a ``--render`` file that is not a kept run.
    SystemExit
        For bad options (status 2) and ``--help``.
    """
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.render:
        out, text = read_run(args.render, args.markdown)
        print(text)
        return out
    if args.json:
        _check_writable(args.json)
    if from_command_line and not args.keep_openblas_env:
        _reexec_without_openblas_env(argv)

    threads = args.threads
    if threads is None:
        blas = [d["num_threads"] for d in threadpool_info() or [] if d["user_api"] == "blas"]
        threads = blas[0] if blas else available_cpus()
    left_out = [name for name, no in (("torch", args.no_torch), ("onnx", args.no_onnx),
                                      ("jax", args.no_jax)) if no]
    contenders = load(leave_out=left_out, threads=threads)
    torch = None
    if "torch" in contenders:
        import torch
    limits = limit_all_threads(threads)
    if torch is not None:
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        limits.add(lambda: torch.set_num_threads(torch_threads))
    try:
        cfg = Config(args, threads, contenders)
        env = environment(cfg, torch, contenders, left_out)
        dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
        matmul = {}
        if cfg.matmul_n > 0:
            for dt in dtypes:
                matmul[dt] = (cfg.matmul_n, matmul_gflops(dt, cfg.matmul_n, cfg.repeats))
                cfg.peak_gflops[dt] = matmul[dt][1]
        # --quick without --cases: the cases of issue 3 and a few of issue 10
        # (the whole suite's 104 rows take ~4 min even with --quick's settings).
        selected = select_rows(args.cases or (QUICK_CASES if args.quick else None),
                               args.ops, dtypes)
        if cfg.matmul_n > 0 and any(kind == "conv" and case in BANDWIDTH_CASES
                                    for kind, case, _, _ in selected):
            cfg.bandwidth_gbs = copy_bandwidth_gbs(threads, cfg.repeats)
        print(header_text(env, matmul, args.markdown, cfg.bandwidth_gbs), flush=True)
        results = []
        t_start = time.perf_counter()
        for k, (kind, case, op, dt) in enumerate(selected, 1):
            row = Row(kind, case, op, dt, contenders)
            results.append(run_row(row, cfg))
            del row
            cells = dict(zip(COLUMNS, table_rows(results[-1:])[0]))
            print(f"[{k}/{len(selected)}] {kind} {case} {op} {dt}: "
                  + ", ".join(f"{c} {cells[c]}" for c in PROGRESS_COLUMNS),
                  file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - t_start
    finally:
        limits.restore()
    env["loadavg_end"] = loadavg()
    env["elapsed_s"] = elapsed
    out = {"environment": env, "config": dict(vars(cfg)),
           "matmul_gflops": {dt: {"n": n, "gflops": g} for dt, (n, g) in matmul.items()},
           "copy_bandwidth_gbs": cfg.bandwidth_gbs,
           "rows": results, "summary": summary_lines(results, matmul, cfg.bandwidth_gbs)}
    print(report_text(out, args.markdown, header=False))
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(out, fh, indent=1)
        except OSError as exc:
            raise BenchError(f"--json {args.json}: cannot write it ({exc.strerror}); "
                             "the report above is all that is kept") from None
        print(f"wrote {args.json}")
    return out


def console_main(argv=None):
    """The ``cnnext-bench`` command (and ``python -m cnnext.bench``).

    Returns
    -------
    status : int
        0, or 1 after a :class:`BenchError`, printed as one line on stderr.
        Bad options exit with status 2 before.
    """
    try:
        main(argv)
    except BenchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0
