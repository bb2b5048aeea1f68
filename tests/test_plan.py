"""The convolution plan (cnnext._plan): which kernel runs, and how the work
is cut.

* The plan picks the paths its thresholds document, and a forced path runs
  or says why it cannot.
* The weight gradient's reduction blocks depend on the problem alone, never
  on the thread count, and a batch of one image is cut over every thread.
* Every path gives the same bits on 1, 2 and 3 threads on layers big enough
  to be cut, and agrees with the reference.
"""
import threading

import numpy as np
import pytest

import cnnext
from cnnext import _plan
from cnnext._plan import plan_conv_backward, plan_conv_forward

RESNET = ((1, 56, 56, 64), (3, 3, 64, 64), 1, 1)


@pytest.mark.parametrize("layer, forward, backward", [
    (RESNET, "direct", "transposed"),
    (((32, 28, 28, 128), (1, 1, 128, 256), 1, 0), "gemm1x1", "gemm1x1"),
    (((8, 28, 28, 128), (1, 1, 128, 256), 2, 0), "gemm1x1", "gemm1x1"),
    (((8, 32, 32, 3), (3, 3, 3, 8), 1, 1), "planar", "transposed"),
    (((8, 32, 32, 3), (5, 5, 3, 16), 2, 2), "direct", "windows"),
    (((8, 32, 32, 32), (3, 3, 32, 32), 2, 1), "direct", "rows"),
    (((8, 32, 32, 128), (3, 3, 128, 128), 1, 1), "im2row", "im2row"),
    (((8, 32, 32, 2), (1, 1, 2, 4), 1, 0), "planar", "transposed"),  # 1x1, few channels
    (((8, 28, 28, 64), (1, 1, 64, 64), 1, 0), "direct", "transposed"),  # the tiles still win
    (((8, 28, 28, 128), (1, 1, 128, 128), 1, 1), "im2row", "im2row"),  # padded: no GEMM view
])
def test_natural_paths(layer, forward, backward):
    A_shape, W_shape, stride, pad = layer
    assert plan_conv_forward(A_shape, W_shape, stride, pad, threads=2).path == forward
    assert plan_conv_backward(A_shape, W_shape, stride, pad, threads=2).path == backward


def test_transposed_input_gradient_is_planned_as_a_forward():
    # Its output channels are dA's: C.
    plan = plan_conv_backward((1, 56, 56, 64), (3, 3, 64, 8), 1, 1, threads=4)
    assert plan.transposed.path == "direct"
    plan = plan_conv_backward((1, 56, 56, 8), (3, 3, 8, 64), 1, 1, threads=4)
    assert plan.transposed.path == "planar"
    plan = plan_conv_backward(*RESNET, threads=4)
    assert plan.transposed.path == "direct" and plan.transposed.parts == 4
    with _plan.forced_path(forward="direct"):
        plan = plan_conv_backward((1, 56, 56, 8), (3, 3, 8, 64), 1, 1, threads=4)
    assert plan.transposed.path == "direct"


def test_a_batch_of_one_is_cut_over_every_thread():
    for threads in (1, 2, 16):
        assert plan_conv_forward(*RESNET, threads=threads).parts == threads
    # 64 threads: at most one part per output row (56), and none below the
    # minimum of work per thread.
    assert 48 <= plan_conv_forward(*RESNET, threads=64).parts <= 56
    # The weight gradient: as many parts as threads, up to its fixed blocks.
    n_blocks = len(plan_conv_backward(*RESNET, threads=1).reduction_bounds) - 1
    assert n_blocks >= 4
    for threads in (1, 2, 16, 64):
        assert plan_conv_backward(*RESNET, threads=threads).parts == min(threads, n_blocks)


def test_small_calls_run_on_the_calling_thread():
    plan = plan_conv_forward((1, 8, 8, 3), (3, 3, 3, 4), 1, 1, threads=64)
    assert plan.parts == 1
    plan = plan_conv_backward((1, 8, 8, 3), (3, 3, 3, 4), 1, 1, threads=64)
    assert plan.parts == 1 and plan.reduction_bounds == (0, 8)


@pytest.mark.parametrize("layer", [
    RESNET,
    ((3, 30, 30, 16), (3, 3, 16, 32), 2, 1),
    ((5, 17, 17, 3), (5, 5, 3, 16), 1, 2),
    ((16, 28, 28, 128), (1, 1, 128, 256), 1, 0),
    ((200, 8, 8, 8), (3, 3, 8, 8), 1, 1),
    ((4, 32, 32, 128), (3, 3, 128, 128), 1, 1),
])
def test_reduction_blocks_depend_on_the_problem_not_the_threads(layer):
    m, H = layer[0][0], layer[0][1]
    plans = [plan_conv_backward(*layer, threads=t) for t in (1, 2, 3, 16, 64)]
    bounds = plans[0].reduction_bounds
    assert all(p.reduction_bounds == bounds for p in plans)
    assert all(p.path == plans[0].path for p in plans)
    n_H = (H + 2 * layer[3] - layer[1][0]) // layer[2] + 1
    assert bounds[0] == 0 and bounds[-1] == m * n_H
    assert all(a < b for a, b in zip(bounds, bounds[1:]))
    assert len(bounds) - 1 <= _plan.MAX_REDUCTION_BLOCKS
    if plans[0].path in ("windows", "rows", "im2row"):  # windows overlap across rows
        assert all(r % n_H == 0 for r in bounds)


