"""The whole geometry (issue 12): rectangular filters, a stride and a dilation
per axis, every padding form ('same' by TensorFlow's rule), groups, b of
shape (n_C,) or None; pooling with padding and dilation. Checked against the
per-window numpy reference (reference.py), PyTorch where installed, and
central differences."""
import numpy as np
import pytest

import cnnext
from reference import (assert_close, ref_conv_general, ref_conv_general_backward,
                       ref_pool_general, ref_pool_general_backward, tf_same_padding)

DTYPES = [np.float32, np.float64]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def explicit_geometry(hp, in_hw, f_hw):
    """stride, pad (t, b, l, r), dilation from the hyperparameters, by the
    documented rules (written here, not taken from cnnext)."""
    stride, dilation = _pair(hp["stride"]), _pair(hp.get("dilation", 1))
    pad = hp.get("pad", 0)
    if pad == "same":
        pad = (*tf_same_padding(in_hw[0], f_hw[0], stride[0], dilation[0]),
               *tf_same_padding(in_hw[1], f_hw[1], stride[1], dilation[1]))
    elif pad == "valid":
        pad = (0, 0, 0, 0)
    elif isinstance(pad, int):
        pad = (pad,) * 4
    elif len(pad) == 2:
        pad = (pad[0], pad[0], pad[1], pad[1])
    return stride, tuple(pad), dilation


# (A shape, W shape, hyperparameters): each a kind of layer of real networks.
CONV_CASES = [
    ((2, 9, 11, 4), (1, 7, 4, 6), {"stride": 1, "pad": (0, 3)}),              # Inception 1x7
    ((2, 11, 9, 4), (7, 1, 4, 6), {"stride": 1, "pad": (3, 0)}),              # and 7x1
    ((2, 10, 10, 3), (4, 4, 3, 8), {"stride": 1, "pad": "same"}),             # SIGNS' 4x4 same
    ((1, 9, 8, 3), (2, 2, 3, 5), {"stride": 2, "pad": "same"}),               # even f, odd n
    ((2, 7, 9, 3), (3, 3, 3, 4), {"stride": (1, 2), "pad": (1, 0, 2, 1)}),    # per-axis, uneven
    ((2, 12, 12, 3), (3, 3, 3, 4), {"stride": 1, "pad": 2, "dilation": 2}),   # DeepLab-style
    ((1, 5, 6, 2), (3, 3, 2, 3), {"stride": 1, "pad": 1, "dilation": (3, 2)}),  # phases > rows
    ((1, 13, 11, 2), (3, 2, 2, 3), {"stride": (2, 1), "pad": "valid", "dilation": (2, 3)}),
    ((2, 8, 8, 6), (3, 3, 3, 4), {"stride": 1, "pad": 1, "groups": 2}),       # grouped
    ((2, 10, 10, 8), (3, 3, 1, 8), {"stride": 1, "pad": 1, "groups": 8}),     # depthwise
    ((2, 11, 11, 8), (3, 3, 1, 8), {"stride": 2, "pad": "same", "groups": 8}),
    ((1, 9, 9, 4), (3, 3, 1, 8), {"stride": 1, "pad": 1, "groups": 4}),       # multiplier 2
    ((2, 6, 7, 5), (1, 1, 5, 7), {"stride": (2, 3), "pad": 0}),               # strided 1x1
    ((1, 8, 8, 4), (3, 3, 2, 6), {"stride": 2, "pad": (0, 1, 0, 1), "dilation": 2,
                                  "groups": 2}),                               # everything
]


def _case_id(case):
    return f"A{case[0]}-W{case[1]}-" + "-".join(f"{k}{v}" for k, v in case[2].items())


def _data(case, dtype, bias="4d", seed=0):
    rng = np.random.default_rng(seed)
    A_shape, W_shape, hp = case
    A = rng.standard_normal(A_shape).astype(dtype)
    W = rng.standard_normal(W_shape).astype(dtype)
    n_C = W_shape[3]
    b = {"4d": rng.standard_normal((1, 1, 1, n_C)), "1d": rng.standard_normal(n_C),
         "none": None}[bias]
    return A, W, None if b is None else b.astype(dtype), hp


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv_matches_the_window_reference(case, dtype):
    A, W, b, hp = _data(case, dtype)
    stride, pad, dilation = explicit_geometry(hp, A.shape[1:3], W.shape[:2])
    groups = hp.get("groups", 1)
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert Z.dtype == dtype
    assert_close(Z, ref_conv_general(A, W, b, stride, pad, dilation, groups))
    assert cache[0] is A and cache[1] is W and cache[2] is b and cache[3] is hp
    dZ = np.random.default_rng(1).standard_normal(Z.shape).astype(dtype)
    dA, dW, db = cnnext.conv_backward(dZ, cache)
    ref_dA, ref_dW, ref_db = ref_conv_general_backward(A, W, dZ, stride, pad, dilation, groups)
    assert_close(dA, ref_dA)
    assert_close(dW, ref_dW)
    assert_close(db, ref_db.reshape(b.shape))


