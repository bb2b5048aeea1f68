"""Indexing past 2**31 elements (opt-in: CNNEXT_TEST_LARGE=1, ~11 GiB of RAM).

The kernels index with Py_ssize_t; a 32-bit int anywhere in an offset
computation would wrap past 2**31 elements and read the wrong data (or crash).
Each test builds a float32 input of just over 2**31 elements (8 GiB), runs a
forward pass over all of it and checks the outputs whose inputs lie past
element 2**31 - and a few at the start - against a numpy reference computed on
that slice alone. Values are small integers, so float32 results are exact and
compared exactly.

    CNNEXT_TEST_LARGE=1 pytest tests/test_large.py -v

Backward passes are not covered here: each needs a second 8 GiB array.
"""
import os

import numpy as np
import pytest

import cnnext
from reference import ref_conv_forward, ref_pool_forward

NEEDED = 11 * 2**30

pytestmark = pytest.mark.skipif(os.environ.get("CNNEXT_TEST_LARGE") != "1",
                                reason="opt-in: set CNNEXT_TEST_LARGE=1 (needs ~11 GiB)")


@pytest.fixture(autouse=True)
def enough_memory():
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except OSError:
        psutil = pytest.importorskip("psutil", reason="needs /proc/meminfo or psutil")
        available = psutil.virtual_memory().available
    if available < NEEDED:
        pytest.skip(f"needs {NEEDED / 2**30:.0f} GiB free, {available / 2**30:.1f} GiB available")


def fill_pattern(out, i, y0):
    """out[y, x] = (7 (y0 + y) + 13 x + 31 i) % 1009 - 504: small integers,
    different for every image, row and column; written in place, in float32
    (exact for these values), so filling 8 GiB needs no temporaries."""
    H, Wd = out.shape
    rows = ((np.arange(y0, y0 + H) * 7 + i * 31) % 1009).astype(np.float32)
    cols = ((np.arange(Wd) * 13) % 1009).astype(np.float32)
    np.add(rows[:, None], cols[None, :], out=out)
    np.subtract(out, 1009, out=out, where=out >= 1009)
    np.subtract(out, 504, out=out)


def big_image():
    """One image of 32770 x 65536 x 1 = 2**31 + 2**17 elements."""
    H, Wd = 32770, 65536
    A = np.empty((1, H, Wd, 1), dtype=np.float32)
    for y0 in range(0, H, 1024):
        fill_pattern(A[0, y0:y0 + 1024, :, 0], 0, y0)
    assert A.size > 2**31
    return A


@pytest.mark.parametrize("mode", ["max", "average"])
def test_pool_forward_one_image_past_2_31(mode):
    A = big_image()
    hp = {"f": 2, "stride": 2}
    out, _ = cnnext.pool_forward(A, hp, mode=mode)
    shape = out.shape
    # Input row 32768 starts at element 32768 * 65536 = 2**31: the last output
    # row reads only rows past it, the three before it lead up to it.
    got = out[:, -4:].copy(), out[:, :4].copy()
    want = ref_pool_forward(A[:, -8:], hp, mode), ref_pool_forward(A[:, :8], hp, mode)
    del A, out  # a failure report must not hold on to 10 GiB
    assert shape == (1, 16385, 32768, 1)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def ref_conv_rows(A, W, b, stride, pad, h0, h1):
    """Output rows h0..h1-1 of the convolution, from the input rows they see."""
    H, f = A.shape[1], W.shape[0]
    y_lo, y_hi = h0 * stride - pad, (h1 - 1) * stride - pad + f
    band = A[:, max(y_lo, 0):min(y_hi, H)].astype(np.float64)
    band = np.pad(band, ((0, 0), (max(0, -y_lo), max(0, y_hi - H)), (pad, pad), (0, 0)))
    return ref_conv_forward(band, W, b, {"stride": stride, "pad": 0})


def test_conv_forward_direct_batch_past_2_31():
    """Few input channels: the direct kernel, the batch split over threads."""
    m, H, Wd = 2049, 1024, 1024          # 2049 * 2**20 = 2**31 + 2**20 elements
    A = np.empty((m, H, Wd, 1), dtype=np.float32)
    for i in range(m):
        fill_pattern(A[i, :, :, 0], i, 0)
    assert A.size > 2**31
    rng = np.random.default_rng(0)
    W = rng.integers(-3, 4, size=(3, 3, 1, 1)).astype(np.float32)
    b = np.full((1, 1, 1, 1), 0.5, dtype=np.float32)
    # pad > 0: the direct kernel reads zero-padded copies of blocks of images.
    hp = {"stride": 2, "pad": 1}
    Z, _ = cnnext.conv_forward(A, W, b, hp)
    shape = Z.shape
    # Image 2048 starts at element 2**31; 2047 ends just before it.
    got = Z[-2:].copy(), Z[:1].copy()
    want = ref_conv_forward(A[-2:], W, b, hp), ref_conv_forward(A[:1], W, b, hp)
    del A, Z  # a failure report must not hold on to 10 GiB
    assert shape == (m, 512, 512, 1)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_conv_forward_im2row_one_image_past_2_31():
    """Many input channels: im2row + GEMM, padding done by im2row itself."""
    H, Wd, C = 8193, 8192, 32            # 8193 * 2**18 = 2**31 + 2**18 elements
    A = np.empty((1, H, Wd, C), dtype=np.float32)
    for y0 in range(0, H, 256):
        rows = A[0, y0:y0 + 256].reshape(-1, Wd * C)  # (y, x * C + c)
        fill_pattern(rows, 0, y0)
    assert A.size > 2**31
    rng = np.random.default_rng(1)
    W = rng.integers(-2, 3, size=(2, 2, C, 2)).astype(np.float32)
    b = np.array([0.25, -1.0], dtype=np.float32).reshape(1, 1, 1, 2)
    Z, _ = cnnext.conv_forward(A, W, b, {"stride": 2, "pad": 1})
    shape = Z.shape
    # Output row 4096 reads input row 8192 (and row 8193 of the padding):
    # row 8192 starts at element 8192 * 8192 * 32 = 2**31.
    got = Z[:, -3:].copy(), Z[:, :2].copy()
    want = (ref_conv_rows(A, W, b, 2, 1, 4094, 4097), ref_conv_rows(A, W, b, 2, 1, 0, 2))
    del A, Z  # a failure report must not hold on to 8 GiB
    assert shape == (1, 4097, 4097, 2)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
