"""Exercise every cnnext kernel once per variant, for scripts/memcheck.sh.

Small arrays (valgrind runs this ~50x slower than native): conv forward and
backward over filter sizes 1-3, every pad from 0 to f+2, strides 1-3, odd
sizes, float32 and float64, on the direct kernels (3 and 6 input channels,
then shapes reaching each register-tile variant and each way of computing
the input gradient), on im2row (multi-chunk, and few channels with many
filters), on 1x1 GEMM, every path of cnnext._plan by name, a batch of one
cut into bands of output rows over two threads, and empty
batches, channels and filters; pool forward and backward, max and average, with leftover edges
and each path of max pooling's record of its maxima;
and the four small functions. Prints the number of calls made.
"""
import itertools

import numpy as np

import cnnext
from cnnext._plan import forced_path

rng = np.random.default_rng(0)
calls = 0


def conv_case(shape, f, n_C, stride, pad, dtype):
    global calls
    A = rng.standard_normal(shape).astype(dtype)
    W = rng.standard_normal((f, f, shape[3], n_C)).astype(dtype)
    b = rng.standard_normal((1, 1, 1, n_C)).astype(dtype)
    Z, cache = cnnext.conv_forward(A, W, b, {"stride": stride, "pad": pad})
    dA, dW, db = cnnext.conv_backward(np.ones_like(Z), cache)
    assert dA.shape == A.shape and dW.shape == W.shape and np.isfinite(Z).all()
    calls += 2


def pool_case(shape, f, stride, mode, dtype, ties=False):
    global calls
    A = np.ones(shape, dtype) if ties else rng.standard_normal(shape).astype(dtype)
    out, cache = cnnext.pool_forward(A, {"f": f, "stride": stride}, mode)
    dA_prev = cnnext.pool_backward(np.ones_like(out), cache, mode)
    assert dA_prev.shape == A.shape and np.isfinite(out).all()
    calls += 2


