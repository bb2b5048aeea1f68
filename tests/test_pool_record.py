"""Max pool_forward's record of where each window's maxima are.

pool_forward's cache stays the assignment's ``(A_prev, hparameters)`` and
carries beside it a bit per window entry, from which pool_backward sends the
gradient without reading A_prev again. These tests check that the cache is
that tuple in every way a user touches it, that the record gives what the
numpy reference and the recomputing path (a plain tuple built by hand) give,
at every instruction-set level, with ties, NaN and inf, and that a cache
which no longer describes the call (hparameters or dtype changed) recomputes.
"""
import copy
import pickle

import numpy as np
import pytest

import cnnext
from cnnext import _dispatch
from reference import assert_close, ref_pool_backward, ref_pool_forward

RUNNABLE = _dispatch.runnable_levels()


@pytest.fixture(autouse=True)
def record_every_size(monkeypatch):
    """Record the small inputs of these tests too (pool_forward records
    inputs of _RECORD_MIN_ELEMENTS and more)."""
    monkeypatch.setattr(cnnext, "_RECORD_MIN_ELEMENTS", 0)


def test_small_inputs_are_not_recorded_large_ones_are(monkeypatch):
    monkeypatch.undo()
    hp = {"f": 2, "stride": 2}
    small = np.zeros((1, 4, 4, 2))
    large = np.zeros((1, 64, 64, 4))
    assert small.size < cnnext._RECORD_MIN_ELEMENTS <= large.size
    assert type(cnnext.pool_forward(small, hp)[1]) is tuple
    assert type(cnnext.pool_forward(large, hp)[1]) is not tuple
    assert type(cnnext.pool_forward(large, hp, mode="average")[1]) is tuple


def test_the_cache_is_the_assignments_tuple():
    A = np.random.default_rng(0).standard_normal((2, 4, 4, 3))
    hp = {"f": 2, "stride": 2}
    _, cache = cnnext.pool_forward(A, hp)
    assert type(cache) is not tuple  # the recording cache
    A_back, hp_back = cache
    assert A_back is A and hp_back is hp
    assert isinstance(cache, tuple) and len(cache) == 2
    assert cache[0] is A and cache[-1] is hp and cache[:1] == (A,)
    assert cache == (A, hp) and repr(cache) == repr((A, hp))
    # Copies and pickles are plain tuples: they recompute, and still work.
    for other in (copy.copy(cache), pickle.loads(pickle.dumps(cache))):
        assert type(other) is tuple and len(other) == 2
        np.testing.assert_array_equal(
            cnnext.pool_backward(np.ones((2, 2, 2, 3)), other),
            cnnext.pool_backward(np.ones((2, 2, 2, 3)), cache))


# (m, H, W, C, f, stride): few and many channels, channel runs that do not
# fill a byte or a vector (C * f odd), f = 1, overlapping windows, gaps
# between windows, a window larger than the stack scratch, and each of
# _tie_bits.h's paths: by channel vectors (C % 16 == 0; C % 8 == 0 for
# floats' half vectors and for doubles), by window rows (C divides a
# vector: C = 8 f = 8, C = 4 f = 4, doubles' C = 4 f = 2, C = 2 f = 4,
# C = 1 f = 8), by pixels (C >= 32, C % 8 == 0, the levels below AVX-512)
# and by repeated rows (the rest).
CASES = [(2, 8, 8, 8, 8, 8),      # the SIGNS model's first pool
         (1, 7, 9, 3, 3, 1),
         (2, 6, 6, 5, 2, 2),
         (1, 5, 5, 1, 1, 1),
         (1, 9, 8, 33, 3, 2),
         (2, 7, 7, 17, 2, 3),
         (1, 6, 6, 64, 3, 1),
         (1, 20, 20, 40, 9, 4),
         (2, 8, 8, 4, 4, 4),
         (2, 6, 7, 4, 2, 2),
         (1, 9, 9, 2, 4, 2),
         (1, 16, 16, 1, 8, 8),
         (1, 7, 7, 8, 3, 2),
         (1, 6, 6, 24, 2, 1),
         (1, 19, 18, 16, 17, 1)]  # more taps than the vector path lists


def _inputs(case, dtype, seed):
    m, H, W, C, f, stride = case
    rng = np.random.default_rng(seed)
    A = rng.integers(-2, 3, size=(m, H, W, C)).astype(dtype)  # many ties
    n_H, n_W = (H - f) // stride + 1, (W - f) // stride + 1
    dA = rng.standard_normal((m, n_H, n_W, C)).astype(dtype)
    return A, {"f": f, "stride": stride}, dA


@pytest.mark.parametrize("level", RUNNABLE, indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's 0 * inf
def test_the_record_gives_the_reference_at_every_level(level, dtype, case):
    A, hp, dA = _inputs(case, dtype, seed=sum(case))
    A.flat[::7] = np.nan      # a NaN max equals nothing: its window gets 0 * dA
    A.flat[3::11] = np.inf
    dA.flat[::13] = np.inf    # spreads over its window as 0 * inf = NaN
    out, cache = cnnext.pool_forward(A, hp)
    np.testing.assert_array_equal(out, ref_pool_forward(A, hp).astype(dtype))
    from_record = cnnext.pool_backward(dA, cache)
    recomputed = cnnext.pool_backward(dA, tuple(cache))
    np.testing.assert_array_equal(from_record, recomputed)
    assert_close(from_record, ref_pool_backward(dA, (A, hp)))


def test_a_batch_cut_over_threads_gives_the_one_thread_result():
    A, hp, dA = _inputs((12, 16, 16, 24, 3, 2), np.float32, seed=3)
    before = cnnext.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cnnext.set_num_threads(threads)
            _, cache = cnnext.pool_forward(A, hp)
            results.append(cnnext.pool_backward(dA, cache))
    finally:
        cnnext.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    assert_close(results[0], ref_pool_backward(dA, (A, hp)))


def test_changing_A_prev_in_place_after_the_forward():
    # The record is of A_prev as the forward saw it (the documented rule):
    # the forward's own cache gives the gradient of the forward that ran,
    # while a tuple built by hand is read afresh.
    A, hp, dA = _inputs((1, 6, 6, 4, 2, 2), np.float64, seed=5)
    original = A.copy()
    _, cache = cnnext.pool_forward(A, hp)
    A *= -1.0
    np.testing.assert_array_equal(cnnext.pool_backward(dA, cache),
                                  ref_pool_backward(dA, (original, hp)))
    np.testing.assert_array_equal(cnnext.pool_backward(dA, (A, hp)),
                                  ref_pool_backward(dA, (A, hp)))


def test_a_cache_that_no_longer_describes_the_call_recomputes():
    A, hp, _ = _inputs((1, 6, 6, 4, 2, 2), np.float32, seed=9)
    _, cache = cnnext.pool_forward(A, hp)
    hp["stride"] = 1          # the dict in the cache, changed after the forward
    dA = np.ones((1, 5, 5, 4), np.float32)
    np.testing.assert_array_equal(cnnext.pool_backward(dA, cache),
                                  ref_pool_backward(dA, (A, hp)))
    # A float64 gradient makes the call float64: the float32 record is not used.
    _, cache = cnnext.pool_forward(A, {"f": 2, "stride": 2})
    dA = np.random.default_rng(1).standard_normal((1, 3, 3, 4))
    got = cnnext.pool_backward(dA, cache)
    assert got.dtype == np.float64
    assert_close(got, ref_pool_backward(dA, (A, {"f": 2, "stride": 2})))
