"""The benchmark's rows: the cases of issue 3, the layers of real networks
of issue 10, those of the whole geometry of issue 12, the ops, and the
inputs and contender calls of one (case, op, dtype)."""
import functools
import math

import numpy as np

import cnnext

from .contenders import call_of, supports
from .geometry import conv_geometry, pool_geometry

# (m, H, W, C, f, n_C, stride, pad)
CONV_CASES = {
    "seed": (10, 4, 4, 3, 2, 8, 2, 2),
    "signs": (64, 64, 64, 3, 4, 8, 1, 2),
    "lenet": (64, 28, 28, 1, 5, 32, 1, 2),
    "resnet": (32, 56, 56, 64, 3, 64, 1, 1),
    "strided": (32, 32, 32, 32, 3, 64, 2, 1),
    # Issue 10: layers of real networks.
    "resnet_b1": (1, 56, 56, 64, 3, 64, 1, 1),          # ResNet 3x3 64->64, a batch of 1
    "pointwise": (32, 28, 28, 128, 1, 256, 1, 0),       # 1x1 128->256 (ResNet-50 bottleneck)
    "resnet_stem": (8, 224, 224, 3, 7, 64, 2, 3),       # ResNet 7x7 stride-2 stem
    "vgg_first": (8, 224, 224, 3, 3, 64, 1, 1),         # VGG's first 3x3
    "mobilenet_stem": (8, 224, 224, 3, 3, 32, 2, 1),    # MobileNet 3x3 stride-2 stem
    "resnet50_s3": (8, 28, 28, 128, 3, 128, 1, 1),      # ResNet-50 stage-3 3x3
    "downsample": (32, 56, 56, 64, 1, 128, 2, 0),       # strided 1x1 projection shortcut
}
# (m, H, W, C, f, stride)
POOL_CASES = {
    "seed": (5, 5, 3, 2, 2, 1),
    "signs": (64, 64, 64, 8, 8, 8),
    "resnet": (32, 56, 56, 64, 2, 2),
    "overlap": (32, 56, 56, 64, 3, 1),
    # Issue 10: ResNet's stem max/avg pool (3x3 stride 2 after the 7x7 stem),
    # and small odd-shaped calls, the second with gaps between windows.
    "resnet_stem": (8, 112, 112, 64, 3, 2),
    "odd": (3, 7, 9, 5, 3, 2),
    "gaps": (2, 11, 13, 6, 2, 3),
}
# Issue 12: the whole geometry, layers of real networks as (A_prev shape, W
# shape, hparameters); the pools as (A_prev shape, hparameters). Batches
# chosen for rows of ~10-100 ms on a 2-core machine.
CONV_GEOMETRY_CASES = {
    # MobileNet-v1 depthwise 3x3 (stage 2, 128 channels), stride 1.
    "depthwise_s1": ((8, 56, 56, 128), (3, 3, 1, 128),
                     {"stride": 1, "pad": 1, "groups": 128}),
    # MobileNet-v1's stride-2 depthwise 3x3 (112 -> 56, 64 channels), Keras'
    # 'same': pad (0, 1, 0, 1).
    "depthwise_s2": ((4, 112, 112, 64), (3, 3, 1, 64),
                     {"stride": 2, "pad": "same", "groups": 64}),
    # DeepLab-v3: an atrous 3x3 (dilation 2) 256 -> 256 at output stride 16.
    "dilated": ((1, 33, 33, 256), (3, 3, 256, 256), {"stride": 1, "pad": 2, "dilation": 2}),
    # Inception-v3's factorised 7x7 at 17x17: 1x7 then 7x1, 128 -> 128.
    "inception_1x7": ((8, 17, 17, 128), (1, 7, 128, 128), {"stride": 1, "pad": (0, 3)}),
    "inception_7x1": ((8, 17, 17, 128), (7, 1, 128, 128), {"stride": 1, "pad": (3, 0)}),
    # The course's SIGNS model, its first conv as written: 4x4 'same',
    # pad (1, 2, 1, 2) (the "signs" case pads 2 all round instead).
    "signs_same": ((16, 64, 64, 3), (4, 4, 3, 8), {"stride": 1, "pad": "same"}),
}
POOL_GEOMETRY_CASES = {
    # SIGNS' max pool 8x8 stride 8 'same' (64 = 8 * 8: the padding is 0).
    "signs_same": ((64, 64, 64, 8), {"f": 8, "stride": 8, "pad": "same"}),
    # ResNet's stem pool as PyTorch writes it (3x3, stride 2, pad 1) and as
    # TensorFlow's ResNets do ('same' on 112: pad (0, 1, 0, 1)).
    "resnet_stem_pad": ((8, 112, 112, 64), {"f": 3, "stride": 2, "pad": 1}),
    "resnet_stem_same": ((8, 112, 112, 64), {"f": 3, "stride": 2, "pad": "same"}),
}
# Every case of a kind, tuple cases first: the report's order.
ALL_CASES = {"conv": {**CONV_CASES, **CONV_GEOMETRY_CASES},
             "pool": {**POOL_CASES, **POOL_GEOMETRY_CASES}}
