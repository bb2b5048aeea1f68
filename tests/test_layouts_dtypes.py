"""Memory layouts, untouched inputs, empty batches, dtype rules, and the cases
where the seed's own code fails."""
import copy

import numpy as np
import pytest

import cnnext

# --------------------------------------------------------------------------
# Layouts: every layout of the same values gives identical results
# --------------------------------------------------------------------------


def _transposed_view(x, perm):
    """A view of x's values whose memory is ordered by the axis permutation perm."""
    base = np.ascontiguousarray(np.transpose(x, perm))
    return np.transpose(base, np.argsort(perm))


def _strided_view(x):
    """A view of x's values taking every other element of a bigger array."""
    big = np.full(tuple(2 * n + 1 for n in x.shape), 99, dtype=x.dtype)
    view = big[tuple(slice(1, None, 2) for _ in x.shape)]
    view[...] = x
    return view


def _reversed_view(x):
    """A view of x's values with negative strides on every axis."""
    flip = tuple(slice(None, None, -1) for _ in x.shape)
    return x[flip].copy()[flip]


def _readonly(x):
    y = x.copy()
    y.flags.writeable = False
    return y


def _unaligned(x):
    """x's values in a buffer whose address is not a multiple of the itemsize."""
    raw = np.empty(x.nbytes + 1, dtype=np.uint8)[1:]
    y = raw.view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


LAYOUTS = {
    "C": lambda x: x.copy(),
    "F": np.asfortranarray,
    "transposed": lambda x: _transposed_view(x, tuple(reversed(range(x.ndim)))),
    "permuted": lambda x: _transposed_view(x, (2, 0, 3, 1)[:x.ndim] if x.ndim == 4
                                           else tuple(reversed(range(x.ndim)))),
    "strided": _strided_view,
    "reversed": _reversed_view,
    "readonly": _readonly,
    "unaligned": _unaligned,
    "byteswapped": lambda x: x.astype(x.dtype.newbyteorder("S")),
}


def _inputs(dtype):
    rng = np.random.default_rng(42)
    A = rng.standard_normal((3, 7, 6, 4)).astype(dtype)
    W = rng.standard_normal((3, 3, 4, 5)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, 5)).astype(dtype)
    dZ = rng.standard_normal((3, 4, 3, 5)).astype(dtype)        # stride 2, pad 1
    dA = rng.standard_normal((3, 3, 2, 4)).astype(dtype)        # f 3, stride 2
    return A, W, b, dZ, dA


CONV_HP = {"stride": 2, "pad": 1}
POOL_HP = {"f": 3, "stride": 2}


def _all_results(A, W, b, dZ, dA):
    """Every function of cnnext applied to these arrays, as a dict of arrays."""
    Z, cache = cnnext.conv_forward(A, W, b, CONV_HP)
    dA_c, dW_c, db_c = cnnext.conv_backward(dZ, cache)
    out = {"zero_pad": cnnext.zero_pad(A, 2), "Z": Z, "dA_conv": dA_c, "dW": dW_c,
           "db": db_c,
           "single": np.asarray(cnnext.conv_single_step(A[0, :3, :3, :], W[..., 0], b[..., 0])),
           "mask": cnnext.create_mask_from_window(A[1, :3, :3, 2]),
           "dist": cnnext.distribute_value(b[..., 1], (2, 3))}
    for mode in ("max", "average"):
        P, pcache = cnnext.pool_forward(A, POOL_HP, mode=mode)
        out["pool_" + mode] = P
        out["pool_back_" + mode] = cnnext.pool_backward(dA, pcache, mode=mode)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [k for k in LAYOUTS if k != "C"])