@pytest.mark.parametrize("bias", ["1d", "none"])
def test_bias_of_shape_n_C_or_none(bias):
    case = CONV_CASES[4]
    A, W, b, hp = _data(case, np.float64, bias=bias)
    stride, pad, dilation = explicit_geometry(hp, A.shape[1:3], W.shape[:2])
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert_close(Z, ref_conv_general(A, W, b, stride, pad, dilation, 1))
    _, _, db = cnnext.conv_backward(np.ones_like(Z), cache)
    if b is None:
        assert db is None
    else:
        assert db.shape == b.shape
        assert_close(db, np.full(b.shape, Z.shape[0] * Z.shape[1] * Z.shape[2]))
    # the assignment's geometry takes the new b forms too (the compiled path)
    Z2, cache2 = cnnext.conv_forward(A, W[:3, :3], b, {"stride": 1, "pad": 1})
    assert_close(Z2, ref_conv_general(A, W[:3, :3], b, (1, 1), (1,) * 4, (1, 1), 1))


def test_random_geometries_match_the_reference():
    """Many random shapes and geometries, both dtypes, forward and backward."""
    rng = np.random.default_rng(12)
    for trial in range(40):
        groups = int(rng.choice([1, 1, 2, 3]))
        C, n_C = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 3))
        f = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = rng.choice(np.array(["same", "valid", "four", "two"], dtype=object))
        pad = {"four": tuple(int(p) for p in rng.integers(0, 3, 4)),
               "two": tuple(int(p) for p in rng.integers(0, 3, 2))}.get(pad, pad)
        span = [d * (k - 1) + 1 for d, k in zip(dilation, f)]
        H, Wd = span[0] + int(rng.integers(0, 5)), span[1] + int(rng.integers(0, 5))
        hp = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups}
        dtype = DTYPES[trial % 2]
        A = rng.standard_normal((2, H, Wd, C)).astype(dtype)
        W = rng.standard_normal((*f, C // groups, n_C)).astype(dtype)
        b = rng.standard_normal(n_C).astype(dtype)
        s, p, d = explicit_geometry(hp, (H, Wd), f)
        Z, cache = cnnext.conv_forward(A, W, b, hp)
        assert_close(Z, ref_conv_general(A, W, b, s, p, d, groups))
        dZ = rng.standard_normal(Z.shape).astype(dtype)
        for got, want in zip(cnnext.conv_backward(dZ, cache),
                             ref_conv_general_backward(A, W, dZ, s, p, d, groups)):
            assert_close(got, want)


def test_central_differences_of_a_general_conv():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((1, 6, 7, 4))
    W = rng.standard_normal((2, 3, 2, 4))
    b = rng.standard_normal(4)
    hp = {"stride": (2, 1), "pad": (1, 0, 0, 2), "dilation": (1, 2), "groups": 2}
    R = rng.standard_normal(cnnext.conv_forward(A, W, b, hp)[0].shape)

    def loss(A_, W_, b_):
        return float(np.sum(cnnext.conv_forward(A_, W_, b_, hp)[0] * R))

    dA, dW, db = cnnext.conv_backward(R, cnnext.conv_forward(A, W, b, hp)[1])
    eps = 1e-6
    for arr, grad, args in ((A, dA, lambda x: (x, W, b)), (W, dW, lambda x: (A, x, b)),
                            (b, db, lambda x: (A, W, x))):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            numeric[idx] = (loss(*args(plus)) - loss(*args(minus))) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


# ---- pooling -----------------------------------------------------------------
POOL_CASES = [
    ((2, 9, 9, 3), {"f": 8, "stride": 8, "pad": "same"}),          # SIGNS' 8x8 s8 same
    ((2, 9, 9, 3), {"f": 4, "stride": 4, "pad": "same"}),
    ((2, 8, 8, 3), {"f": 3, "stride": 2, "pad": 1}),                 # ResNet stem pool
    ((2, 8, 9, 2), {"f": (2, 3), "stride": (2, 1)}),                 # rectangular
    ((1, 7, 8, 2), {"f": 3, "stride": 1, "pad": (1, 0, 0, 1)}),      # uneven
    ((2, 9, 9, 2), {"f": 2, "stride": 1, "dilation": 2, "pad": 1}),
    ((1, 6, 6, 2), {"f": 3, "stride": 3, "pad": "valid"}),
]


def _pool_id(case):
    return f"A{case[0]}-" + "-".join(f"{k}{v}" for k, v in case[1].items())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_id)
def test_pool_matches_the_window_reference(case, mode, dtype):
    shape, hp = case
    A = np.random.default_rng(4).standard_normal(shape).astype(dtype)
    f = _pair(hp["f"])
    stride, pad, dilation = explicit_geometry(hp, shape[1:3], f)
    out, cache = cnnext.pool_forward(A, hp, mode)
    assert out.dtype == dtype and cache == (A, hp)
    assert_close(out, ref_pool_general(A, f, stride, pad, dilation, mode))
    dA = np.random.default_rng(5).standard_normal(out.shape).astype(dtype)
    assert_close(cnnext.pool_backward(dA, cache, mode),
                 ref_pool_general_backward(A, dA, f, stride, pad, dilation, mode))


@pytest.mark.parametrize("case", POOL_CASES[:3], ids=_pool_id)
def test_average_pool_can_count_the_padding(case):
    shape, hp = case
    hp = dict(hp, count_include_pad=True)
    A = np.random.default_rng(6).standard_normal(shape)
    f = _pair(hp["f"])
    stride, pad, dilation = explicit_geometry(hp, shape[1:3], f)
    out, cache = cnnext.pool_forward(A, hp, "average")
    assert_close(out, ref_pool_general(A, f, stride, pad, dilation, "average", True))
    dA = np.ones_like(out)
    assert_close(cnnext.pool_backward(dA, cache, "average"),
                 ref_pool_general_backward(A, dA, f, stride, pad, dilation, "average", True))


def test_max_pool_ties_with_padding_keep_the_assignments_rule():
    """Every entry equal to its window's max gets the window's gradient, as
    the seed's mask does; padding (-inf) never ties."""
    A = np.random.default_rng(7).integers(-2, 2, (2, 7, 7, 2)).astype(np.float64)
    hp = {"f": 3, "stride": 2, "pad": "same"}
    out, cache = cnnext.pool_forward(A, hp)
    dA = np.random.default_rng(8).standard_normal(out.shape)
    stride, pad, dilation = explicit_geometry(hp, (7, 7), (3, 3))
    assert_close(cnnext.pool_backward(dA, cache),
                 ref_pool_general_backward(A, dA, (3, 3), stride, pad, dilation, "max"))


# ---- against PyTorch ---------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv_matches_pytorch(case, dtype):
    torch = _torch()
    F = torch.nn.functional
    A, W, b, hp = _data(case, dtype, bias="1d")
    stride, (t, bo, l, r), dilation = explicit_geometry(hp, A.shape[1:3], W.shape[:2])
    At = torch.tensor(A.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    Wt = torch.tensor(W.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    Zt = F.conv2d(F.pad(At, (l, r, t, bo)), Wt, bt, stride=stride, dilation=dilation,
                  groups=hp.get("groups", 1))
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    np.testing.assert_allclose(Z, Zt.detach().numpy().transpose(0, 2, 3, 1),
                               rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4)
    dZ = np.random.default_rng(2).standard_normal(Z.shape).astype(dtype)
    Zt.backward(torch.tensor(dZ.transpose(0, 3, 1, 2).copy()))
    dA, dW, db = cnnext.conv_backward(dZ, cache)
    tol = dict(rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-3 if dtype == np.float32
               else 1e-9)
    np.testing.assert_allclose(dA, At.grad.numpy().transpose(0, 2, 3, 1), **tol)
    np.testing.assert_allclose(dW, Wt.grad.numpy().transpose(2, 3, 1, 0), **tol)
    np.testing.assert_allclose(db, bt.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_id)
def test_pool_matches_pytorch(case, mode, dtype):
    torch = _torch()
    F = torch.nn.functional
    shape, hp = case
    f = _pair(hp["f"])
    stride, (t, bo, l, r), dilation = explicit_geometry(hp, shape[1:3], f)
    if mode == "average" and (dilation != (1, 1) or (t, l) != (bo, r)):
        pytest.skip("PyTorch's avg_pool2d has no dilation and only even padding")
    A = np.random.default_rng(9).standard_normal(shape).astype(dtype)
    At = torch.tensor(A.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    if mode == "max":
        out_t = F.max_pool2d(F.pad(At, (l, r, t, bo), value=-float("inf")), f, stride,
                             dilation=dilation)
    else:
        out_t = F.avg_pool2d(At, f, stride, padding=(t, l), count_include_pad=False)
    out, cache = cnnext.pool_forward(A, hp, mode)
    np.testing.assert_allclose(out, out_t.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5,
                               atol=1e-6)
    dA = np.random.default_rng(10).standard_normal(out.shape).astype(dtype)
    out_t.backward(torch.tensor(dA.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(cnnext.pool_backward(dA, cache, mode),
                               At.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


# ---- validation --------------------------------------------------------------
A4 = np.ones((1, 6, 6, 4))
W4 = np.ones((3, 3, 4, 2))
B4 = np.ones(2)


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": 1, "pad": "full"}), ValueError,
     r"hparameters\['pad'\] must be one of .*'same', 'valid'.*'full'"),
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": 1, "pad": (1, 2, 3)}), ValueError,
     r"pad.*length 3"),
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": (1, 0), "pad": 0}), ValueError,
     r"hparameters\['stride'\]\[1\] must be >= 1; got 0"),
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": (1, 2, 3), "pad": 0}), ValueError,
     r"stride.*pair.*\(1, 2, 3\)"),
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": 1, "pad": 0, "dilation": 1.5}),
     TypeError, r"hparameters\['dilation'\] must be an integer.*1.5"),
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": 1, "pad": 0, "dilation": 3}),
     ValueError, r"filter \(f=3, dilation \(3, 3\): it spans 7 x 7\) is larger"),
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": 1, "pad": 0, "groups": 0}),
     ValueError, r"hparameters\['groups'\] must be >= 1; got 0"),
    (lambda: cnnext.conv_forward(A4, np.ones((3, 3, 2, 3)), np.ones(3),
                                 {"stride": 1, "pad": 0, "groups": 2}),
     ValueError, r"groups'\] = 2 must divide.*W.shape\[3\] = 3"),
    (lambda: cnnext.pool_forward(A4, {"f": 2, "stride": 2, "count_include_pad": True}),
     ValueError, r"count_include_pad.*mode='average' only"),
    (lambda: cnnext.pool_forward(A4, {"f": 2, "stride": 2, "count_include_pad": 1},
                                 "average"),
     TypeError, r"count_include_pad.*True or False"),
    (lambda: cnnext.pool_forward(A4, {"f": 2, "stride": 2, "pad": 2}), ValueError,
     r"cover only padding"),
    (lambda: cnnext.pool_forward(A4, {"f": (2, 7), "stride": 1}), ValueError,
     r"pooling window \(f=\(2, 7\)\) is larger"),
    (lambda: cnnext.conv_forward(A4, W4, B4, {"stride": 1, "pad": (2**40, 0)}), ValueError,
     r"padded input 2199023255558 x 6: more than 2\*\*31 - 1"),
    (lambda: cnnext.pool_forward(A4, {"f": 2, "stride": 1, "pad": (0, 2**40)}), ValueError,
     r"padded input 6 x 2199023255558"),
    (lambda: cnnext.pool_forward(A4, {"f": 3, "stride": 3, "pad": (0, 0, 0, 3)}), ValueError,
     r"cover only padding.*smaller than the window \(3 along it\)"),
], ids=["pad-word", "pad-length", "stride-zero", "stride-triple", "dilation-float",
        "dilation-too-wide", "groups-zero", "groups-not-dividing", "count-pad-max",
        "count-pad-int", "pool-all-padding", "pool-rect-too-wide", "pad-huge",
        "pool-pad-huge", "pool-pad-after-a-window"])
