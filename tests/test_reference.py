"""cnnext against the numpy reference (tests/reference.py) and against PyTorch.

Shapes, strides, pads and filter sizes cover f = 1, stride > f, pad = 0,
strides that do not divide the input, filters as large as the padded input,
and a batch large enough to span several of the kernels' work chunks. Every
case runs for float32 and float64; float64 must agree to 1e-10 relative.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnext
from cnnext import _plan
from reference import out_size

DTYPES = [np.float32, np.float64]

# (m, n_H_prev, n_W_prev, n_C_prev, f, n_C, stride, pad)
CONV_CASES = [
    (2, 4, 4, 3, 2, 8, 2, 2),       # the seed's example shape
    (2, 5, 5, 3, 1, 4, 1, 0),       # f = 1, pad = 0
    (2, 6, 7, 2, 1, 3, 2, 1),       # f = 1 with stride and pad
    (2, 7, 6, 2, 2, 3, 3, 0),       # stride > f, pad = 0
    (1, 6, 6, 3, 2, 4, 5, 1),       # stride > f with pad
    (1, 9, 7, 4, 3, 2, 2, 0),       # stride does not divide (n - f)
    (3, 8, 8, 3, 3, 5, 2, 1),
    (1, 6, 11, 1, 5, 1, 4, 3),      # pad large relative to the input
    (2, 5, 5, 2, 5, 3, 1, 0),       # f == n: a single output pixel
    (1, 3, 3, 2, 7, 2, 1, 2),       # f > n, f == n + 2*pad
    (1, 1, 1, 3, 3, 2, 1, 1),       # 1x1 image
    (1, 2, 9, 2, 2, 2, 1, 0),       # very non-square image
    (3, 13, 12, 5, 4, 6, 3, 2),     # even f, odd sizes
    (2, 10, 10, 16, 3, 32, 1, 1),   # many channels
    (6, 20, 20, 64, 3, 8, 1, 1),    # many windows: spans several work chunks
    (1, 1, 1, 1, 1, 1, 1, 2),       # pad > f: whole windows lie in the padding
    (2, 3, 4, 2, 2, 3, 1, 3),       # pad > f, every side
]


def _random_conv_cases(n, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        m = int(rng.integers(1, 4))
        H, Wd = (int(v) for v in rng.integers(1, 12, size=2))
        C, n_C = (int(v) for v in rng.integers(1, 7, size=2))
        f = int(rng.integers(1, 6))
        stride = int(rng.integers(1, 5))
        pad = int(rng.integers(0, 4))
        if f <= min(H, Wd) + 2 * pad:
            cases.append((m, H, Wd, C, f, n_C, stride, pad))
    return cases


CONV_CASES += _random_conv_cases(20, seed=20260511)

# (m, n_H_prev, n_W_prev, n_C, f, stride)
POOL_CASES = [
    (2, 4, 4, 3, 4, 1),             # the seed's forward example
    (5, 5, 3, 2, 2, 1),             # the seed's backward example
    (2, 5, 5, 3, 1, 1),             # f = 1
    (2, 6, 6, 2, 1, 2),             # f = 1, stride 2
    (2, 8, 8, 3, 2, 2),             # classic 2x2/2
    (2, 9, 7, 2, 2, 3),             # stride > f
    (1, 10, 10, 4, 3, 2),           # overlapping windows
    (1, 11, 9, 2, 3, 4),            # stride > f, not dividing
    (3, 7, 7, 1, 7, 1),             # window == image
    (1, 1, 1, 5, 1, 1),             # 1x1 image
    (2, 3, 12, 3, 3, 1),            # non-square
    (2, 16, 16, 32, 3, 1),          # many channels
]


def _random_pool_cases(n, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        m = int(rng.integers(1, 4))
        H, Wd = (int(v) for v in rng.integers(1, 12, size=2))
        C = int(rng.integers(1, 7))
        f = int(rng.integers(1, 6))
        stride = int(rng.integers(1, 5))
        if f <= min(H, Wd):
            cases.append((m, H, Wd, C, f, stride))
    return cases


POOL_CASES += _random_pool_cases(20, seed=20260512)


def _conv_inputs(case, dtype, seed=0):
    m, H, Wd, C, f, n_C, stride, pad = case
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, H, Wd, C)).astype(dtype)
    W = rng.standard_normal((f, f, C, n_C)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, n_C)).astype(dtype)
    dZ = rng.standard_normal((m, out_size(H, f, pad, stride),
                              out_size(Wd, f, pad, stride), n_C)).astype(dtype)
    return A, W, b, {"stride": stride, "pad": pad}, dZ


def _distinct_values(shape, dtype, seed=0):
    """Random data without any tie: a shuffled ramp, exact in float32."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    values = rng.permutation(n).astype(np.float64) / max(n, 1) * 4.0 - 2.0
    return values.reshape(shape).astype(dtype)


