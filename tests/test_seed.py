"""Every worked example of the seed document, against its printed numbers.

Each test rebuilds the seed's inputs with the same ``np.random.seed(1)`` calls
in the same order, and compares with the numbers the seed prints. Printed
arrays carry 8 significant digits (numpy's default print precision), so they
are compared to 5e-8 absolute; printed scalars carry 12 significant digits
and are compared to 1e-10.
"""
import numpy as np
import pytest

import cnnext

PRINTED = 5e-8      # half a unit in the 8th decimal of numpy's array print
SCALAR = 1e-10      # the seed's 12-digit scalars


def _conv_example():
    """The seed's conv_forward example (section 3.3)."""
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    hparameters = {"pad": 2, "stride": 2}
    return A_prev, W, b, hparameters


def test_zero_pad_seed():
    np.random.seed(1)
    x = np.random.randn(4, 3, 3, 2)
    x_pad = cnnext.zero_pad(x, 2)
    assert x.shape == (4, 3, 3, 2)
    assert x_pad.shape == (4, 7, 7, 2)
    np.testing.assert_allclose(
        x[1, 1], [[0.90085595, -0.68372786], [-0.12289023, -0.93576943],
                  [-0.26788808, 0.53035547]], atol=PRINTED, rtol=0)
    # x_pad[1, 1] is a row of padding: all zeros.
    np.testing.assert_array_equal(x_pad[1, 1], np.zeros((7, 2)))
    # and the interior is x itself
    np.testing.assert_array_equal(x_pad[:, 2:5, 2:5, :], x)


def test_conv_single_step_seed():
    np.random.seed(1)
    a_slice_prev = np.random.randn(4, 4, 3)
    W = np.random.randn(4, 4, 3)
    b = np.random.randn(1, 1, 1)
    Z = cnnext.conv_single_step(a_slice_prev, W, b)
    assert np.ndim(Z) == 0
    assert float(Z) == pytest.approx(-6.99908945068, abs=SCALAR)


def test_conv_forward_seed():
    A_prev, W, b, hparameters = _conv_example()
    Z, cache_conv = cnnext.conv_forward(A_prev, W, b, hparameters)
    assert Z.shape == (10, 4, 4, 8)
    assert Z.dtype == np.float64
    assert np.mean(Z) == pytest.approx(0.0489952035289, abs=SCALAR)
    np.testing.assert_allclose(
        Z[3, 2, 1],
        [-0.61490741, -6.7439236, -2.55153897, 1.75698377,
         3.56208902, 0.53036437, 5.18531798, 8.75898442],
        atol=PRINTED, rtol=0)
    np.testing.assert_allclose(cache_conv[0][1][2][3],
                               [-0.20075807, 0.18656139, 0.41005165],
                               atol=PRINTED, rtol=0)


def test_conv_forward_cache_is_inputs():
    A_prev, W, b, hparameters = _conv_example()
    _, cache = cnnext.conv_forward(A_prev, W, b, hparameters)
    assert len(cache) == 4
    assert cache[0] is A_prev
    np.testing.assert_array_equal(cache[1], W)
    np.testing.assert_array_equal(cache[2], b)
    assert cache[3] == hparameters


def test_conv_backward_seed():
    A_prev, W, b, hparameters = _conv_example()
    Z, cache_conv = cnnext.conv_forward(A_prev, W, b, hparameters)
    np.random.seed(1)   # as the seed does; conv_backward draws nothing
    dA, dW, db = cnnext.conv_backward(Z, cache_conv)
    assert dA.shape == (10, 4, 4, 3)
    assert dW.shape == (2, 2, 3, 8)
    assert db.shape == (1, 1, 1, 8)
    assert np.mean(dA) == pytest.approx(1.45243777754, abs=SCALAR)
    assert np.mean(dW) == pytest.approx(1.72699145831, abs=SCALAR)
    assert np.mean(db) == pytest.approx(7.83923256462, abs=SCALAR)


def test_pool_forward_seed():
    np.random.seed(1)
    A_prev = np.random.randn(2, 4, 4, 3)
    hparameters = {"stride": 1, "f": 4}

    A, cache = cnnext.pool_forward(A_prev, hparameters)
    assert A.shape == (2, 1, 1, 3)
    np.testing.assert_allclose(
        A, [[[[1.74481176, 1.6924546, 2.10025514]]],
            [[[1.19891788, 1.51981682, 2.18557541]]]], atol=PRINTED, rtol=0)
    assert cache[0] is A_prev and cache[1] == hparameters

    A, cache = cnnext.pool_forward(A_prev, hparameters, mode="average")
    np.testing.assert_allclose(
        A, [[[[-0.09498456, 0.11180064, -0.14263511]]],
            [[[-0.09525108, 0.28325018, 0.33035185]]]], atol=PRINTED, rtol=0)


def test_create_mask_from_window_seed():
    np.random.seed(1)
    x = np.random.randn(2, 3)
    np.testing.assert_allclose(x, [[1.62434536, -0.61175641, -0.52817175],
                                   [-1.07296862, 0.86540763, -2.3015387]],
                               atol=PRINTED, rtol=0)
    mask = cnnext.create_mask_from_window(x)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, [[True, False, False],
                                         [False, False, False]])


def test_create_mask_from_window_figure():
    # The seed's equation (4): X = [[1, 3], [4, 2]] -> M = [[0, 0], [1, 0]]
    mask = cnnext.create_mask_from_window(np.array([[1, 3], [4, 2]]))
    np.testing.assert_array_equal(mask, [[False, False], [True, False]])


def test_distribute_value_seed():
    a = cnnext.distribute_value(2, (2, 2))
    assert a.shape == (2, 2)
    np.testing.assert_array_equal(a, [[0.5, 0.5], [0.5, 0.5]])


def test_pool_backward_seed():
    np.random.seed(1)
    A_prev = np.random.randn(5, 5, 3, 2)
    hparameters = {"stride": 1, "f": 2}
    A, cache = cnnext.pool_forward(A_prev, hparameters)
    dA = np.random.randn(5, 4, 2, 2)
    assert np.mean(dA) == pytest.approx(0.145713902729, abs=SCALAR)

    dA_prev = cnnext.pool_backward(dA, cache, mode="max")
    assert dA_prev.shape == A_prev.shape
    np.testing.assert_allclose(dA_prev[1, 1], [[0.0, 0.0],
                                               [5.05844394, -1.68282702],
                                               [0.0, 0.0]], atol=PRINTED, rtol=0)

    dA_prev = cnnext.pool_backward(dA, cache, mode="average")
    np.testing.assert_allclose(dA_prev[1, 1], [[0.08485462, 0.2787552],
                                               [1.26461098, -0.25749373],
                                               [1.17975636, -0.53624893]],
                               atol=PRINTED, rtol=0)
    # the inputs of the example are left as they were
    assert np.mean(dA) == pytest.approx(0.145713902729, abs=SCALAR)
