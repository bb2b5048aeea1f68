"""Every worked example of the seed document, against its printed numbers."""
import numpy as np
import pytest

import cnnext


def test_conv_single_step_seed():
    np.random.seed(1)
    a_slice_prev = np.random.randn(4, 4, 3)
    W = np.random.randn(4, 4, 3)
    b = np.random.randn(1, 1, 1)
    assert cnnext.conv_single_step(a_slice_prev, W, b) == pytest.approx(-6.99908945068, abs=1e-10)
