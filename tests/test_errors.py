"""Bad input gives a clear ValueError/TypeError, never a crash.

Every message must name the argument, what was expected and what came; the
``match`` patterns below check all three. NaN and inf are not bad input: they
propagate as numpy arithmetic propagates them (checked against the numpy
reference).
"""
import re

import numpy as np
import pytest

import cnnext


def _conv_args(m=2, H=5, Wd=5, C=3, f=3, n_C=4, stride=1, pad=1):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((m, H, Wd, C)), rng.standard_normal((f, f, C, n_C)),
            rng.standard_normal((1, 1, 1, n_C)), {"stride": stride, "pad": pad})


def _pool_args(m=2, H=5, Wd=5, C=3, f=2, stride=1):
    rng = np.random.default_rng(1)
    return rng.standard_normal((m, H, Wd, C)), {"f": f, "stride": stride}


A, W, B, HP = _conv_args()                 # Z has shape (2, 5, 5, 4)
PA, PHP = _pool_args()                     # pooled output has shape (2, 4, 4, 3)
CONV_CACHE = (A, W, B, HP)
POOL_CACHE = (PA, PHP)
DZ = np.ones((2, 5, 5, 4))
DA = np.ones((2, 4, 4, 3))


def s(shape):
    """A regex matching a shape tuple as Python prints it."""
    return re.escape(str(tuple(shape)))


def _case(id_, fn, exc, pattern):
    return pytest.param(fn, exc, pattern, id=id_)


def _hp(**kw):
    return dict(HP, **kw)


def _php(**kw):
    return dict(PHP, **kw)


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