def test_layouts_give_identical_results(layout, dtype):
    arrays = _inputs(dtype)
    expected = _all_results(*arrays)
    views = [LAYOUTS[layout](x) for x in arrays]
    for v, x in zip(views, arrays):
        np.testing.assert_array_equal(v, x)
    if layout in ("F", "transposed", "permuted", "strided", "reversed"):
        assert not views[0].flags.c_contiguous
    got = _all_results(*views)
    assert got.keys() == expected.keys()
    for key in expected:
        # byte order aside (zero_pad keeps its input's dtype, byte order too)
        assert got[key].dtype.newbyteorder("=") == expected[key].dtype, key
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_list_inputs_work(ref, assert_close):
    A, W, b, dZ, _ = _inputs(np.float64)
    Z, cache = cnnext.conv_forward(A.tolist(), W.tolist(), b.tolist(), CONV_HP)
    assert_close(Z, ref.conv_forward(A, W, b, CONV_HP))
    for got, want in zip(cnnext.conv_backward(dZ.tolist(), cache),
                         ref.conv_backward(dZ, (A, W, b, CONV_HP))):
        assert_close(got, want)
    P, pcache = cnnext.pool_forward(A.tolist(), POOL_HP)
    assert_close(P, ref.pool_forward(A, POOL_HP))


# --------------------------------------------------------------------------
# Inputs are never modified; outputs never alias inputs
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_inputs_never_modified(dtype):
    arrays = _inputs(np.float64)
    arrays = tuple((x * 3).astype(dtype) for x in arrays)
    A, W, b, dZ, dA = arrays
    conv_hp, pool_hp = dict(CONV_HP), dict(POOL_HP)
    before = copy.deepcopy((arrays, conv_hp, pool_hp))

    Z, cache = cnnext.conv_forward(A, W, b, conv_hp)
    cnnext.conv_backward(dZ, cache)
    cnnext.conv_backward(Z, cache)
    for mode in ("max", "average"):
        P, pcache = cnnext.pool_forward(A, pool_hp, mode=mode)
        cnnext.pool_backward(dA, pcache, mode=mode)
        cnnext.pool_backward(P, pcache, mode=mode)
    cnnext.zero_pad(A, 0)
    cnnext.zero_pad(A, 1)
    cnnext.conv_single_step(A[0, :3, :3, :], W[..., 0], b[..., 0])
    cnnext.create_mask_from_window(A[0, :2, :2, 0])
    cnnext.distribute_value(b[0, 0, 0, 0], (2, 2))

    for x, x0 in zip(arrays, before[0]):
        assert x.dtype == x0.dtype
        np.testing.assert_array_equal(x, x0)
    assert conv_hp == before[1] and pool_hp == before[2]


def test_outputs_do_not_alias_inputs():
    A, W, b, dZ, dA = _inputs(np.float64)
    Z, cache = cnnext.conv_forward(A, W, b, CONV_HP)
    P, pcache = cnnext.pool_forward(A, {"f": 1, "stride": 1}, mode="max")
    outs = [cnnext.zero_pad(A, 0), Z, P, *cnnext.conv_backward(dZ, cache),
            cnnext.pool_backward(P, pcache, mode="max"),
            cnnext.create_mask_from_window(A)]
    for out in outs:
        for x in (A, W, b, dZ, dA):
            assert not np.shares_memory(out, x)
    # zero_pad with pad 0 is a fresh copy: writing to it leaves X alone
    X = A.copy()
    X_pad = cnnext.zero_pad(X, 0)
    X_pad[...] = 0
    np.testing.assert_array_equal(X, A)


# --------------------------------------------------------------------------
# m = 0: an empty batch gives empty results of the right shapes
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch(dtype):
    A = np.zeros((0, 7, 6, 4), dtype)
    W = np.ones((3, 3, 4, 5), dtype)
    b = np.ones((1, 1, 1, 5), dtype)

    X_pad = cnnext.zero_pad(A, 2)
    assert X_pad.shape == (0, 11, 10, 4) and X_pad.dtype == dtype

    Z, cache = cnnext.conv_forward(A, W, b, CONV_HP)
    assert Z.shape == (0, 4, 3, 5) and Z.dtype == dtype
    dA_prev, dW, db = cnnext.conv_backward(np.zeros((0, 4, 3, 5), dtype), cache)
    assert dA_prev.shape == A.shape and dA_prev.dtype == dtype
    assert dW.shape == W.shape and dW.dtype == dtype
    assert db.shape == b.shape and db.dtype == dtype
    np.testing.assert_array_equal(dW, 0)          # sums over no example
    np.testing.assert_array_equal(db, 0)

    for mode in ("max", "average"):
        P, pcache = cnnext.pool_forward(A, POOL_HP, mode=mode)
        assert P.shape == (0, 3, 2, 4) and P.dtype == dtype
        dP = cnnext.pool_backward(np.zeros((0, 3, 2, 4), dtype), pcache, mode=mode)
        assert dP.shape == A.shape and dP.dtype == dtype