for dtype in (np.float32, np.float64):
    for f, stride in itertools.product((1, 2, 3), (1, 2, 3)):
        for pad in range(f + 3):
            conv_case((2, 5, 4, 3), f, 2, stride, pad, dtype)   # direct kernel
            conv_case((1, 5, 6, 6), f, 3, stride, pad, dtype)   # direct, 5-8 channels
        for mode in ("max", "average"):
            pool_case((2, 7, 6, 3), f, stride, mode, dtype)
            pool_case((1, 7, 6, 33), f, stride, mode, dtype)  # per-pixel channel loops
    conv_case((2, 32, 32, 72), 3, 4, 1, 1, dtype)       # im2row in several chunks
    conv_case((1, 6, 6, 6), 3, 72, 1, 1, dtype)         # im2row, few channels
    # Register tiles: 1, 2 and 4 channel vectors, partial ones, row tails; the
    # input gradient as a transposed convolution, window by window, and rows.
    conv_case((1, 4, 15, 8), 3, 64, 1, 1, dtype)
    conv_case((1, 5, 13, 16), 3, 33, 2, 1, dtype)
    conv_case((1, 6, 14, 5), 3, 17, 1, 2, dtype)
    conv_case((1, 3, 30, 2), 2, 24, 1, 0, dtype)
    # 1x1 filters at pad 0: GEMM on the pixel rows, unstrided and gathered.
    conv_case((2, 5, 7, 16), 1, 24, 1, 0, dtype)
    conv_case((1, 7, 9, 16), 1, 17, 2, 0, dtype)
    # Every path of cnnext._plan by name, and a batch of one cut into bands
    # of output rows over two threads (dW over several fixed blocks).
    for forward, backward in (("gemm1x1", "gemm1x1"), ("planar", "transposed"),
                              ("direct", "transposed"), ("direct", "windows"),
                              ("direct", "rows"), ("im2row", "im2row")):
        f = 1 if forward == "gemm1x1" else 3
        with forced_path(forward=forward, backward=backward):
            conv_case((1, 7, 6, 5), f, 6, 1, 0 if f == 1 else 1, dtype)
            with cnnext.threads(2):
                conv_case((1, 48, 48, 16), f, 16, 1, 0 if f == 1 else 1, dtype)
    conv_case((0, 5, 5, 3), 3, 2, 1, 1, dtype)          # empty batch
    conv_case((1, 5, 5, 0), 3, 2, 1, 1, dtype)          # no input channels
    conv_case((1, 5, 5, 3), 3, 0, 1, 1, dtype)          # no filters
    pool_case((1, 4, 4, 0), 2, 2, "max", dtype)         # no channels
    pool_case((0, 4, 4, 2), 2, 2, "average", dtype)     # empty batch
    # Ties in max pooling: every tied entry gets the gradient.
    pool_case((1, 5, 5, 2), 2, 2, "max", dtype, ties=True)
    # Max pooling's record of its maxima (_tie_bits.h): by channel vectors,
    # by window rows, by pixels and by repeated rows, with vector tails (on
    # small inputs, which pool_forward records only when told to).
    cnnext._RECORD_MIN_ELEMENTS, record_min = 0, cnnext._RECORD_MIN_ELEMENTS
    for shape, f, stride in (((2, 8, 8, 8), 8, 8), ((1, 7, 7, 8), 3, 2), ((1, 6, 6, 24), 2, 1),
                             ((2, 8, 8, 4), 4, 4), ((1, 16, 16, 1), 8, 8), ((1, 6, 6, 64), 3, 1),
                             ((1, 7, 7, 40), 3, 2), ((1, 7, 9, 3), 3, 1), ((1, 20, 20, 19), 9, 4)):
        pool_case(shape, f, stride, "max", dtype)
        pool_case(shape, f, stride, "max", dtype, ties=True)
    cnnext._RECORD_MIN_ELEMENTS = record_min
    # The whole geometry (issue 12): the depthwise kernels, their padding
    # implicit (interior strips, 4-, 2-, 1-pixel tiles, the 3-wide tile and
    # the general one, border pixels, channels past the last vector, windows
    # of more than 64 taps, rows wholly in the padding, strides, dilation),
    # uneven padding and dilated phases on the compiled kernels, padded pooling.
    for shape, f, hp in (((2, 7, 6, 70), 3, {"stride": 1, "pad": 1}),
                         ((1, 9, 8, 5), 3, {"stride": 2, "pad": "same", "dilation": 2}),
                         ((1, 6, 7, 64), 3, {"stride": (2, 1), "pad": (0, 1, 2, 1)}),
                         ((1, 5, 25, 40), 3, {"stride": 1, "pad": 1}),
                         ((1, 8, 21, 16), 5, {"stride": 1, "pad": (1, 2)}),
                         ((1, 10, 10, 9), 9, {"stride": 1, "pad": 4}),
                         ((1, 4, 5, 8), 3, {"stride": 1, "pad": 5})):
        A = rng.standard_normal(shape).astype(dtype)
        W = rng.standard_normal((f, f, 1, shape[3])).astype(dtype)
        Z, cache = cnnext.conv_forward(A, W, None, dict(hp, groups=shape[3]))
        cnnext.conv_backward(np.ones_like(Z), cache)
        calls += 2
    A = rng.standard_normal((2, 9, 9, 3)).astype(dtype)
    for W_shape, hp in (((4, 4, 3, 5), {"stride": 1, "pad": "same"}),
                        ((3, 3, 3, 4), {"stride": 1, "pad": 2, "dilation": 2})):
        Z, cache = cnnext.conv_forward(A, rng.standard_normal(W_shape).astype(dtype),
                                       None, hp)
        cnnext.conv_backward(np.ones_like(Z), cache)
        calls += 2
    for mode in ("max", "average"):
        out, cache = cnnext.pool_forward(A, {"f": 3, "stride": 2, "pad": "same"}, mode)
        cnnext.pool_backward(np.ones_like(out), cache, mode)
        calls += 2

x = rng.standard_normal((1, 4, 4, 3))
cnnext.zero_pad(x, 2)
cnnext.conv_single_step(x[0, :3, :3], x[0, :3, :3], 0.5)
cnnext.create_mask_from_window(x[0, :, :, 0])
cnnext.distribute_value(2.0, (2, 3))
calls += 4
print(f"memcheck_kernels: {calls} calls done")
