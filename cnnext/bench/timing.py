"""Timing one row: calibrated samples with the contenders alternated, the
check of each result against cnnext's, cnnext's scratch memory and a leak
check; and the matmul that the GFLOP/s are compared with."""
import concurrent.futures
import gc
import os
import statistics
import time
import tracemalloc

import numpy as np

from .contenders import CONTENDERS

# The contenders whose times are reported as a ratio to cnnext's (the seed
# loops' is extrapolated, see run_row).
OTHERS = ("torch", "onnx", "jax")
from .environment import loadavg
from .seed_loops import subsample_rows


def _arrays(result):
    """The output arrays of a call (a forward's cache is not an output)."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], tuple):
        return [result[0]]  # (out, cache)
    return list(result)


def max_rel_err(got, ref, sel=None):
    """max |got - ref| / max |ref| over the output arrays (at ``sel`` if given).

    Examples
    --------
    >>> import numpy as np
    >>> max_rel_err(np.array([1.0, 2.5]), np.array([1.0, 2.0]))
    0.25
    """
    err, scale = 0.0, 0.0
    for g, r in zip(_arrays(got), _arrays(ref)):
        if sel is not None:
            g, r = g[sel], r[sel]
        g, r = np.asarray(g, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            return float("inf")
        if r.size:
            err = max(err, float(np.max(np.abs(g - r))))
            scale = max(scale, float(np.max(np.abs(r))))
    return err / max(scale, 1e-30)


def _timed(fn, number):
    """Seconds per call of ``number`` calls, without the garbage collector."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_was:
            gc.enable()


def _rss_bytes():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _call_timed(fn):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def settled_call_time(fn, cfg):
    """Seconds per call of ``fn`` once its first calls are past.

    The first calls of a contender can be far slower than the rest (PyTorch's
    float64 seed rows, JAX's compile, a first touch of scratch pages): a
    repeat count calibrated from one first call made PyTorch's seed rows read
    8x in one run and 2000x in the next. So ``fn`` is called at least
    ``cfg.warmup_calls`` times, then until two timings in a row agree within
    25% (at most ``cfg.warmup_max`` timings, or two past ``cfg.warmup_time``
    seconds),
    each timing a loop of enough calls to last ~1 ms; the smaller of the
    last two is returned.
    """
    number, spent, times = 1, 0.0, []
    while True:
        t = _timed(fn, number)
        spent += t * number
        times.append(t)
        if t * number < 1e-3 and number < 100000:  # too short to time alone
            number = min(100000, max(number * 2, int(1e-3 / max(t, 1e-9))))
        settled = len(times) >= 2 and abs(times[-1] - times[-2]) <= 0.25 * min(times[-2:])
        if len(times) >= cfg.warmup_max or (len(times) >= 2 and spent >= cfg.warmup_time) or (
                len(times) >= cfg.warmup_calls and settled):
            return min(times[-2:])


