"""Threads and fork.

8 Python threads calling every public function at once get results identical
(bit for bit) to serial calls: the kernels release the GIL, so this is where
shared scratch or static state would show. A process that forks after
cnnext (and the BLAS behind it) has run must not hang in the child.
"""
import multiprocessing
import sys
import threading
import warnings

import numpy as np
import pytest

import cnnext

N_THREADS = 8
ROUNDS = 5
HANG_BOUND = 120  # seconds: a hang detector, not a speed requirement


def workload(seed):
    """Inputs for one thread, different per thread, and the calls on them."""
    rng = np.random.default_rng(seed)
    dtype = np.float32 if seed % 2 else np.float64
    A = rng.standard_normal((4, 12, 12, 6)).astype(dtype)
    W = rng.standard_normal((3, 3, 6, 8)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, 8)).astype(dtype)
    conv_hp = {"stride": 1 + seed % 2, "pad": seed % 3}
    pool_hp = {"f": 2 + seed % 2, "stride": 2}

    def run():
        out = {}
        out["zero_pad"] = cnnext.zero_pad(A, 2)
        out["conv_single_step"] = cnnext.conv_single_step(A[0, :3, :3], W[..., 0], b[..., 0])
        Z, cache = cnnext.conv_forward(A, W, b, conv_hp)
        out["conv_forward"] = Z
        dZ = np.sin(Z)
        out["conv_backward"] = cnnext.conv_backward(dZ, cache)
        for mode in ("max", "average"):
            P, pcache = cnnext.pool_forward(Z, pool_hp, mode)
            out[f"pool_forward_{mode}"] = P
            out[f"pool_backward_{mode}"] = cnnext.pool_backward(np.cos(P), pcache, mode)
        out["create_mask_from_window"] = cnnext.create_mask_from_window(A[0, :3, :3, 0])
        out["distribute_value"] = cnnext.distribute_value(A[0, 0, 0, 0], (3, 2))
        return out

    return run


def assert_identical(got, want, where):
    assert got.keys() == want.keys()
    for name in want:
        g, w = got[name], want[name]
        for gi, wi in zip(g if isinstance(g, tuple) else (g,),
                          w if isinstance(w, tuple) else (w,)):
            assert np.asarray(gi).dtype == np.asarray(wi).dtype, (where, name)
            np.testing.assert_array_equal(gi, wi, err_msg=f"{where}: {name}")


def test_eight_threads_match_serial():
    runs = [workload(seed) for seed in range(N_THREADS)]
    serial = [run() for run in runs]
    barrier = threading.Barrier(N_THREADS)
    results = [[] for _ in range(N_THREADS)]
    errors = []

    def worker(k):
        try:
            barrier.wait()
            for _ in range(ROUNDS):
                results[k].append(runs[k]())
        except BaseException as exc:  # reported below, in the main thread
            errors.append((k, exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(N_THREADS):
        assert len(results[k]) == ROUNDS
        for r, got in enumerate(results[k]):
            assert_identical(got, serial[k], f"thread {k}, round {r}")


def _child_conv(A, W, b, conn):
    Z, _ = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 1})
    conn.send(Z)
    conn.close()


@pytest.mark.skipif(sys.platform != "linux", reason="the fork start method is POSIX-only")
def test_fork_after_use_does_not_hang():
    rng = np.random.default_rng(1)
    # Big enough for BLAS to start its thread pool in the parent.
    A = rng.standard_normal((8, 32, 32, 16))
    W = rng.standard_normal((3, 3, 16, 32))
    b = rng.standard_normal((1, 1, 1, 32))
    Z, _ = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 1})
    # And from other threads too, as a threaded program would have.
    threads = [threading.Thread(target=cnnext.conv_forward,
                                args=(A, W, b, {"stride": 1, "pad": 1}))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    with warnings.catch_warnings():  # Python 3.12+ warns on fork with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        child = ctx.Process(target=_child_conv, args=(A, W, b, sender))
        child.start()
    sender.close()
    got = receiver.recv() if receiver.poll(HANG_BOUND) else None
    child.join(HANG_BOUND)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"the forked child still runs after {HANG_BOUND} s: it hangs")
    assert child.exitcode == 0
    assert got is not None, "the forked child sent no result"
    np.testing.assert_array_equal(got, Z)
