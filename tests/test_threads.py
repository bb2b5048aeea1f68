"""Thread safety and GIL release.

* Several Python threads calling every function at once get results
  identical (bit for bit) to serial calls.
* The heavy functions release the GIL: while one of them runs, another Python
  thread makes progress. The probe counts the other thread's increments and
  asserts on that count, never on elapsed time.
"""
import os
import random
import sys
import threading
import time

import numpy as np
import pytest

import cnnext


def _tasks():
    """(name, zero-argument call) for every public function, both dtypes.

    The arrays are large enough for cnnext to split a batch over its own
    worker threads, so concurrent callers also share those workers; the
    convolutions cover both narrow (n_C_prev <= 4) and wide inputs.
    """
    rng = np.random.default_rng(99)
    tasks = []
    for dtype in (np.float32, np.float64):
        d = np.dtype(dtype).name
        A = rng.standard_normal((8, 48, 48, 32)).astype(dtype)
        for C in (3, 8):
            A_c = rng.standard_normal((16, 32, 32, C)).astype(dtype)
            W = rng.standard_normal((3, 3, C, 16)).astype(dtype)
            b = rng.standard_normal((1, 1, 1, 16)).astype(dtype)
            hp = {"stride": 1, "pad": 1}
            Z, cache = cnnext.conv_forward(A_c, W, b, hp)
            dZ = rng.standard_normal(Z.shape).astype(dtype)
            tasks += [
                (f"conv_single_step-C{C}-{d}", lambda A_c=A_c, W=W, b=b:
                    cnnext.conv_single_step(A_c[0, :3, :3], W[..., 0], b[..., 0])),
                (f"conv_forward-C{C}-{d}", lambda A_c=A_c, W=W, b=b, hp=hp:
                    cnnext.conv_forward(A_c, W, b, hp)[0]),
                (f"conv_backward-C{C}-{d}", lambda dZ=dZ, cache=cache:
                    cnnext.conv_backward(dZ, cache)),
            ]
        php = {"f": 3, "stride": 2}
        P, pcache = cnnext.pool_forward(A, php)
        dP = rng.standard_normal(P.shape).astype(dtype)
        tasks += [
            (f"zero_pad-{d}", lambda A=A: cnnext.zero_pad(A, 2)),
            (f"create_mask-{d}", lambda A=A: cnnext.create_mask_from_window(A[1, :, :, 3])),
            (f"distribute_value-{d}", lambda A=A: cnnext.distribute_value(A[0, 0, 0, 2], (3, 4))),
        ]
        for mode in ("max", "average"):
            tasks += [
                (f"pool_forward-{mode}-{d}",
                 lambda A=A, php=php, mode=mode: cnnext.pool_forward(A, php, mode=mode)[0]),
                (f"pool_backward-{mode}-{d}",
                 lambda dP=dP, pcache=pcache, mode=mode: cnnext.pool_backward(dP, pcache, mode=mode)),
            ]
    return tasks


def _as_tuple(result):
    return tuple(np.asarray(r) for r in result) if isinstance(result, tuple) else (np.asarray(result),)