BAD_INPUT = [
    # ---- wrong number of dimensions --------------------------------------
    _case("zero_pad-X-3d", lambda: cnnext.zero_pad(np.ones((4, 3, 3)), 1),
          ValueError, r"X.*4-D.*3-D.*" + s((4, 3, 3))),
    _case("zero_pad-X-5d", lambda: cnnext.zero_pad(np.ones((1, 4, 3, 3, 1)), 1),
          ValueError, r"X.*4-D.*5-D"),
    _case("conv_single_step-a-2d",
          lambda: cnnext.conv_single_step(np.ones((4, 4)), np.ones((4, 4)), 0.0),
          ValueError, r"a_slice_prev.*3-D.*2-D.*" + s((4, 4))),
    _case("conv_forward-A_prev-3d", lambda: cnnext.conv_forward(A[0], W, B, HP),
          ValueError, r"A_prev.*4-D.*3-D.*" + s(A[0].shape)),
    _case("conv_forward-W-3d", lambda: cnnext.conv_forward(A, W[..., 0], B, HP),
          ValueError, r"W.*4-D.*3-D.*" + s(W[..., 0].shape)),
    _case("pool_forward-A_prev-3d", lambda: cnnext.pool_forward(PA[0], PHP),
          ValueError, r"A_prev.*4-D.*3-D.*" + s(PA[0].shape)),
    _case("pool_forward-A_prev-2d", lambda: cnnext.pool_forward(np.ones((5, 5)), PHP),
          ValueError, r"A_prev.*4-D.*2-D"),
    _case("conv_backward-dZ-3d", lambda: cnnext.conv_backward(DZ[0], CONV_CACHE),
          ValueError, r"dZ.*" + s(DZ.shape) + r".*" + s(DZ[0].shape)),
    _case("pool_backward-dA-3d", lambda: cnnext.pool_backward(DA[0], POOL_CACHE),
          ValueError, r"dA.*" + s(DA.shape) + r".*" + s(DA[0].shape)),

    # ---- conv_single_step shapes and b -------------------------------------
    _case("conv_single_step-W-shape",
          lambda: cnnext.conv_single_step(np.ones((4, 4, 3)), np.ones((4, 4, 2)), 0.0),
          ValueError, r"W.*" + s((4, 4, 3)) + r".*" + s((4, 4, 2))),
    _case("conv_single_step-b-size",
          lambda: cnnext.conv_single_step(np.ones((2, 2, 1)), np.ones((2, 2, 1)), np.ones(2)),
          ValueError, r"b.*\(1, 1, 1\).*" + s((2,))),

    # ---- channels, filters, biases ------------------------------------------
    _case("conv_forward-channels",
          lambda: cnnext.conv_forward(A, np.ones((3, 3, 2, 4)), B, HP),
          ValueError, r"W.*2.*A_prev.*3"),
    _case("conv_forward-groups-channels",
          lambda: cnnext.conv_forward(A, np.ones((2, 3, 3, 3)), np.ones(3), dict(HP, groups=3)),
          ValueError, r"W has 3 input channels per filter.*groups = 3.*must have 1"),
    _case("conv_forward-groups-not-dividing",
          lambda: cnnext.conv_forward(A, np.ones((3, 3, 1, 4)), B, dict(HP, groups=3)),
          ValueError, r"groups'\] = 3 must divide.*\(W.shape\[3\] = 4\)"),
    _case("conv_forward-W-zero-size",
          lambda: cnnext.conv_forward(A, np.ones((0, 0, 3, 4)), B, HP),
          ValueError, r"W.*f_h, f_w >= 1.*" + s((0, 0, 3, 4))),
    _case("conv_forward-b-1d", lambda: cnnext.conv_forward(A, W, np.ones(3), HP),
          ValueError, r"b.*\(1, 1, 1, n_C\).*\(1, 1, 1, 4\) or \(4,\).*" + s((3,))),
    _case("conv_forward-b-wrong-n_C",
          lambda: cnnext.conv_forward(A, W, np.ones((1, 1, 1, 5)), HP),
          ValueError, r"b.*\(1, 1, 1, 4\).*" + s((1, 1, 1, 5))),
    _case("conv_forward-b-3d",
          lambda: cnnext.conv_forward(A, W, np.ones((1, 1, 4)), HP),
          ValueError, r"b.*\(1, 1, 1, 4\).*" + s((1, 1, 4))),

    # ---- hyperparameters ---------------------------------------------------
    _case("conv_forward-hp-not-dict", lambda: cnnext.conv_forward(A, W, B, [1, 1]),
          TypeError, r"hparameters.*dict.*'stride'.*'pad'.*list"),
    _case("conv_forward-missing-stride",
          lambda: cnnext.conv_forward(A, W, B, _without(HP, "stride")),
          ValueError, r"hparameters.*'stride'.*\['pad'\]"),
    _case("conv_forward-missing-pad",
          lambda: cnnext.conv_forward(A, W, B, _without(HP, "pad")),
          ValueError, r"hparameters.*'pad'.*\['stride'\]"),
    _case("conv_forward-stride-float", lambda: cnnext.conv_forward(A, W, B, _hp(stride=2.0)),
          TypeError, r"hparameters\['stride'\].*integer.*2\.0"),
    _case("conv_forward-stride-str", lambda: cnnext.conv_forward(A, W, B, _hp(stride="2")),
          TypeError, r"hparameters\['stride'\].*integer.*'2'"),
    _case("conv_forward-stride-None", lambda: cnnext.conv_forward(A, W, B, _hp(stride=None)),
          TypeError, r"hparameters\['stride'\].*integer.*None"),
    _case("conv_forward-pad-float", lambda: cnnext.conv_forward(A, W, B, _hp(pad=1.5)),
          TypeError, r"hparameters\['pad'\].*integer.*1\.5"),
    _case("conv_forward-stride-0", lambda: cnnext.conv_forward(A, W, B, _hp(stride=0)),
          ValueError, r"hparameters\['stride'\].*>= 1.*0"),
    _case("conv_forward-stride-negative",
          lambda: cnnext.conv_forward(A, W, B, _hp(stride=-2)),
          ValueError, r"hparameters\['stride'\].*>= 1.*-2"),
    _case("conv_forward-pad-negative", lambda: cnnext.conv_forward(A, W, B, _hp(pad=-1)),
          ValueError, r"hparameters\['pad'\].*>= 0.*-1"),
    _case("pool_forward-hp-not-dict", lambda: cnnext.pool_forward(PA, (2, 1)),
          TypeError, r"hparameters.*dict.*'f'.*'stride'.*tuple"),
    _case("pool_forward-missing-f", lambda: cnnext.pool_forward(PA, _without(PHP, "f")),
          ValueError, r"hparameters.*'f'.*\['stride'\]"),
    _case("pool_forward-missing-stride",
          lambda: cnnext.pool_forward(PA, _without(PHP, "stride")),
          ValueError, r"hparameters.*'stride'.*\['f'\]"),
    _case("pool_forward-f-float", lambda: cnnext.pool_forward(PA, _php(f=2.0)),
          TypeError, r"hparameters\['f'\].*integer.*2\.0"),
    _case("pool_forward-stride-str", lambda: cnnext.pool_forward(PA, _php(stride="1")),
          TypeError, r"hparameters\['stride'\].*integer.*'1'"),
    _case("pool_forward-f-0", lambda: cnnext.pool_forward(PA, _php(f=0)),
          ValueError, r"hparameters\['f'\].*>= 1.*0"),
    _case("pool_forward-f-negative", lambda: cnnext.pool_forward(PA, _php(f=-3)),
          ValueError, r"hparameters\['f'\].*>= 1.*-3"),
    _case("pool_forward-stride-0", lambda: cnnext.pool_forward(PA, _php(stride=0)),
          ValueError, r"hparameters\['stride'\].*>= 1.*0"),
    _case("zero_pad-pad-negative", lambda: cnnext.zero_pad(A, -1),
          ValueError, r"pad.*>= 0.*-1"),
    _case("zero_pad-pad-float", lambda: cnnext.zero_pad(A, 1.5),
          TypeError, r"pad.*integer.*1\.5"),
    _case("zero_pad-pad-str", lambda: cnnext.zero_pad(A, "1"),
          TypeError, r"pad.*integer.*'1'"),

    # ---- windows larger than the (padded) input -----------------------------
    _case("conv_forward-filter-too-large",
          lambda: cnnext.conv_forward(np.ones((1, 2, 2, 1)), np.ones((5, 5, 1, 1)),
                                      np.ones((1, 1, 1, 1)), {"stride": 1, "pad": 1}),
          ValueError, r"filter.*f=5.*padded.*4"),
    _case("conv_forward-filter-too-wide",
          lambda: cnnext.conv_forward(np.ones((1, 6, 2, 1)), np.ones((3, 3, 1, 1)),
                                      np.ones((1, 1, 1, 1)), {"stride": 1, "pad": 0}),
          ValueError, r"filter.*f=3.*padded.*2"),
    _case("pool_forward-window-too-large",
          lambda: cnnext.pool_forward(np.ones((1, 3, 3, 1)), {"f": 4, "stride": 1}),
          ValueError, r"window.*f=4.*input.*3"),
    _case("pool_forward-window-too-wide",
          lambda: cnnext.pool_forward(np.ones((1, 5, 2, 1)), {"f": 3, "stride": 1}),
          ValueError, r"window.*f=3.*input.*2"),

    # ---- unknown keys: an option cnnext does not have is never ignored -------
    _case("conv_forward-misspelt-dilation",
          lambda: cnnext.conv_forward(A, W, B, {"stride": 1, "pad": 1, "dilatation": 2}),
          ValueError, r"unknown key.*'dilatation'.*conv_forward.*'stride', 'pad', "
                      r"'dilation', 'groups'"),
    _case("conv_forward-misspelt-stride",
          lambda: cnnext.conv_forward(A, W, B, {"stride": 1, "pad": 1, "strides": 2}),
          ValueError, r"unknown key.*'strides'"),
    _case("pool_forward-unknown-padding",
          lambda: cnnext.pool_forward(PA, {"f": 2, "stride": 2, "padding": 1}),
          ValueError, r"unknown key.*'padding'.*pool_forward.*'f', 'stride', 'pad'"),
    _case("conv_backward-cache-unknown-key",
          lambda: cnnext.conv_backward(DZ, (A, W, B, dict(HP, group=1))),
          ValueError, r"unknown key.*'group'"),

    # ---- mode ---------------------------------------------------------------
    _case("pool_forward-mode-avg", lambda: cnnext.pool_forward(PA, PHP, mode="avg"),
          ValueError, r"mode.*'max'.*'average'.*'avg'"),
    _case("pool_forward-mode-MAX", lambda: cnnext.pool_forward(PA, PHP, mode="MAX"),
          ValueError, r"mode.*'max'.*'average'.*'MAX'"),
    _case("pool_forward-mode-None", lambda: cnnext.pool_forward(PA, PHP, mode=None),
          TypeError, r"mode.*'max'.*'average'.*None"),
    _case("pool_backward-mode-mean", lambda: cnnext.pool_backward(DA, POOL_CACHE, mode="mean"),
          ValueError, r"mode.*'max'.*'average'.*'mean'"),

    # ---- gradients of the wrong shape ----------------------------------------
    _case("conv_backward-dZ-shape",
          lambda: cnnext.conv_backward(np.ones((2, 5, 5, 3)), CONV_CACHE),
          ValueError, r"dZ.*" + s(DZ.shape) + r".*" + s((2, 5, 5, 3))),
    _case("conv_backward-dZ-batch",
          lambda: cnnext.conv_backward(np.ones((3, 5, 5, 4)), CONV_CACHE),
          ValueError, r"dZ.*" + s(DZ.shape) + r".*" + s((3, 5, 5, 4))),
    _case("conv_backward-dZ-transposed",
          lambda: cnnext.conv_backward(np.ones((2, 5, 4, 5)), CONV_CACHE),
          ValueError, r"dZ.*" + s(DZ.shape) + r".*" + s((2, 5, 4, 5))),
    _case("pool_backward-dA-shape",
          lambda: cnnext.pool_backward(np.ones(PA.shape), POOL_CACHE),
          ValueError, r"dA.*" + s(DA.shape) + r".*" + s(PA.shape)),
    _case("pool_backward-dA-average-shape",
          lambda: cnnext.pool_backward(np.ones((2, 4, 3, 3)), POOL_CACHE, mode="average"),
          ValueError, r"dA.*" + s(DA.shape) + r".*" + s((2, 4, 3, 3))),

    # ---- malformed caches ---------------------------------------------------
    _case("conv_backward-cache-None", lambda: cnnext.conv_backward(DZ, None),
          ValueError, r"cache.*\(A_prev, W, b, hparameters\).*conv_forward.*NoneType"),
    _case("conv_backward-cache-dict", lambda: cnnext.conv_backward(DZ, {"A_prev": A}),
          ValueError, r"cache.*\(A_prev, W, b, hparameters\).*dict"),
    _case("conv_backward-cache-short", lambda: cnnext.conv_backward(DZ, CONV_CACHE[:3]),
          ValueError, r"cache.*\(A_prev, W, b, hparameters\).*length 3"),
    _case("conv_backward-pool-cache", lambda: cnnext.conv_backward(DZ, POOL_CACHE),
          ValueError, r"cache.*conv_forward.*length 2"),
    _case("conv_backward-cache-hp-not-dict",
          lambda: cnnext.conv_backward(DZ, (A, W, B, None)),
          TypeError, r"hparameters.*dict.*NoneType"),
    _case("conv_backward-cache-hp-missing-pad",
          lambda: cnnext.conv_backward(DZ, (A, W, B, {"stride": 1})),
          ValueError, r"hparameters.*'pad'"),
    _case("conv_backward-cache-A-3d",
          lambda: cnnext.conv_backward(DZ, (A[0], W, B, HP)),
          ValueError, r"A_prev.*4-D.*3-D"),
    _case("conv_backward-cache-channels",
          lambda: cnnext.conv_backward(DZ, (A[..., :2], W, B, HP)),
          ValueError, r"W.*3.*A_prev.*2"),
    _case("pool_backward-cache-None", lambda: cnnext.pool_backward(DA, None),
          ValueError, r"cache.*\(A_prev, hparameters\).*pool_forward.*NoneType"),
    _case("pool_backward-conv-cache", lambda: cnnext.pool_backward(DA, CONV_CACHE),
          ValueError, r"cache.*\(A_prev, hparameters\).*pool_forward.*length 4"),
    _case("pool_backward-cache-array", lambda: cnnext.pool_backward(DA, PA),
          ValueError, r"cache.*pool_forward.*ndarray"),
    _case("pool_backward-cache-hp-missing-f",
          lambda: cnnext.pool_backward(DA, (PA, {"stride": 1})),
          ValueError, r"hparameters.*'f'"),
    _case("pool_backward-cache-hp-bad-stride",
          lambda: cnnext.pool_backward(DA, (PA, {"f": 2, "stride": 0})),
          ValueError, r"hparameters\['stride'\].*>= 1.*0"),

    # ---- small helpers ------------------------------------------------------
    _case("create_mask-empty", lambda: cnnext.create_mask_from_window(np.ones((0, 2))),
          ValueError, r"x.*empty.*" + s((0, 2))),
    _case("distribute_value-dz-array",
          lambda: cnnext.distribute_value(np.ones(3), (2, 2)),
          ValueError, r"dz.*single.*" + s((3,))),
    _case("distribute_value-shape-1", lambda: cnnext.distribute_value(1.0, (2,)),
          TypeError, r"shape.*two integers.*\(2,\)"),
    _case("distribute_value-shape-float", lambda: cnnext.distribute_value(1.0, (2.0, 2)),
          TypeError, r"shape.*two integers.*\(2\.0, 2\)"),
    _case("distribute_value-shape-zero", lambda: cnnext.distribute_value(1.0, (0, 2)),
          ValueError, r"shape.*>= 1.*\(0, 2\)"),
]