def run_row(row, cfg):
    """Time one row (:class:`cnnext.bench.cases.Row`); return its result dict."""
    gc.collect()
    names = [n for n in CONTENDERS if n in row.fns and n in cfg.contenders]
    fns, number, checks = {}, {}, {}
    # One untimed call each, whose result is checked against cnnext's; then
    # warm-up calls, and the calls per sample calibrated from their settled time.
    ref = row.fns["cnnext"]()
    seed_rows = None
    for name in names:
        if name == "seed":
            seed = row.fns["seed"]
            t1 = _call_timed(lambda: seed(limit=1))[1]  # one (example, row) pair
            lim = max(1, min(row.n_rows, int(cfg.seed_budget / max(t1, 1e-9))))
            seed_rows = subsample_rows(row.out_shape[0], row.out_shape[1], lim)
            fns["seed"], number["seed"] = (lambda lim=lim: seed(limit=lim)), 1
            got = seed(limit=lim)
            if lim == row.n_rows:
                checks["seed"] = max_rel_err(got, ref)
            elif row.op.endswith("fwd"):
                checks["seed"] = max_rel_err(got, ref, tuple(np.array(seed_rows).T))
            else:
                checks["seed"] = max_rel_err(got, row.cnnext_masked_backward(seed_rows))
            del got
            continue
        if name != "cnnext":
            got = row.fns[name]()
            if name in row.to_cnnext:
                got = row.to_cnnext[name](got)
            checks[name] = max_rel_err(got, ref)
            del got
        fns[name] = row.fns[name]
        t = settled_call_time(fns[name], cfg)
        number[name] = max(1, min(100000, int(cfg.sample_time / max(t, 1e-9))))
    del ref
    samples = {n: [] for n in fns}
    order = list(fns)
    for r in range(cfg.repeats):
        k = r % len(order)
        for name in order[k:] + order[:k]:
            samples[name].append(_timed(fns[name], number[name]))
    load = loadavg()
    res = {"kind": row.kind, "case": row.case, "op": row.op, "dtype": row.dtype,
           "shape": row.shape_text, "out_shape": list(row.out_shape),
           "flops": row.flops, "repeats": cfg.repeats, "calls_per_sample": number,
           "samples_s": samples, "max_rel_err_vs_cnnext": checks,
           "loadavg_1min": None if load is None else load[0]}
    med = {n: statistics.median(v) for n, v in samples.items()}
    res["median_s"] = med
    res["min_s"] = {n: min(v) for n, v in samples.items()}
    if "seed" in med:
        n_sub = len(seed_rows) * row.per_row
        res["seed_subsample"] = {"rows": len(seed_rows), "of_rows": row.n_rows,
                                 "out_elements": n_sub, "of_out_elements": row.n_out}
        res["seed_s_per_out_element"] = med["seed"] / n_sub
        res["seed_s_extrapolated"] = med["seed"] / n_sub * row.n_out
    c = med["cnnext"]
    for other in OTHERS:
        if other in med:
            res[f"ratio_{other}_over_cnnext"] = med[other] / c
    if "seed" in med:
        res["ratio_seed_over_cnnext"] = res["seed_s_extrapolated"] / c
    if row.bytes:
        res["bytes"] = row.bytes
        res["gbytes_per_s"] = {n: row.bytes / med[n] / 1e9 for n in med if n != "seed"}
        bw = getattr(cfg, "bandwidth_gbs", None)
        if bw:
            res["cnnext_share_of_bandwidth"] = res["gbytes_per_s"]["cnnext"] / bw
    if row.flops:
        res["gflops"] = {n: row.flops / med[n] / 1e9 for n in med if n != "seed"}
        peak = cfg.peak_gflops.get(row.dtype)
        if peak:
            res["cnnext_share_of_peak"] = res["gflops"]["cnnext"] / peak
    res.update(_memory(row, cfg, c))
    return res


def _memory(row, cfg, t_call):
    """Scratch (peak traced minus outputs) of one cnnext call; leak check."""
    fn = row.fns["cnnext"]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        out_bytes = sum(a.nbytes for a in _arrays(out))
        del out
        n = int(max(cfg.leak_min, min(cfg.leak_max, cfg.leak_time / max(t_call, 1e-9))))
        fn()
        gc.collect()
        traced0, rss0 = tracemalloc.get_traced_memory()[0], _rss_bytes()
        for _ in range(n):
            fn()
        gc.collect()
        traced1, rss1 = tracemalloc.get_traced_memory()[0], _rss_bytes()
    finally:
        tracemalloc.stop()
    traced = traced1 - traced0
    rss = None if rss0 is None else rss1 - rss0
    return {"scratch_mib": max(0, peak - out_bytes) / 2**20,
            "output_mib": out_bytes / 2**20,
            "leak": {"calls": n, "traced_growth_bytes": traced, "rss_growth_bytes": rss,
                     "suspect": bool(traced > 64 * 1024
                                     or (rss is not None and rss > 64 * 2**20))}}


def matmul_gflops(dtype, n, repeats):
    """GFLOP/s of numpy's ``n x n @ n x n`` matmul, the best of ``repeats``.

    The best, not the median: it is the practical peak that "cnnext % peak"
    divides by, and on a shared machine a median reads the other load.
    """
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    t = min(_timed(lambda: np.matmul(a, b, out=c), 1) for _ in range(max(3, repeats)))
    return 2.0 * n ** 3 / t / 1e9


def copy_bandwidth_gbs(threads, repeats, mib=256):
    """GB/s (bytes read + written) of copying ``mib`` MiB, far past the
    caches, split into ``threads`` chunks copied at once (numpy releases
    the GIL): the best of ``repeats``, the memory bandwidth the depthwise
    rows' GB/s are a share of."""
    n = mib * 2**20 // 8
    src, dst = np.ones(n), np.empty(n)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        def copy():
            list(pool.map(lambda p: np.copyto(*p), parts))
        copy()
        t = min(_timed(copy, 1) for _ in range(max(3, repeats)))
    return 2.0 * src.nbytes / t / 1e9