def _pool_inputs(case, dtype, seed=0):
    m, H, Wd, C, f, stride = case
    rng = np.random.default_rng(seed + 1)
    A = _distinct_values((m, H, Wd, C), dtype, seed)
    dA = rng.standard_normal((m, out_size(H, f, 0, stride), out_size(Wd, f, 0, stride),
                              C)).astype(dtype)
    return A, {"f": f, "stride": stride}, dA


def _case_id(case):
    return "x".join(map(str, case))


def test_conv_window_entirely_in_padding_does_not_crash(tmp_path, ref, assert_close):
    """pad > f puts whole windows in the zero padding; their output is b.

    Run in a child process so that a crash of the kernel is reported as this
    test failing (with the input) rather than killing the test session.
    """
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import cnnext
        A = np.arange(1.0, 13.0).reshape(1, 2, 3, 2)
        W = np.arange(1.0, 9.0).reshape(1, 1, 2, 4)
        b = np.array([0.5, -1.0, 2.0, 0.0]).reshape(1, 1, 1, 4)
        hp = {"stride": 1, "pad": 2}
        Z, cache = cnnext.conv_forward(A, W, b, hp)
        dA, dW, db = cnnext.conv_backward(np.ones_like(Z), cache)
        np.savez(sys.argv[1], Z=Z, dA=dA, dW=dW, db=db)
    """)
    out = tmp_path / "out.npz"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(cnnext.__file__))]
        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # cwd away from the checkout: "-c" puts the cwd first on sys.path
    proc = subprocess.run([sys.executable, "-c", script, str(out)], env=env,
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, (
        "conv_forward/conv_backward with A_prev (1,2,3,2), W (1,1,2,4), "
        f"stride 1, pad 2 exited with code {proc.returncode}:\n{proc.stderr[-2000:]}")
    got = np.load(out)
    A = np.arange(1.0, 13.0).reshape(1, 2, 3, 2)
    W = np.arange(1.0, 9.0).reshape(1, 1, 2, 4)
    b = np.array([0.5, -1.0, 2.0, 0.0]).reshape(1, 1, 1, 4)
    hp = {"stride": 1, "pad": 2}
    Z = ref.conv_forward(A, W, b, hp)
    assert_close(got["Z"], Z)
    for name, want in zip(("dA", "dW", "db"), ref.conv_backward(np.ones_like(Z), (A, W, b, hp))):
        assert_close(got[name], want)


# --------------------------------------------------------------------------
# The reference itself, against the seed's literal loops
# --------------------------------------------------------------------------

@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (0, 1, 3, 5, 7, 9, 10)],
                         ids=_case_id)
def test_reference_conv_matches_seed_loops(case, ref, seed_ref):
    A, W, b, hp, dZ = _conv_inputs(case, np.float64)
    np.testing.assert_allclose(ref.conv_forward(A, W, b, hp),
                               seed_ref.conv_forward(A, W, b, hp), rtol=1e-12, atol=1e-12)
    for got, want in zip(ref.conv_backward(dZ, (A, W, b, hp)),
                         seed_ref.conv_backward(dZ, (A, W, b, hp))):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES[:9], ids=_case_id)
def test_reference_pool_matches_seed_loops(case, mode, ref, seed_ref):
    A, hp, dA = _pool_inputs(case, np.float64)
    A = np.round(A * 2) / 2          # plenty of ties, to check the tie rule too
    np.testing.assert_allclose(ref.pool_forward(A, hp, mode),
                               seed_ref.pool_forward(A, hp, mode), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref.pool_backward(dA, (A, hp), mode),
                               seed_ref.pool_backward(dA, (A, hp), mode),
                               rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# cnnext against the numpy reference
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv_forward_backward_vs_reference(case, dtype, ref, assert_close):
    A, W, b, hp, dZ = _conv_inputs(case, dtype)
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert Z.dtype == dtype
    assert Z.shape == dZ.shape
    assert_close(Z, ref.conv_forward(A, W, b, hp))

    dA, dW, db = cnnext.conv_backward(dZ, cache)
    want_dA, want_dW, want_db = ref.conv_backward(dZ, (A, W, b, hp))
    for got, want, shape in ((dA, want_dA, A.shape), (dW, want_dW, W.shape),
                             (db, want_db, b.shape)):
        assert got.dtype == dtype
        assert got.shape == shape
        assert_close(got, want)


# Both convolution kernels on shapes that reach each of their code paths: the
# direct kernel's register tiles hold 1, 2 or 4 channel vectors (16 float32 or
# 8 float64 lanes; 8 or 4 in the half-width kernel for few output channels)
# and 6 or 12 pixels, with a row's last 1-11 pixels in tiles of 4; n_C not a
# multiple of the vector length leaves a partial vector to store.
TILE_CASES = [
    # (m, n_H_prev, n_W_prev, n_C_prev, f, n_C, stride, pad)
    (2, 3, 14, 1, 3, 1, 1, 1),      # one half vector, 12-pixel tile + tail of 2
    (1, 4, 30, 3, 2, 8, 1, 0),      # half vectors exactly full, tail of 5
    (2, 3, 13, 2, 3, 9, 1, 1),      # one partial full-width vector
    (1, 5, 25, 3, 3, 17, 2, 2),     # 1-2 vectors with a partial one, stride 2
    (2, 2, 19, 1, 1, 24, 1, 0),     # two vectors (float64) / one and a half (float32)
    (1, 3, 20, 3, 3, 33, 1, 1),     # partial third vector
    (1, 4, 9, 4, 3, 64, 1, 1),      # 4 vectors, 6-pixel tile + tail of 3
    (1, 3, 17, 2, 2, 65, 3, 1),     # 4 vectors and a partial fifth, stride 3
    (2, 6, 6, 8, 3, 16, 1, 1),      # 8 channels, few outputs
    (1, 7, 31, 16, 3, 32, 1, 1),    # wide: 16 in, 32 out
    # pixel-vector tiles (stride 1, <= 8 outputs): every channel group G,
    # tiles spanning rows, partial last tiles and vectors, pad >= f
    (1, 5, 21, 2, 3, 5, 1, 1),      # G = 5, rows of 2 vectors, the second partial
    (2, 4, 7, 3, 2, 6, 1, 2),       # G = 6, rows shorter than a vector, pad >= f
    (1, 3, 40, 1, 5, 7, 1, 2),      # G = 7; backward: G = 1
    (1, 6, 33, 3, 3, 4, 1, 1),      # G = 4; backward: G = 3
    (1, 3, 17, 5, 3, 2, 1, 0),      # G = 2; backward: G = 5
    (1, 2, 50, 7, 1, 3, 1, 0),      # G = 3 on 1x1 filters; backward: G = 7
]

# 1x1 filters at pad 0 (one GEMM of the pixel rows, gathered first at a
# stride), and shapes next to them that the GEMM path must refuse.
GEMM1X1_CASES = [
    (2, 5, 7, 16, 1, 24, 1, 0),     # unstrided: the (m*H*W, C) view
    (1, 7, 9, 3, 1, 5, 2, 0),       # strided: gathered rows; odd edges
    (2, 6, 5, 20, 1, 17, 3, 0),     # stride 3
    (1, 4, 4, 8, 1, 8, 1, 1),       # pad 1: not a GEMM of the view
]


# Every (forward, backward) pair of paths of cnnext._plan: the forward path
# also runs the "transposed" backward's input gradient when it is "planar"
# or "direct".
PATH_PAIRS = [("gemm1x1", "gemm1x1"), ("planar", "transposed"), ("direct", "transposed"),
              ("direct", "windows"), ("direct", "rows"), ("im2row", "im2row")]


@pytest.mark.parametrize("paths", PATH_PAIRS, ids="-".join)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TILE_CASES + GEMM1X1_CASES, ids=_case_id)
def test_every_conv_kernel_vs_reference(case, dtype, paths, ref, assert_close):
    # Which kernel runs is cnnext's choice; name each in turn. A path that
    # cannot run the layer says so, and why.
    forward, backward = paths
    A, W, b, hp, dZ = _conv_inputs(case, dtype)
    f, C, stride, pad = W.shape[0], W.shape[2], hp["stride"], hp["pad"]
    why = _plan.forward_path_fits(forward, C, f, stride, pad)
    if why:
        with _plan.forced_path(forward=forward), pytest.raises(ValueError) as info:
            cnnext.conv_forward(A, W, b, hp)
        assert f"the forward path {forward!r} was forced but cannot run this layer: " \
            f"{why}" in str(info.value)
        forward = None  # cnnext's choice, for the cache of the backward below
    with _plan.forced_path(forward=forward):
        Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert_close(Z, ref.conv_forward(A, W, b, hp))
    why = _plan.backward_path_fits(backward, C, f, stride, pad)
    if why:
        with _plan.forced_path(backward=backward), pytest.raises(ValueError, match="backward"):
            cnnext.conv_backward(dZ, cache)
        assert why
        return
    with _plan.forced_path(forward=forward, backward=backward):
        grads = cnnext.conv_backward(dZ, cache)
    for got, want in zip(grads, ref.conv_backward(dZ, (A, W, b, hp))):
        assert got.dtype == dtype
        assert_close(got, want)


def test_forced_path_names_the_paths_it_knows():
    with pytest.raises(ValueError, match="forward path must be one of gemm1x1, planar, "
                                         "direct, im2row; got 'fast'"):
        with _plan.forced_path(forward="fast"):
            pass
    with pytest.raises(ValueError, match="backward path must be one of gemm1x1, "
                                         "transposed, windows, rows, im2row; got 'planar'"):
        with _plan.forced_path(backward="planar"):
            pass


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_pool_forward_backward_vs_reference(case, mode, dtype, ref, assert_close):
    A, hp, dA = _pool_inputs(case, dtype)
    out, cache = cnnext.pool_forward(A, hp, mode=mode)
    assert out.dtype == dtype
    assert out.shape == dA.shape
    assert_close(out, ref.pool_forward(A, hp, mode))
    dA_prev = cnnext.pool_backward(dA, cache, mode=mode)
    assert dA_prev.dtype == dtype
    assert dA_prev.shape == A.shape
    assert_close(dA_prev, ref.pool_backward(dA, (A, hp), mode))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_single_step_vs_reference(dtype, ref, assert_close):
    rng = np.random.default_rng(3)
    for f, C in [(1, 1), (2, 3), (3, 8), (5, 16)]:
        a = rng.standard_normal((f, f, C)).astype(dtype)
        W = rng.standard_normal((f, f, C)).astype(dtype)
        b = rng.standard_normal((1, 1, 1)).astype(dtype)
        Z = cnnext.conv_single_step(a, W, b)
        assert np.ndim(Z) == 0
        assert np.asarray(Z).dtype == dtype
        assert_close(Z, ref.conv_single_step(a, W, b))


def test_conv_single_step_on_conv_windows(ref, assert_close):
    # conv_single_step on the window of output pixel (i, h, w) with filter c
    # gives that pixel of the reference convolution, as in the seed's loop
    A, W, b, hp, _ = _conv_inputs((2, 7, 6, 3, 3, 4, 2, 1), np.float64, seed=5)
    Z = ref.conv_forward(A, W, b, hp)
    A_pad = np.pad(A, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for i, h, w, c in [(0, 0, 0, 0), (1, 2, 1, 3), (0, 3, 2, 1)]:
        window = A_pad[i, 2 * h:2 * h + 3, 2 * w:2 * w + 3, :]
        assert_close(cnnext.conv_single_step(window, W[..., c], b[..., c]), Z[i, h, w, c])


@pytest.mark.parametrize("pad", [0, 1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_zero_pad_vs_reference(pad, dtype, ref):
    rng = np.random.default_rng(4)
    X = (rng.standard_normal((3, 4, 5, 2)) * 3).astype(dtype)
    got = cnnext.zero_pad(X, pad)
    want = ref.zero_pad(X, pad)
    # padding computes nothing: the seed's np.pad keeps the dtype, so does cnnext
    assert got.dtype == want.dtype
    assert got.shape == (3, 4 + 2 * pad, 5 + 2 * pad, 2)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(1,), (2, 2), (3, 4), (4, 4, 3), (1, 1)])
def test_create_mask_from_window_vs_reference(shape, ref):
    rng = np.random.default_rng(5)
    for x in (rng.standard_normal(shape),
              rng.integers(0, 2, size=shape),                 # ties
              np.maximum(rng.standard_normal(shape), 0)):     # ReLU ties at 0
        mask = cnnext.create_mask_from_window(x)
        assert mask.dtype == np.bool_
        np.testing.assert_array_equal(mask, ref.create_mask_from_window(x))


@pytest.mark.parametrize("dz, shape", [(2, (2, 2)), (1.0, (3, 3)), (-7.5, (1, 4)),
                                       (0.3, (5, 2)), (np.float64(1e300), (1, 1))])
def test_distribute_value_vs_reference(dz, shape, ref):
    got = cnnext.distribute_value(dz, shape)
    assert got.shape == shape
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref.distribute_value(dz, shape), rtol=1e-15, atol=0)


# --------------------------------------------------------------------------
# Max-pool ties: every tied entry receives the gradient (x == max(x))
# --------------------------------------------------------------------------

def test_max_pool_backward_ties_hand_example():
    # one 2x2 window, all equal: each entry gets the full gradient
    A = np.ones((1, 2, 2, 1))
    out, cache = cnnext.pool_forward(A, {"f": 2, "stride": 2})
    dA_prev = cnnext.pool_backward(np.full((1, 1, 1, 1), 3.0), cache, mode="max")
    np.testing.assert_array_equal(dA_prev[0, :, :, 0], [[3.0, 3.0], [3.0, 3.0]])

    # two of four tie for the max; the others get nothing
    A = np.array([[5.0, 1.0], [5.0, -2.0]]).reshape(1, 2, 2, 1)
    _, cache = cnnext.pool_forward(A, {"f": 2, "stride": 1})
    dA_prev = cnnext.pool_backward(np.full((1, 1, 1, 1), 0.5), cache, mode="max")
    np.testing.assert_array_equal(dA_prev[0, :, :, 0], [[0.5, 0.0], [0.5, 0.0]])


def test_max_pool_backward_ties_overlapping_windows():
    # a constant 2x3 image, f=2, stride=1: two windows, every entry tied; the
    # middle column belongs to both windows, so it receives both gradients
    A = np.full((1, 2, 3, 1), 2.0)
    _, cache = cnnext.pool_forward(A, {"f": 2, "stride": 1})
    dA = np.array([1.0, 10.0]).reshape(1, 1, 2, 1)
    dA_prev = cnnext.pool_backward(dA, cache, mode="max")
    np.testing.assert_array_equal(dA_prev[0, :, :, 0], [[1.0, 11.0, 10.0],
                                                        [1.0, 11.0, 10.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in POOL_CASES if c[4] > 1][:10], ids=_case_id)
def test_max_pool_backward_ties_vs_reference(case, dtype, ref, assert_close):
    m, H, Wd, C, f, stride = case
    rng = np.random.default_rng(7)
    _, hp, dA = _pool_inputs(case, dtype)
    for A in (rng.integers(0, 3, size=(m, H, Wd, C)).astype(dtype),       # small ints
              np.maximum(rng.standard_normal((m, H, Wd, C)), 0).astype(dtype),  # ReLU
              np.zeros((m, H, Wd, C), dtype)):                              # all tied
        out, cache = cnnext.pool_forward(A, hp, mode="max")
        assert_close(out, ref.pool_forward(A, hp, "max"))
        assert_close(cnnext.pool_backward(dA, cache, mode="max"),
                     ref.pool_backward(dA, (A, hp), "max"))


# --------------------------------------------------------------------------
# cnnext against PyTorch (skipped cleanly when torch is not installed)
# --------------------------------------------------------------------------

def _nchw(torch, x, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
    return t.requires_grad_(grad)


def _nhwc(t):
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES[:16], ids=_case_id)
def test_conv_vs_torch(case, dtype, assert_close):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    A, W, b, hp, dZ = _conv_inputs(case, dtype, seed=11)
    n_C = W.shape[3]
    tA = _nchw(torch, A, grad=True)
    tW = torch.from_numpy(np.ascontiguousarray(np.transpose(W, (3, 2, 0, 1)))).requires_grad_(True)
    tb = torch.from_numpy(b.reshape(n_C).copy()).requires_grad_(True)
    tZ = F.conv2d(tA, tW, tb, stride=hp["stride"], padding=hp["pad"])
    tZ.backward(_nchw(torch, dZ))

    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert_close(Z, _nhwc(tZ).astype(np.float64))
    dA, dW, db = cnnext.conv_backward(dZ, cache)
    assert_close(dA, _nhwc(tA.grad).astype(np.float64))
    assert_close(dW, np.transpose(tW.grad.numpy(), (2, 3, 1, 0)).astype(np.float64))
    assert_close(db, tb.grad.numpy().reshape(1, 1, 1, n_C).astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES[:12], ids=_case_id)
def test_pool_vs_torch(case, mode, dtype, assert_close):
    # Tie-free data: torch's max-pool backward sends a tied window's gradient
    # to one entry only, cnnext (like the seed) to every tied entry.
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    A, hp, dA = _pool_inputs(case, dtype, seed=13)
    tA = _nchw(torch, A, grad=True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    tout = pool(tA, kernel_size=hp["f"], stride=hp["stride"])
    tout.backward(_nchw(torch, dA))

    out, cache = cnnext.pool_forward(A, hp, mode=mode)
    assert_close(out, _nhwc(tout).astype(np.float64))
    assert_close(cnnext.pool_backward(dA, cache, mode=mode),
                 _nhwc(tA.grad).astype(np.float64))


# --------------------------------------------------------------------------
# Property-based: any valid geometry (deterministic examples, no deadline)
# --------------------------------------------------------------------------

try:
    from hypothesis import given, settings, strategies as st
except ImportError:            # hypothesis is in the [test] extra; skip cleanly
    given = None


if given is not None:
    @st.composite
    def _conv_geometry(draw):
        f = draw(st.integers(1, 6))
        pad = draw(st.integers(0, 4))
        lo = max(1, f - 2 * pad)
        H = draw(st.integers(lo, lo + 9))
        Wd = draw(st.integers(lo, lo + 9))
        return (draw(st.integers(1, 3)), H, Wd, draw(st.integers(1, 6)), f,
                draw(st.integers(1, 6)), draw(st.integers(1, 6)), pad)

    @st.composite
    def _pool_geometry(draw):
        f = draw(st.integers(1, 6))
        return (draw(st.integers(1, 3)), draw(st.integers(f, f + 9)),
                draw(st.integers(f, f + 9)), draw(st.integers(1, 6)), f,
                draw(st.integers(1, 6)))

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(case=_conv_geometry(), dtype=st.sampled_from(DTYPES))
    def test_conv_any_geometry_vs_reference(ref, assert_close, case, dtype):
        A, W, b, hp, dZ = _conv_inputs(case, dtype)
        Z, cache = cnnext.conv_forward(A, W, b, hp)
        assert Z.dtype == dtype
        assert_close(Z, ref.conv_forward(A, W, b, hp))
        for got, want in zip(cnnext.conv_backward(dZ, cache),
                             ref.conv_backward(dZ, (A, W, b, hp))):
            assert got.dtype == dtype
            assert_close(got, want)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(case=_pool_geometry(), dtype=st.sampled_from(DTYPES),
           mode=st.sampled_from(["max", "average"]), ties=st.booleans())
    def test_pool_any_geometry_vs_reference(ref, assert_close, case, dtype, mode, ties):
        A, hp, dA = _pool_inputs(case, dtype)
        if ties:
            A = np.round(A).astype(dtype)
        out, cache = cnnext.pool_forward(A, hp, mode=mode)
        assert out.dtype == dtype
        assert_close(out, ref.pool_forward(A, hp, mode))
        assert_close(cnnext.pool_backward(dA, cache, mode=mode),
                     ref.pool_backward(dA, (A, hp), mode))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, n_C", [((2, 32, 32, 72), 4), ((2, 32, 32, 80), 16),
                                        ((3, 17, 19, 72), 8)])
def test_im2row_gemm_calls_cover_every_output_row(shape, n_C, dtype, ref, assert_close):
    """Wide layers whose im2row scratch splits the pixels into calls with a
    partial last one: the last call used to be dropped (a C-division ceiling),
    leaving those output rows uninitialised (found by valgrind)."""
    rng = np.random.default_rng(7)
    A = rng.standard_normal(shape).astype(dtype)
    W = rng.standard_normal((3, 3, shape[3], n_C)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, n_C)).astype(dtype)
    hp = {"stride": 1, "pad": 1}
    assert _plan.plan_conv_forward(A.shape, W.shape, 1, 1, cnnext.get_num_threads()).path in (
        "im2row", "direct", "planar")
    Z, _ = cnnext.conv_forward(A, W, b, hp)
    assert_close(Z, ref.conv_forward(A, W, b, hp))