def test_concurrent_calls_match_serial():
    tasks = _tasks()
    serial = {name: _as_tuple(call()) for name, call in tasks}

    n_threads, repeats = 4, 2
    barrier = threading.Barrier(n_threads)
    results = [[] for _ in range(n_threads)]
    errors = []

    def worker(k):
        order = tasks * repeats
        random.Random(k).shuffle(order)
        try:
            barrier.wait()
            for name, call in order:
                results[k].append((name, _as_tuple(call())))
        except Exception as exc:          # reported below, with the thread
            errors.append((k, repr(exc)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    n_checked = 0
    for k in range(n_threads):
        assert len(results[k]) == len(tasks) * repeats
        for name, got in results[k]:
            want = serial[name]
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype, name
                np.testing.assert_array_equal(g, w, err_msg=f"thread {k}: {name}")
                n_checked += 1
    assert n_checked > 0


def test_own_thread_count_does_not_change_results():
    # Splitting a batch over cnnext's worker threads computes each example
    # exactly as one thread does.
    if not hasattr(cnnext, "set_num_threads"):
        pytest.skip("this cnnext has no set_num_threads")
    tasks = _tasks()
    before = cnnext.get_num_threads()
    try:
        results = {}
        for n in (1, 2, 3):
            cnnext.set_num_threads(n)
            results[n] = {name: _as_tuple(call()) for name, call in tasks}
    finally:
        cnnext.set_num_threads(before)
    for n in (2, 3):
        for name, got in results[n].items():
            for g, w in zip(got, results[1][name]):
                np.testing.assert_array_equal(g, w, err_msg=f"{n} threads: {name}")


# --------------------------------------------------------------------------
# GIL release
# --------------------------------------------------------------------------

SWITCH_INTERVAL = 5.0     # s: no forced GIL switch during a measurement
STEP = 1000               # counter increments between two voluntary GIL hand-overs
MIN_STEPS = 15            # steps that show a call ran its loops without the GIL
TRIES = 5


class _ProgressProbe:
    """Counts how far a pure-Python counter thread gets during one call.

    The switch interval is set far longer than any measured call, so the
    interpreter never forces a thread to hand the GIL over. The counter thread
    hands it over voluntarily every STEP increments (``time.sleep(0)``), so the
    main thread gets the GIL back as soon as it asks. Hence, between reading
    the counter before and after a call, the counter can only advance if the
    call itself releases the GIL; a call that holds it throughout leaves the
    count unchanged. Progress is read in steps of STEP.

    A brief release (numpy drops the GIL around the calloc of a large
    ``np.zeros``) lets the counter run one or two steps before the main thread
    takes the GIL back; loops that run for milliseconds without the GIL let it
    run hundreds. The tests ask for MIN_STEPS.
    """

    def __enter__(self):
        self._old = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._state = {"n": 0, "stop": False}

        def count(state):
            sleep = time.sleep
            while not state["stop"]:
                for _ in range(STEP):
                    state["n"] += 1
                sleep(0)

        self._thread = threading.Thread(target=count, args=(self._state,), daemon=True)
        self._thread.start()
        while self._state["n"] == 0:
            time.sleep(0.001)
        return self

    def progress_during(self, call):
        n0 = self._state["n"]
        call()
        return self._state["n"] - n0

    def __exit__(self, *exc):
        self._state["stop"] = True
        self._thread.join()
        sys.setswitchinterval(self._old)


def _heavy_calls():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((8, 64, 64, 32))
    W = rng.standard_normal((3, 3, 32, 32))
    b = rng.standard_normal((1, 1, 1, 32))
    hp = {"stride": 1, "pad": 1}
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    # Pooling: a small input (so that allocating the outputs is cheap, see
    # _ProgressProbe) with large overlapping windows (so that the loops are not).
    A_pool = rng.standard_normal((2, 64, 64, 32))
    php = {"f": 16, "stride": 1}
    P, pcache = cnnext.pool_forward(A_pool, php)
    return {
        "conv_forward": lambda: cnnext.conv_forward(A, W, b, hp),
        "conv_backward": lambda: cnnext.conv_backward(Z, cache),
        "pool_forward-max": lambda: cnnext.pool_forward(A_pool, php, mode="max"),
        "pool_backward-max": lambda: cnnext.pool_backward(P, pcache, mode="max"),
        "pool_forward-average": lambda: cnnext.pool_forward(A_pool, php, mode="average"),
        "pool_backward-average": lambda: cnnext.pool_backward(P, pcache, mode="average"),
    }


@pytest.mark.skipif(not getattr(sys, "_is_gil_enabled", lambda: True)(),
                    reason="a free-threaded interpreter has no GIL to hold")
def test_probe_sees_no_progress_during_a_gil_holding_call():
    # The probe's own check: a long C call that keeps the GIL (the builtin
    # sum over a range) lets the counter make no progress.
    with _ProgressProbe() as probe:
        progress = [probe.progress_during(lambda: sum(range(2_000_000)))
                    for _ in range(TRIES)]
        # and the counter does run whenever the GIL is released
        released = [probe.progress_during(lambda: time.sleep(0.02)) for _ in range(TRIES)]
    assert progress == [0] * TRIES
    assert max(released) >= MIN_STEPS * STEP


@pytest.mark.parametrize("name", ["conv_forward", "conv_backward", "pool_forward-max",
                                  "pool_forward-average", "pool_backward-max",
                                  "pool_backward-average"])
def test_gil_released(name):
    call = _heavy_calls()[name]
    progress = []
    # One cnnext thread, so that a core is left for the counter: with the
    # batch split over every core, the counter would be starved of CPU, not
    # of the GIL.
    before = cnnext.get_num_threads()
    cnnext.set_num_threads(1)
    try:
        with _ProgressProbe() as probe:
            # A few tries: one measurement can be starved by a busy machine.
            while len(progress) < TRIES and (not progress
                                             or progress[-1] < MIN_STEPS * STEP):
                progress.append(probe.progress_during(call))
    finally:
        cnnext.set_num_threads(before)
    assert progress[-1] >= MIN_STEPS * STEP, (
        f"{name}: a pure-Python thread advanced {progress} steps in {len(progress)} "
        "calls; the call seems to hold the GIL throughout")


# --------------------------------------------------------------------------
# Thread control: set_num_threads, OMP_NUM_THREADS, threadpoolctl
# --------------------------------------------------------------------------

def test_omp_num_threads_sets_the_default(tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = "import cnnext; print(cnnext.get_num_threads())"
    # Outside the checkout: "-c" puts the working directory on sys.path.
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="num_threads must be >= 1; got 0"):
        cnnext.set_num_threads(0)
    with pytest.raises(TypeError, match="num_threads must be an integer; got float 2.0"):
        cnnext.set_num_threads(2.0)


def _slices_used(call):
    """How many slices cnnext split one call into (1: not split)."""
    from cnnext import _parallel
    used = []
    real = _parallel._run_slices

    def spy(kernel, n, n_parts):
        used.append(n_parts)
        return real(kernel, n, n_parts)

    _parallel._run_slices = spy
    try:
        call()
    finally:
        _parallel._run_slices = real
    return max(used, default=1)


def test_threadpoolctl_blas_limit_caps_cnnext_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(3)
    A = rng.standard_normal((8, 32, 32, 32))
    W = rng.standard_normal((3, 3, 32, 128))
    b = np.zeros((1, 1, 1, 128))
    hp = {"stride": 2, "pad": 1}  # 128 output channels: im2row + GEMM, which calls BLAS
    before = cnnext.get_num_threads()
    cnnext.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            assert _slices_used(lambda: cnnext.conv_forward(A, W, b, hp)) == 2
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            assert _slices_used(lambda: cnnext.conv_forward(A, W, b, hp)) == 1
            # and BLAS is left as the user set it
            blas = [d["num_threads"] for d in threadpoolctl.threadpool_info()
                    if d["user_api"] == "blas"]
            assert blas and all(n == 1 for n in blas)
        cnnext.set_num_threads(1)
        assert _slices_used(lambda: cnnext.conv_forward(A, W, b, hp)) == 1
    finally:
        cnnext.set_num_threads(before)


def test_threads_context_manager_sets_and_restores():
    before = cnnext.get_num_threads()
    with cnnext.threads(1):
        assert cnnext.get_num_threads() == 1
        with cnnext.threads(3):
            assert cnnext.get_num_threads() == 3
        assert cnnext.get_num_threads() == 1
    assert cnnext.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"):
        with cnnext.threads(2):
            raise RuntimeError("inside")
    assert cnnext.get_num_threads() == before


def test_threads_context_manager_validates_before_changing_anything():
    before = cnnext.get_num_threads()
    with pytest.raises(ValueError, match="num_threads must be >= 1; got 0"):
        with cnnext.threads(0):
            pass
    with pytest.raises(TypeError, match="num_threads must be an integer; got float 2.0"):
        with cnnext.threads(2.0):
            pass
    assert cnnext.get_num_threads() == before


def test_threads_context_manager_results_identical():
    rng = np.random.default_rng(5)
    A, W, b = rng.standard_normal((8, 20, 20, 3)), rng.standard_normal((3, 3, 3, 8)), np.zeros((1, 1, 1, 8))
    with cnnext.threads(1):
        one = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 1})[0]
    with cnnext.threads(2):
        two = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 1})[0]
    np.testing.assert_array_equal(one, two)