# --------------------------------------------------------------------------
# dtype rules
# --------------------------------------------------------------------------

def _float_inputs():
    rng = np.random.default_rng(7)
    return (rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((2, 2, 3, 4)),
            rng.standard_normal((1, 1, 1, 4)))


def _check_all_dtypes(A, W, b, want, ref, assert_close):
    """Every function returns ``want`` and agrees with the reference."""
    hp = {"stride": 1, "pad": 1}
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert Z.dtype == want
    assert_close(Z, ref.conv_forward(A, W, b, hp))
    dZ = np.ones(Z.shape, dtype=A.dtype)
    for got, exp in zip(cnnext.conv_backward(dZ, cache), ref.conv_backward(dZ, (A, W, b, hp))):
        assert got.dtype == want
        assert_close(got, exp)
    for mode in ("max", "average"):
        P, pcache = cnnext.pool_forward(A, {"f": 2, "stride": 2}, mode=mode)
        assert P.dtype == want
        assert_close(P, ref.pool_forward(A, {"f": 2, "stride": 2}, mode))
        dP = cnnext.pool_backward(np.ones(P.shape, A.dtype), pcache, mode=mode)
        assert dP.dtype == want
        assert_close(dP, ref.pool_backward(np.ones(P.shape), (A, {"f": 2, "stride": 2}), mode))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_kept(dtype, ref, assert_close):
    A, W, b = (x.astype(dtype) for x in _float_inputs())
    _check_all_dtypes(A, W, b, np.dtype(dtype), ref, assert_close)
    s = cnnext.conv_single_step(A[0, :2, :2, :], W[..., 0], b[..., 0].reshape(1, 1, 1))
    assert np.asarray(s).dtype == dtype
    assert cnnext.distribute_value(dtype(2), (2, 2)).dtype == dtype


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.bool_])
def test_integer_and_bool_computed_in_float64(dtype, ref, assert_close):
    rng = np.random.default_rng(8)
    hi = 2 if dtype is np.bool_ else 5
    A = rng.integers(0, hi, size=(2, 6, 5, 3)).astype(dtype)
    W = rng.integers(0, hi, size=(2, 2, 3, 4)).astype(dtype)
    b = rng.integers(0, hi, size=(1, 1, 1, 4)).astype(dtype)
    _check_all_dtypes(A, W, b, np.dtype(np.float64), ref, assert_close)
    # integer sums that would overflow int8/uint8 are computed exactly in float64
    big = np.full((1, 4, 4, 8), 100, dtype=dtype) if dtype is not np.bool_ else \
        np.ones((1, 4, 4, 8), dtype=dtype)
    Z, _ = cnnext.conv_forward(big, np.ones((4, 4, 8, 1), dtype), np.zeros((1, 1, 1, 1), dtype),
                               {"stride": 1, "pad": 0})
    assert Z.dtype == np.float64
    assert Z[0, 0, 0, 0] == float(big.astype(np.float64).sum())
    s = cnnext.conv_single_step(A[0, :2, :2, :], W[..., 0], b[..., 0].reshape(1, 1, 1))
    assert np.asarray(s).dtype == np.float64
    assert s == pytest.approx(float(ref.conv_single_step(A[0, :2, :2, :], W[..., 0],
                                                         b[..., 0])), rel=1e-12)
    assert cnnext.distribute_value(dtype(1), (2, 2)).dtype == np.float64
    mask = cnnext.create_mask_from_window(A[0, :3, :3, 0])
    np.testing.assert_array_equal(mask, ref.create_mask_from_window(A[0, :3, :3, 0]))


MIXED = [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.int64),
         (np.float32, np.int8), (np.float32, np.bool_), (np.int32, np.float32),
         (np.uint8, np.float64), (np.int16, np.float32)]


def _expected_dtype(*arrays):
    dt = np.result_type(*arrays)
    return np.dtype(np.float64) if dt.kind in "biu" else dt


