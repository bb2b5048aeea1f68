"""The benchmark's rows: the cases of issue 3, the layers of real networks
of issue 10, the ops, and the inputs and contender calls of one (case, op,
dtype)."""
import functools
import math

import numpy as np

import cnnext

from .._geometry import conv_output_shape, pool_output_shape
from .contenders import call_of, supports

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
    for kind, kind_cases, kind_ops in (("conv", CONV_CASES, CONV_OPS),
                                       ("pool", POOL_CASES, POOL_OPS)):
        for name in kind_cases:
            if wanted(kind, name):
                out += [(kind, name, op, dt) for op in kind_ops if op in wanted_ops
                        for dt in dtypes]
    return out


class Row:
    """The inputs and contender calls of one (case, op, dtype).

    ``args`` are the arguments of cnnext's call (every contender takes the
    same); ``fns`` maps each contender of ``contenders`` ({name: module},
    :func:`cnnext.bench.contenders.load`) that runs this op and dtype to its
    call, ``to_cnnext`` those whose results need converting for the check, the seed loops' with
    an optional ``limit``, the number of (example, output row) pairs to run.
    ``cnnext_masked_backward(rows)`` is cnnext's backward of the gradient
    zeroed outside ``rows``, what a subsampled seed backward computes.
    """

    def __init__(self, kind, case, op, dtype, contenders):
        self.kind, self.case, self.op, self.dtype = kind, case, op, dtype
        rng = np.random.default_rng(0)
        randn = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
        self.flops = None
        if kind == "conv":
            m, H, Wd, C, f, n_C, stride, pad = CONV_CASES[case]
            self.shape_text = f"{CONV_CASES[case]}"
            A, W, b = randn(m, H, Wd, C), randn(f, f, C, n_C), randn(1, 1, 1, n_C)
            hp = {"stride": stride, "pad": pad}
            n_H, n_W, _ = conv_output_shape((H, Wd, C), f, n_C, pad, stride)
            self.out_shape = (m, n_H, n_W, n_C)
            self.flops = 2.0 * m * n_H * n_W * n_C * f * f * C
            if op == "conv_fwd":
                self.args = (A, W, b, hp)
            else:
                self.flops *= 2
                self.args = (randn(*self.out_shape), (A, W, b, hp))
        else:
            m, H, Wd, C, f, stride = POOL_CASES[case]
            self.shape_text = f"{POOL_CASES[case]}"
            mode = "max" if op.startswith("max") else "average"
            A, hp = randn(m, H, Wd, C), {"f": f, "stride": stride}
            self.out_shape = (m, *pool_output_shape((H, Wd, C), f, stride))
            if op.endswith("fwd"):
                self.args = (A, hp, mode)
            else:
                self.args = (randn(*self.out_shape), (A, hp), mode)
        runs = {name: module for name, module in contenders.items()
                if supports(module, op, dtype)}
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