# Depthwise rows: memory-bound, so their report gives GB/s too.
BANDWIDTH_CASES = ("depthwise_s1", "depthwise_s2")
# What --quick runs without --cases: the cases of issue 3, a batch of 1, a
# 1x1 layer and a small odd pooling call.
QUICK_CASES = ("seed", "signs", "lenet", "resnet", "strided", "overlap", "conv:resnet_b1",
               "conv:pointwise", "pool:odd")
CONV_OPS = ("conv_fwd", "conv_bwd")
POOL_OPS = ("max_fwd", "max_bwd", "avg_fwd", "avg_bwd")
OPS = CONV_OPS + POOL_OPS
OP_GROUPS = {
    "conv": CONV_OPS,
    "pool": POOL_OPS,
    "max": ("max_fwd", "max_bwd"),
    "avg": ("avg_fwd", "avg_bwd"),
    "fwd": ("conv_fwd", "max_fwd", "avg_fwd"),
    "bwd": ("conv_bwd", "max_bwd", "avg_bwd"),
}
DTYPES = ("float32", "float64")


def select_rows(cases=None, ops=None, dtypes=DTYPES):
    """The (kind, case, op, dtype) rows asked for, in report order.

    ``cases`` names cases (``"seed"``: conv and pool) or one kind's
    (``"pool:seed"``), ``ops`` names ops or groups of :data:`OP_GROUPS`;
    None means all.

    Examples
    --------
    >>> select_rows(["pool:seed"], ["max"], ["float64"])
    [('pool', 'seed', 'max_fwd', 'float64'), ('pool', 'seed', 'max_bwd', 'float64')]
    >>> select_rows(["conv:seed"], ["pool"])
    []
    """
    wanted_ops = set()
    for o in OPS if ops is None else ops:
        wanted_ops.update(OP_GROUPS.get(o, (o,)))

    def wanted(kind, name):
        return cases is None or name in cases or f"{kind}:{name}" in cases

    out = []
    for kind, kind_cases, kind_ops in (("conv", ALL_CASES["conv"], CONV_OPS),
                                       ("pool", ALL_CASES["pool"], POOL_OPS)):
        for name in kind_cases:
            if wanted(kind, name):
                out += [(kind, name, op, dt) for op in kind_ops if op in wanted_ops
                        for dt in dtypes]
    return out