def test_bad_geometry_is_refused_by_name(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_a_stride_past_the_input_takes_one_window():
    A = np.random.default_rng(13).standard_normal((1, 5, 6, 2))
    W = np.ones((2, 2, 2, 1))
    Z, cache = cnnext.conv_forward(A, W, None, {"stride": (2**62, 1), "pad": (0, 1)})
    assert_close(Z, ref_conv_general(A, W, None, (1, 1), (0, 0, 1, 1), (1, 1), 1)[:, :1])
    assert cnnext.conv_backward(np.ones_like(Z), cache)[0].shape == A.shape


# Depthwise layers (one filter per channel) whose shapes reach every path of
# the depthwise kernels: interior tiles and the border pixels, channels past
# the last full vector (8 doubles, 16 floats), windows of more than 64 taps,
# rows and columns whose windows lie wholly in the padding, windows longer
# than the image, strides and dilations per axis.
DEPTHWISE_CASES = [
    ((2, 20, 23, 17), (3, 3), {"stride": 1, "pad": 1}),
    ((1, 19, 30, 40), (3, 3), {"stride": 2, "pad": "same"}),
    ((1, 12, 14, 24), (3, 3), {"stride": (1, 2), "pad": (2, 0, 1, 3), "dilation": (2, 1)}),
    ((1, 13, 12, 9), (9, 9), {"stride": 1, "pad": 4}),                 # 81 taps
    ((1, 6, 7, 5), (3, 3), {"stride": 1, "pad": 5}),                   # rows of padding only
    ((1, 4, 5, 16), (7, 7), {"stride": (1, 3), "pad": 3}),             # window > image
    ((2, 17, 17, 32), (1, 7), {"stride": 1, "pad": (0, 3)}),
    ((1, 10, 31, 3), (5, 3), {"stride": 3, "pad": (2, 1, 0, 2), "dilation": (1, 3)}),
    ((1, 9, 9, 1), (3, 3), {"stride": 1, "pad": 0}),
    ((1, 12, 20, 24), (3, 3), {"stride": 1, "pad": 1}),                # strips, then 2 pixels
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", ["1d", "none"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[str(i) for i in range(len(DEPTHWISE_CASES))])
def test_depthwise_kernels_match_the_reference(case, bias, dtype):
    A_shape, f, hp = case
    C = A_shape[3]
    hp = {**hp, "groups": C}
    A, W, b, _ = _data((A_shape, (*f, 1, C), hp), dtype, bias=bias, seed=5)
    stride, pad, dilation = explicit_geometry(hp, A.shape[1:3], f)
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert_close(Z, ref_conv_general(A, W, b, stride, pad, dilation, C))
    dZ = np.random.default_rng(6).standard_normal(Z.shape).astype(dtype)
    dA, dW, db = cnnext.conv_backward(dZ, cache)
    ref_dA, ref_dW, ref_db = ref_conv_general_backward(A, W, dZ, stride, pad, dilation, C)
    assert_close(dA, ref_dA)
    assert_close(dW, ref_dW)
    if b is None:
        assert db is None
    else:
        assert_close(db, ref_db.reshape(b.shape))


def test_depthwise_weight_gradient_is_the_same_at_any_thread_count():
    rng = np.random.default_rng(14)
    A = rng.standard_normal((6, 20, 20, 32)).astype(np.float32)
    W = rng.standard_normal((3, 3, 1, 32)).astype(np.float32)
    hp = {"stride": 1, "pad": 1, "groups": 32}
    Z, cache = cnnext.conv_forward(A, W, None, hp)
    dZ = rng.standard_normal(Z.shape).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        with cnnext.threads(n):
            results.append((cnnext.conv_forward(A, W, None, hp)[0],
                            *cnnext.conv_backward(dZ, cache)[:2]))
    for later in results[1:]:
        for a, b in zip(results[0], later):
            np.testing.assert_array_equal(a, b)


def test_the_assignments_dicts_and_their_explicit_forms_agree():
    """stride (s, s), pad (p, p, p, p), dilation 1, groups 1 are the
    assignment's geometry: the same results as the plain dict."""
    rng = np.random.default_rng(11)
    A, W, b = rng.standard_normal((2, 7, 7, 3)), rng.standard_normal((3, 3, 3, 4)), \
        rng.standard_normal((1, 1, 1, 4))
    Z, _ = cnnext.conv_forward(A, W, b, {"stride": 2, "pad": 1})
    Z2, _ = cnnext.conv_forward(A, W, b, {"stride": (2, 2), "pad": (1, 1, 1, 1),
                                          "dilation": 1, "groups": 1})
    np.testing.assert_array_equal(Z, Z2)
    P, _ = cnnext.pool_forward(A, {"f": 3, "stride": 2})
    P2, _ = cnnext.pool_forward(A, {"f": (3, 3), "stride": 2, "pad": "valid"})
    np.testing.assert_array_equal(P, P2)