def test_layers_without_input_channels_run_on_im2row():
    # Zero channels: Z is the bias. The tiles and the GEMM view need a channel.
    assert plan_conv_forward((2, 5, 5, 0), (1, 1, 0, 3), 1, 0, threads=2).path == "im2row"
    assert plan_conv_backward((2, 5, 5, 0), (1, 1, 0, 3), 1, 0, threads=2).path == "im2row"
    assert plan_conv_forward((2, 5, 5, 0), (3, 3, 0, 3), 1, 1, threads=2).path == "im2row"


def test_empty_layers_plan_nothing():
    assert plan_conv_forward((0, 5, 5, 3), (3, 3, 3, 2), 1, 1, threads=2).path == "empty"
    assert plan_conv_backward((1, 5, 5, 3), (3, 3, 3, 0), 1, 1, threads=2).path == "empty"


def test_forced_path_is_undone_on_exit_and_on_errors():
    with pytest.raises(RuntimeError):
        with _plan.forced_path(forward="im2row", backward="im2row"):
            assert plan_conv_forward(*RESNET, threads=2).path == "im2row"
            assert plan_conv_backward(*RESNET, threads=2).path == "im2row"
            raise RuntimeError
    assert plan_conv_forward(*RESNET, threads=2).path == "direct"
    assert plan_conv_backward(*RESNET, threads=2).path == "transposed"


def test_forced_path_is_per_thread():
    seen = []
    with _plan.forced_path(forward="im2row"):
        worker = threading.Thread(
            target=lambda: seen.append(plan_conv_forward(*RESNET, threads=2).path))
        worker.start()
        worker.join()
        assert plan_conv_forward(*RESNET, threads=2).path == "im2row"
    assert seen == ["direct"]


def test_a_forced_path_that_cannot_run_says_why():
    A = np.ones((1, 6, 6, 3)); W = np.ones((3, 3, 3, 2)); b = np.zeros((1, 1, 1, 2))
    with _plan.forced_path(forward="planar"), pytest.raises(
            ValueError, match=r"the forward path 'planar' was forced but cannot run this "
                              r"layer: it needs stride 1 \(got 2\)"):
        cnnext.conv_forward(A, W, b, {"stride": 2, "pad": 1})
    Z, cache = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 3})
    with _plan.forced_path(backward="transposed"), pytest.raises(
            ValueError, match=r"the backward path 'transposed' was forced but cannot run "
                              r"this layer: it needs stride 1 and pad < f \(got stride=1, "
                              r"pad=3, f=3\)"):
        cnnext.conv_backward(np.ones_like(Z), cache)
    with _plan.forced_path(forward="gemm1x1"), pytest.raises(
            ValueError, match=r"it needs a 1x1 filter and pad 0 \(got f=3, pad=1\)"):
        cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 1})


# Layers big enough that a batch of one image is cut into several parts and
# the weight gradient into several reduction blocks; each with the paths
# that can run it.
CUT_LAYERS = [
    # (A shape, f, n_C, stride, pad, [(forward, backward), ...])
    ((1, 64, 64, 16), 3, 16, 1, 1, [("direct", "transposed"), ("planar", "transposed"),
                                    ("direct", "windows"), ("direct", "rows"),
                                    ("im2row", "im2row")]),
    ((2, 90, 94, 6), 3, 8, 1, 1, [("planar", "transposed"), ("direct", "windows")]),
    ((1, 91, 89, 24), 3, 20, 2, 1, [("direct", "windows"), ("direct", "rows"),
                                    ("im2row", "im2row")]),
    ((1, 40, 40, 64), 1, 96, 1, 0, [("gemm1x1", "gemm1x1"), ("direct", "transposed")]),
    ((1, 81, 83, 64), 1, 96, 2, 0, [("gemm1x1", "gemm1x1"), ("im2row", "im2row")]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", CUT_LAYERS, ids=lambda c: "x".join(map(str, c[0] + c[1:5])))
def test_every_path_same_bits_on_any_thread_count(layer, dtype, ref, assert_close):
    shape, f, n_C, stride, pad, path_pairs = layer
    rng = np.random.default_rng(7)
    A = rng.standard_normal(shape).astype(dtype)
    W = rng.standard_normal((f, f, shape[3], n_C)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, n_C)).astype(dtype)
    hp = {"stride": stride, "pad": pad}
    for forward, backward in path_pairs:
        results = {}
        for n in (1, 2, 3):
            with cnnext.threads(n), _plan.forced_path(forward=forward, backward=backward):
                Z, cache = cnnext.conv_forward(A, W, b, hp)
                dZ = np.cos(Z)          # any gradient, the same each time
                results[n] = (Z, *cnnext.conv_backward(dZ, cache))
        assert plan_conv_forward(shape, W.shape, stride, pad, threads=3).parts > 1
        for n in (2, 3):
            for got, want in zip(results[n], results[1]):
                np.testing.assert_array_equal(got, want, err_msg=f"{forward}/{backward}, "
                                                                 f"{n} threads")
        Z, dA, dW, db = results[1]
        assert_close(Z, ref.conv_forward(A, W, b, hp))
        for got, want in zip((dA, dW, db), ref.conv_backward(np.cos(Z), (A, W, b, hp))):
            assert_close(got, want)