def test_available_cpus_falls_back_where_the_os_has_no_affinity(monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: every CPU counts."""
    from cnnext import _parallel
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert _parallel.available_cpus() == (os.cpu_count() or 1)


def test_set_num_threads_while_other_threads_call_cnnext():
    """set_num_threads used to shut the pool down under a call that held it,
    whose next submit raised RuntimeError (49 of 700 calls without a GIL, 19
    of 867 with one)."""
    A = np.random.default_rng(0).standard_normal((8, 64, 64, 16))
    expected = cnnext.pool_forward(A, {"f": 2, "stride": 2})[0]
    before, errors, done = cnnext.get_num_threads(), [], threading.Event()

    def call():
        try:
            for _ in range(300):
                np.testing.assert_array_equal(cnnext.pool_forward(A, {"f": 2, "stride": 2})[0],
                                              expected)
        except Exception as exc:  # reported below
            errors.append(exc)

    callers = [threading.Thread(target=call) for _ in range(2)]
    cnnext.set_num_threads(2)  # split calls: each submits to the pool
    for thread in callers:
        thread.start()
    try:
        while any(thread.is_alive() for thread in callers):
            cnnext.set_num_threads(2)
    finally:
        for thread in callers:
            thread.join()
        cnnext.set_num_threads(before)
    assert errors == []
