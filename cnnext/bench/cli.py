"""The ``cnnext-bench`` command: its options and the run."""
import argparse
import json
import os
import sys
import time

from .._threads import available_cpus, limit_all_threads, reexec
from .cases import CONV_CASES, DTYPES, OP_GROUPS, OPS, POOL_CASES, Row, select_rows
from .contenders import CONTENDERS, load
from .environment import OPENBLAS_VARS, UNSET_MARK, environment, loadavg, threadpool_info
from .report import COLUMNS, header_text, report_text, summary_lines, table_rows
from .timing import matmul_gflops, run_row

def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv):
    """The options of ``argv``; bad ones exit with status 2."""
    p = argparse.ArgumentParser(
        prog="python -m cnnext.bench",
        description="Time cnnext's conv and pool kernels, forward and backward, "
                    "against PyTorch CPU, vectorised numpy and the seed's loops.")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats, shorter samples, smaller seed-loop subsample "
                        "and matmul")
    p.add_argument("--cases", type=_split, default=None,
                   help="comma list of case names (seed, signs, lenet, resnet, strided, "
                        "overlap); 'conv:NAME' or 'pool:NAME' picks one kind")
    p.add_argument("--ops", type=_split, default=None,
                   help=f"comma list of {', '.join(OPS)} or groups "
                        f"{', '.join(OP_GROUPS)}")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per contender (median taken); default 5, "
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
    known = set(CONV_CASES) | set(POOL_CASES)
    for c in args.cases or []:
        kind, _, name = c.rpartition(":")
        if kind not in ("", "conv", "pool") or name not in known or (
                kind == "conv" and name not in CONV_CASES) or (
                kind == "pool" and name not in POOL_CASES):
            p.error(f"unknown case {c!r}; known: conv {sorted(CONV_CASES)}, "
                    f"pool {sorted(POOL_CASES)}")
    for o in args.ops or []:
        if o not in OPS and o not in OP_GROUPS:
            p.error(f"unknown op {o!r}; known: {', '.join(OPS + tuple(OP_GROUPS))}")
    return args


class Config:
    """The run's settings, from the options; kept in the JSON as ``config``."""

    def __init__(self, args, threads, contenders):
        quick = args.quick
        self.repeats = args.repeats or (3 if quick else 5)
        self.sample_time = 0.01 if quick else 0.05   # seconds per timed sample
        self.seed_budget = 0.03 if quick else 0.25   # seconds per seed-loop sample
        self.leak_time = 0.2 if quick else 2.0       # seconds of leak-check calls
        self.leak_min, self.leak_max = (3, 20) if quick else (5, 200)
        self.matmul_n = 2048 if quick else 4096
        if args.matmul_n is not None:
            self.matmul_n = args.matmul_n
        self.threads = threads
        self.contenders = [c for c in CONTENDERS if c in contenders]


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
    SystemExit
        For bad options (status 2) and ``--help``.
    """
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.render:
        with open(args.render) as fh:
            out = json.load(fh)
        print(report_text(out, args.markdown))
        return out
    if from_command_line and not args.keep_openblas_env:
        _reexec_without_openblas_env(argv)

    contenders = load(leave_out=("torch",) if args.no_torch else ())
    torch = None
    if "torch" in contenders:
        import torch
    threads = args.threads
    if threads is None:
        blas = [d["num_threads"] for d in threadpool_info() or [] if d["user_api"] == "blas"]
        threads = blas[0] if blas else available_cpus()
    limits = limit_all_threads(threads)
    if torch is not None:
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        limits.add(lambda: torch.set_num_threads(torch_threads))
    try:
        cfg = Config(args, threads, contenders)
        env = environment(cfg, torch)
        dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
        matmul = {}
        if cfg.matmul_n > 0:
            for dt in dtypes:
                matmul[dt] = (cfg.matmul_n, matmul_gflops(dt, cfg.matmul_n, cfg.repeats))
        print(header_text(env, matmul, args.markdown), flush=True)
        results = []
        t_start = time.perf_counter()
        selected = select_rows(args.cases, args.ops, dtypes)
        for k, (kind, case, op, dt) in enumerate(selected, 1):
            row = Row(kind, case, op, dt, contenders)
            results.append(run_row(row, cfg))
            del row
            cells = dict(zip(COLUMNS, table_rows(results[-1:])[0]))
            print(f"[{k}/{len(selected)}] {kind} {case} {op} {dt}: "
                  + ", ".join(f"{c} {cells[c]}" for c in COLUMNS[3:10]),
                  file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - t_start
    finally:
        limits.restore()
    env["loadavg_end"] = loadavg()
    env["elapsed_s"] = elapsed
    out = {"environment": env, "config": dict(vars(cfg)),
           "matmul_gflops": {dt: {"n": n, "gflops": g} for dt, (n, g) in matmul.items()},
           "rows": results, "summary": summary_lines(results, matmul)}
    print(report_text(out, args.markdown, header=False))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"wrote {args.json}")
    return out


def console_main(argv=None):
    """The ``cnnext-bench`` command (and ``python -m cnnext.bench``): run,
    print, return 0."""
    main(argv)
    return 0