@pytest.mark.parametrize("fn, exc, pattern", BAD_INPUT)
def test_bad_input_message(fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn()


# --------------------------------------------------------------------------
# complex, object and string dtypes are refused with TypeError
# --------------------------------------------------------------------------

def _bad_array(shape, kind):
    ones = np.ones(shape)
    return {"complex128": ones.astype(np.complex128), "complex64": ones.astype(np.complex64),
            "object": ones.astype(object), "str": np.full(shape, "1"),
            "bytes": np.full(shape, b"1")}[kind]


def _calls_taking(arg, make):
    """Every call that receives the argument named ``arg``, built as make(shape)."""
    a4, w4, b4, hp = _conv_args(m=1, H=4, Wd=4, C=2, f=2, n_C=3, stride=1, pad=0)
    p4, php = _pool_args(m=1, H=4, Wd=4, C=2, f=2, stride=2)
    dz = np.ones((1, 3, 3, 3))
    da = np.ones((1, 2, 2, 2))
    win = np.ones((2, 2, 2))
    return {
        "X": [lambda: cnnext.zero_pad(make((1, 4, 4, 2)), 1)],
        "a_slice_prev": [lambda: cnnext.conv_single_step(make((2, 2, 2)), win, 0.0)],
        "A_prev": [lambda: cnnext.conv_forward(make((1, 4, 4, 2)), w4, b4, hp),
                   lambda: cnnext.pool_forward(make((1, 4, 4, 2)), php),
                   lambda: cnnext.conv_backward(dz, (make((1, 4, 4, 2)), w4, b4, hp)),
                   lambda: cnnext.pool_backward(da, (make((1, 4, 4, 2)), php))],
        "W": [lambda: cnnext.conv_forward(a4, make((2, 2, 2, 3)), b4, hp),
              lambda: cnnext.conv_backward(dz, (a4, make((2, 2, 2, 3)), b4, hp)),
              lambda: cnnext.conv_single_step(win, make((2, 2, 2)), 0.0)],
        "b": [lambda: cnnext.conv_forward(a4, w4, make((1, 1, 1, 3)), hp),
              lambda: cnnext.conv_single_step(win, win, make((1, 1, 1)))],
        "dZ": [lambda: cnnext.conv_backward(make((1, 3, 3, 3)), (a4, w4, b4, hp))],
        "dA": [lambda: cnnext.pool_backward(make((1, 2, 2, 2)), (p4, php))],
        "x": [lambda: cnnext.create_mask_from_window(make((2, 2)))],
        "dz": [lambda: cnnext.distribute_value(make(()), (2, 2))],
    }[arg]


@pytest.mark.parametrize("kind", ["complex128", "complex64", "object", "str", "bytes"])
@pytest.mark.parametrize("arg", ["X", "a_slice_prev", "A_prev", "W", "b", "dZ", "dA",
                                 "x", "dz"])
def test_bad_dtype_refused(arg, kind):
    dtype = re.escape(str(_bad_array((), kind).dtype))
    calls = _calls_taking(arg, lambda shape: _bad_array(shape, kind))
    assert calls
    for call in calls:
        with pytest.raises(TypeError, match=rf"\b{arg}\b.*{dtype}"):
            call()


def test_ragged_input_refused():
    with pytest.raises(TypeError, match=r"A_prev.*list"):
        cnnext.pool_forward([[1, 2], [3]], {"f": 1, "stride": 1})


# --------------------------------------------------------------------------
# NaN and inf are not errors: they propagate as numpy arithmetic does
# --------------------------------------------------------------------------

def _sprinkle(x, rng, n_nan, n_inf):
    x = x.copy()
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, n_nan + n_inf, replace=False)
    flat[idx[:n_nan]] = np.nan
    flat[idx[n_nan:]] = np.inf * rng.choice([-1.0, 1.0], n_inf)
    return x


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("pad", [0, 1])
def test_conv_nan_inf_propagate(pad, ref, assert_close):
    rng = np.random.default_rng(21)
    A0, W0, b0, hp = _conv_args(m=2, H=7, Wd=6, C=2, f=3, n_C=3, stride=2, pad=pad)
    cases = [
        (_sprinkle(A0, rng, 2, 2), W0, b0),
        (A0, _sprinkle(W0, rng, 1, 1), b0),      # 0 * inf in the padding -> nan
        (A0, W0, _sprinkle(b0, rng, 1, 1)),
    ]
    for A_, W_, b_ in cases:
        Z, cache = cnnext.conv_forward(A_, W_, b_, hp)
        want = ref.conv_forward(A_, W_, b_, hp)
        assert not np.all(np.isfinite(want))
        assert_close(Z, want)
        dZ = _sprinkle(rng.standard_normal(Z.shape), rng, 1, 1)
        for got, exp in zip(cnnext.conv_backward(dZ, cache),
                            ref.conv_backward(dZ, (A_, W_, b_, hp))):
            assert_close(got, exp)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("mode", ["max", "average"])
