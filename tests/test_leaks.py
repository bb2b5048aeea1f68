"""Memory stays flat over 10,000 calls of each public function.

Each call is repeated 10,000 times after a warm-up, twice: once measuring the
resident set size (catches leaks outside Python's allocators: a kernel's
malloc, a buffer never released) and once under tracemalloc (catches leaked
Python objects and numpy arrays, whose data numpy reports to tracemalloc).
Error paths are included: an exception's traceback must not keep arrays alive.

Bounds: a leak of one small output array per call would add a few hundred
KiB to tracemalloc's count and, for the conv outputs, megabytes of RSS.
``pytest tests/test_leaks.py -s`` prints the measured growth.
"""
import ctypes
import gc
import os
import tracemalloc

import numpy as np
import pytest

import cnnext

CALLS = 10_000
WARMUP = 300
TRACED_LIMIT = 64 * 1024        # bytes of traced growth over CALLS calls
RSS_LIMIT = 2 * 1024 * 1024     # bytes of RSS growth over CALLS calls


def _malloc_trim():
    """Hand the heap's free pages back to the OS (glibc), so that RSS grows
    again with what a leak keeps. Without it, the free heap left by earlier
    tests (the CLI's MNIST runs free ~100 MB) absorbed the 69 MB the leak
    check below keeps, and it failed in the full suite only."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError, TypeError):  # not glibc (Windows: no CDLL(None))
        pass


def rss_bytes():
    """Resident memory of this process: Linux's /proc, else psutil (macOS,
    Windows), else the test is skipped, saying why."""
    _malloc_trim()
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        pytest.skip("reading this process's resident memory needs /proc or psutil")
    return psutil.Process().memory_info().rss


def make_cases():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, 6, 6, 3))
    W = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal((1, 1, 1, 4))
    conv_hp = {"stride": 1, "pad": 1}
    Z, conv_cache = cnnext.conv_forward(A, W, b, conv_hp)
    dZ = rng.standard_normal(Z.shape)
    A32 = A.astype(np.float32)
    Z32, conv_cache32 = cnnext.conv_forward(A32, W.astype(np.float32),
                                            b.astype(np.float32), {"stride": 2, "pad": 0})
    dZ32 = np.ones_like(Z32)
    pool_hp = {"f": 2, "stride": 2}
    P, pool_cache = cnnext.pool_forward(A, pool_hp)
    dP = rng.standard_normal(P.shape)

    def refused(fn, *args):
        def call():
            try:
                fn(*args)
            except (ValueError, TypeError):
                return
            raise AssertionError("expected a ValueError or TypeError")
        return call

    return {
        "zero_pad": lambda: cnnext.zero_pad(A, 2),
        "conv_single_step": lambda: cnnext.conv_single_step(A[0, :3, :3], W[..., 0], b[..., 0]),
        "conv_forward": lambda: cnnext.conv_forward(A, W, b, conv_hp),
        "conv_forward_f32_strided": lambda: cnnext.conv_forward(A32[:, ::2], W, b, conv_hp),
        "conv_backward": lambda: cnnext.conv_backward(dZ, conv_cache),
        "conv_backward_f32": lambda: cnnext.conv_backward(dZ32, conv_cache32),
        "pool_forward_max": lambda: cnnext.pool_forward(A, pool_hp, "max"),
        "pool_forward_average": lambda: cnnext.pool_forward(A32, pool_hp, "average"),
        "pool_backward_max": lambda: cnnext.pool_backward(dP, pool_cache, "max"),
        "pool_backward_average": lambda: cnnext.pool_backward(dP, pool_cache, "average"),
        "create_mask_from_window": lambda: cnnext.create_mask_from_window(A[0, :2, :2, 0]),
        "distribute_value": lambda: cnnext.distribute_value(2.0, (2, 2)),
        "conv_forward_refused": refused(cnnext.conv_forward, A, W[:, :, :2], b, conv_hp),
        "conv_backward_refused": refused(cnnext.conv_backward, dZ[:, 1:], conv_cache),
        "pool_forward_refused": refused(cnnext.pool_forward, A, {"f": 9, "stride": 1}),
        "pool_backward_refused": refused(cnnext.pool_backward, dP, pool_cache, "min"),
    }


def make_split_cases():
    """Calls big enough for cnnext to split the batch over its thread pool (on
    a machine with more than one core): futures and slices must not pile up."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((2, 16, 16, 256))
    W = rng.standard_normal((3, 3, 256, 4))
    b = np.zeros((1, 1, 1, 4))
    conv_hp = {"stride": 2, "pad": 1}
    pool_hp = {"f": 2, "stride": 2}
    Z, conv_cache = cnnext.conv_forward(A, W, b, conv_hp)
    P, pool_cache = cnnext.pool_forward(A, pool_hp)
    return {
        "conv_forward_split": lambda: cnnext.conv_forward(A, W, b, conv_hp),
        "conv_backward_split": lambda: cnnext.conv_backward(Z, conv_cache),
        "pool_forward_split": lambda: cnnext.pool_forward(A, pool_hp, "max"),
        "pool_backward_split": lambda: cnnext.pool_backward(P, pool_cache, "average"),
    }


CASES = make_cases()
SPLIT_CASES = make_split_cases()
SPLIT_CALLS = 2_000  # these calls are ~50x the work of the small ones


def growth(call, measure, calls=CALLS):
    for _ in range(WARMUP):
        call()
    gc.collect()
    before = measure()
    for _ in range(calls):
        call()
    gc.collect()
    return measure() - before


def measure_both(call, calls):
    rss = growth(call, rss_bytes, calls)
    tracemalloc.start()
    try:
        traced = growth(call, lambda: tracemalloc.get_traced_memory()[0], calls)
    finally:
        tracemalloc.stop()
    return rss, traced


@pytest.mark.parametrize("name", list(CASES))
def test_memory_flat_over_10000_calls(name):
    rss, traced = measure_both(CASES[name], CALLS)
    print(f"\n{name}: {CALLS} calls, RSS {rss / 1024:+.0f} KiB, traced {traced:+d} B")
    assert traced < TRACED_LIMIT, f"{name} leaks: traced memory grew {traced} B"
    assert rss < RSS_LIMIT, f"{name} leaks: RSS grew {rss / 1024:.0f} KiB"


@pytest.mark.parametrize("name", list(SPLIT_CASES))
def test_memory_flat_over_threaded_calls(name):
    rss, traced = measure_both(SPLIT_CASES[name], SPLIT_CALLS)
    print(f"\n{name}: {SPLIT_CALLS} calls, RSS {rss / 1024:+.0f} KiB, traced {traced:+d} B")
    assert traced < TRACED_LIMIT, f"{name} leaks: traced memory grew {traced} B"
    assert rss < RSS_LIMIT, f"{name} leaks: RSS grew {rss / 1024:.0f} KiB"


def test_the_measures_see_a_leak():
    """The same measures flag a call that keeps one output array alive."""
    kept = []
    A = np.ones((2, 10, 10, 3))

    def leaky():
        kept.append(cnnext.zero_pad(A, 1))

    rss, traced = measure_both(leaky, CALLS)
    assert traced > TRACED_LIMIT and rss > RSS_LIMIT, (traced, rss)