class Row:
    """The inputs and contender calls of one (case, op, dtype).

    ``args`` are the arguments of cnnext's call (every contender takes the
    same); ``fns`` maps each contender of ``contenders`` ({name: module},
    :func:`cnnext.bench.contenders.load`) that runs this op, dtype and
    geometry to its call, ``to_cnnext`` those whose results need converting
    for the check, the seed loops' with
    an optional ``limit``, the number of (example, output row) pairs to run.
    ``cnnext_masked_backward(rows)`` is cnnext's backward of the gradient
    zeroed outside ``rows``, what a subsampled seed backward computes.
    ``spec`` replaces the case's entry of :data:`ALL_CASES` (a tuple of
    CONV_CASES / POOL_CASES, or a geometry case), as the tests do with
    smaller shapes. ``flops`` (conv rows) counts a grouped conv's
    2*m*n_H*n_W*n_C*f_h*f_w*(n_C_prev/groups), twice for the backward;
    ``bytes`` (depthwise rows) what is read and written once each: A_prev,
    W and Z forward; dZ, A_prev, W, dA_prev, dW and db backward.
    """

    def __init__(self, kind, case, op, dtype, contenders, spec=None):
        self.kind, self.case, self.op, self.dtype = kind, case, op, dtype
        spec = ALL_CASES[kind][case] if spec is None else spec
        rng = np.random.default_rng(0)
        randn = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
        self.flops = self.bytes = None
        self.shape_text = f"{spec}"
        if kind == "conv":
            if len(spec) == 8:  # (m, H, W, C, f, n_C, stride, pad)
                m, H, Wd, C, f, n_C, stride, pad = spec
                A_shape, W_shape, hp = (m, H, Wd, C), (f, f, C, n_C), {"stride": stride,
                                                                       "pad": pad}
            else:
                A_shape, W_shape, hp = spec
                hp = dict(hp)
            A, W, b = randn(*A_shape), randn(*W_shape), randn(1, 1, 1, W_shape[3])
            geo = conv_geometry(A_shape, W_shape, hp)
            m, n_C = A_shape[0], W_shape[3]
            self.out_shape = (m, *geo.out_hw, n_C)
            self.flops = 2.0 * math.prod(self.out_shape) * math.prod(W_shape[:3])
            Z_bytes = math.prod(self.out_shape) * A.itemsize
            if op == "conv_fwd":
                self.args = (A, W, b, hp)
                moved = A.nbytes + W.nbytes + Z_bytes
            else:
                self.flops *= 2
                self.args = (randn(*self.out_shape), (A, W, b, hp))
                moved = Z_bytes + 2 * (A.nbytes + W.nbytes) + b.nbytes
            if case in BANDWIDTH_CASES:
                self.bytes = float(moved)
        else:
            if len(spec) == 6:  # (m, H, W, C, f, stride)
                m, H, Wd, C, f, stride = spec
                A_shape, hp = (m, H, Wd, C), {"f": f, "stride": stride}
            else:
                A_shape, hp = spec
                hp = dict(hp)
            mode = "max" if op.startswith("max") else "average"
            A = randn(*A_shape)
            self.out_shape = (A_shape[0], *pool_geometry(A_shape, hp).out_hw, A_shape[3])
            if op.endswith("fwd"):
                self.args = (A, hp, mode)
            elif mode == "max":
                # The forward's own cache, as a training step has it: it
                # carries the record of where the maxima are (as PyTorch's
                # argmax indices, made outside its timing too).
                self.args = (randn(*self.out_shape), cnnext.pool_forward(A, hp)[1], mode)
            else:
                self.args = (randn(*self.out_shape), (A, hp), mode)
        runs = {name: module for name, module in contenders.items()
                if supports(module, op, dtype, self.args)}
        self.fns = {name: call_of(module, op, self.args) for name, module in runs.items()}
        # What turns a timed call's result into cnnext's (NCHW, jax arrays), untimed.
        self.to_cnnext = {name: functools.partial(module.to_cnnext, op)
                          for name, module in runs.items() if hasattr(module, "to_cnnext")}
        if op.endswith("bwd"):
            backward = cnnext.conv_backward if kind == "conv" else cnnext.pool_backward
            gradient, rest = self.args[0], self.args[1:]
            self.cnnext_masked_backward = lambda rows: backward(
                mask_rows(gradient, rows), *rest)
        self.n_out = math.prod(self.out_shape)
        self.n_rows = self.out_shape[0] * self.out_shape[1]
        self.per_row = self.out_shape[2] * self.out_shape[3]


def mask_rows(X, rows):
    """X with every (example, row) outside ``rows`` zeroed: what a subsampled
    seed backward effectively differentiates."""
    keep = np.zeros(X.shape[:2], dtype=bool)
    keep[tuple(np.array(rows).T)] = True
    return np.where(keep[:, :, None, None], X, X.dtype.type(0))