def test_pool_nan_inf_propagate(mode, ref, assert_close):
    rng = np.random.default_rng(22)
    A0, hp = _pool_args(m=2, H=8, Wd=7, C=3, f=3, stride=2)
    A_ = _sprinkle(A0, rng, 6, 6)
    A_[0, 0, 0, 0] = np.nan                    # NaN as the first entry of a window
    A_[1, 0, 0, 1] = -np.inf                   # -inf first, larger values later
    out, cache = cnnext.pool_forward(A_, hp, mode=mode)
    want = ref.pool_forward(A_, hp, mode)
    assert np.isnan(want).any()
    assert_close(out, want)
    dA = rng.standard_normal(out.shape)
    assert_close(cnnext.pool_backward(dA, cache, mode=mode),
                 ref.pool_backward(dA, (A_, hp), mode))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_small_helpers_nan_inf():
    x = np.array([[1.0, np.nan], [3.0, 2.0]])
    np.testing.assert_array_equal(cnnext.create_mask_from_window(x), x == np.max(x))
    x = np.array([[1.0, np.inf], [np.inf, 2.0]])
    np.testing.assert_array_equal(cnnext.create_mask_from_window(x),
                                  [[False, True], [True, False]])
    assert np.isnan(cnnext.distribute_value(np.nan, (2, 2))).all()
    np.testing.assert_array_equal(cnnext.distribute_value(-np.inf, (1, 3)),
                                  np.full((1, 3), -np.inf))
    a = np.ones((2, 2, 1))
    assert np.isnan(cnnext.conv_single_step(a, a, np.nan))
    w = a.copy()
    w[0, 0, 0] = np.inf
    assert cnnext.conv_single_step(a, w, 0.0) == np.inf
    w[1, 1, 0] = -np.inf
    assert np.isnan(cnnext.conv_single_step(a, w, 0.0))