@pytest.mark.parametrize("dt_a, dt_w", MIXED)
def test_mixed_dtypes_follow_result_type(dt_a, dt_w, ref, assert_close):
    A, W, b = _float_inputs()
    A = (A * 3).astype(dt_a)
    W = (W * 3).astype(dt_w)
    b = (b * 3).astype(dt_w)
    want = _expected_dtype(A, W, b)
    hp = {"stride": 2, "pad": 1}
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert Z.dtype == want
    assert_close(Z, ref.conv_forward(A, W, b, hp), dtype=want)
    # dZ's dtype takes part too
    dZ = np.ones(Z.shape, dtype=dt_w)
    want_b = _expected_dtype(A, W, b, dZ)
    for got, exp in zip(cnnext.conv_backward(dZ, cache), ref.conv_backward(dZ, (A, W, b, hp))):
        assert got.dtype == want_b
        assert_close(got, exp, dtype=want_b)
    # pooling: A_prev and dA
    P, pcache = cnnext.pool_forward(A, {"f": 2, "stride": 1}, mode="average")
    dP = np.ones(P.shape, dtype=dt_w)
    got = cnnext.pool_backward(dP, pcache, mode="average")
    assert got.dtype == _expected_dtype(A, dP)
    # conv_single_step: the window and the filter
    s = cnnext.conv_single_step(A[0, :2, :2, :], W[..., 0], b[..., 0])
    assert np.asarray(s).dtype == _expected_dtype(A, W, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("number", [0.5, 2, -1.25])
def test_conv_single_step_python_number_bias_keeps_dtype(dtype, number):
    # A Python number is "weak" in np.result_type (NEP 50): float32 arrays
    # with b=0.5 compute, and return, float32, as float32 in/float32 out says.
    a = np.full((2, 2, 3), 0.25, dtype=dtype)
    W = np.full((2, 2, 3), 2.0, dtype=dtype)
    s = cnnext.conv_single_step(a, W, number)
    assert np.asarray(s).dtype == np.result_type(a, W, number) == dtype
    assert float(s) == 6.0 + number


# --------------------------------------------------------------------------
# Where the seed's own code fails, cnnext does the right thing
# --------------------------------------------------------------------------

@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv_backward_pad_zero(stride, ref, assert_close):
    # The seed crops with da_prev_pad[pad:-pad], an empty slice when pad = 0.
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    hp = {"pad": 0, "stride": stride}
    Z, cache = cnnext.conv_forward(A_prev, W, b, hp)
    assert_close(Z, ref.conv_forward(A_prev, W, b, hp))
    dA, dW, db = cnnext.conv_backward(Z, cache)
    assert dA.shape == A_prev.shape
    want = ref.conv_backward(Z, (A_prev, W, b, hp))
    for got, exp in zip((dA, dW, db), want):
        assert_close(got, exp)
    assert np.abs(dA).sum() > 0


@pytest.mark.parametrize("b_form", ["(1,1,1) array", "0-d array", "float", "int",
                                    "numpy scalar", "(1,) array"])
def test_conv_single_step_bias_forms(b_form):
    # The seed's float(b) raises on a (1,1,1) array with numpy >= 2.4.
    np.random.seed(1)
    a_slice_prev = np.random.randn(4, 4, 3)
    W = np.random.randn(4, 4, 3)
    b = np.random.randn(1, 1, 1)
    value = b.reshape(()).item()
    forms = {"(1,1,1) array": b, "0-d array": np.array(value), "float": value,
             "int": 2, "numpy scalar": np.float64(value), "(1,) array": b.reshape(1)}
    expected = -6.99908945068 if b_form != "int" else -6.99908945068 - value + 2
    Z = cnnext.conv_single_step(a_slice_prev, W, forms[b_form])
    assert np.ndim(Z) == 0
    assert np.asarray(Z).dtype == np.float64
    assert float(Z) == pytest.approx(expected, abs=1e-10)


def test_numpy_integer_hyperparameters(ref, assert_close):
    A, W, b = _float_inputs()
    hp = {"stride": np.int64(2), "pad": np.int32(1)}
    Z, cache = cnnext.conv_forward(A, W, b, hp)
    assert_close(Z, ref.conv_forward(A, W, b, {"stride": 2, "pad": 1}))
    P, _ = cnnext.pool_forward(A, {"f": np.uint8(2), "stride": np.int16(1)})
    assert_close(P, ref.pool_forward(A, {"f": 2, "stride": 1}))
