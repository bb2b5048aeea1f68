"""Which convolution kernel runs a call, and how its work is cut: the plan.

Pure Python, and the one place that decides. ``conv_forward`` and
``conv_backward`` (``cnnext/__init__.py``) ask for a plan and hand it to the
drivers of ``_conv.pyx``, which run it with ``nogil`` kernels and decide
nothing.

Forward paths (:data:`FORWARD_PATHS`):

- ``"gemm1x1"``: a 1x1 filter at pad 0 is one GEMM of the (m*H*W, C) view of
  A at stride 1, with no copy; at a larger stride the sampled pixels are
  gathered into rows first.
- ``"planar"``: the direct kernel vectorised over output pixels (stride 1).
- ``"direct"``: the direct kernel vectorised over output channels.
- ``"im2row"``: the windows copied into rows, then GEMM.

Backward paths (:data:`BACKWARD_PATHS`) name how the input gradient is
made; the weight gradient comes from the direct register tiles on every
path but ``"gemm1x1"`` and ``"im2row"``, which use GEMM:

- ``"gemm1x1"``: dA = dZ @ W2.T and dW = A.T @ dZ on the pixel rows;
- ``"transposed"``: dA as the stride-1 forward convolution of dZ with flipped
  filters (stride 1 and pad < f), planned as a forward of its own;
- ``"windows"``: each output pixel's window gradient added onto dA in place;
- ``"rows"``: dZ @ W2.T a chunk of pixels at a time, scattered by row2im;
- ``"im2row"``: both gradients by im2row + GEMM.

How the work is cut. Forward: the output rows of the whole batch, m*n_H of
them, are split into ``parts`` contiguous runs, one per thread, so that a
batch of one image keeps every thread busy; each output value is computed
by one thread, in the same order whatever the split. Backward: the weight
gradient is summed over fixed ``reduction_bounds`` (runs of output rows,
whole images where dA's windows overlap across rows), a number set by the
size of the problem and never by the thread count, then the blocks' sums
are added in order: identical bits on any number of threads.

Tests and the benchmark name a path with :func:`forced_path`.
"""
from contextlib import contextmanager
from functools import lru_cache
import threading
from typing import NamedTuple, Optional, Tuple

from ._geometry import conv_output_hw

FORWARD_PATHS = ("gemm1x1", "planar", "direct", "im2row")
BACKWARD_PATHS = ("gemm1x1", "transposed", "windows", "rows", "im2row")

# Where the direct kernels beat im2row + GEMM. Measured on one thread, 3x3
# filters: the window-by-window input gradient wins up to 4 input channels,
# and up to 8 when there are at most 16 output channels (im2row rows are then
# too short for BLAS). The register-tiled forward and weight gradient win
# 1.1-2x on layers up to 64 channels in and out, strided ones included, at
# 1 and 2 threads (ResNet's 64 -> 64 about even on one thread); at 64 -> 128
# BLAS wins on one thread.
DIRECT_MAX_CHANNELS = 4
DIRECT_MAX_CHANNELS_FEW_OUTPUTS = 8
DIRECT_FEW_OUTPUTS = 16
DIRECT_FORWARD_MAX_CHANNELS = 64
# Up to 8 output channels a direct forward at stride 1 goes faster in
# vectors of output pixels than of channels (1 thread, 3x3 and 4x4 filters,
# 8 channels: 1.75x in float32, 1.2-1.4x in float64); at 16 it goes slower
# (0.8x in float32), and on LeNet's 32 (0.6x).
PLANAR_MAX_OUTPUTS = 8
# 1x1 filters at pad 0 go to GEMM on the pixel rows where im2row would run
# them: EPYC Zen 5, 1 thread, (8, 28, 28, C) float32, loaded machine, the
# direct forward still wins up to 64 channels (C = 16: 59 us vs GEMM 100;
# 64: 612 vs 1280) and the transposed backward about ties (64 -> 64: 1.3 ms
# vs 1.5) or wins (64 -> 128: 2.3 vs 3.2); at 128 -> 128 GEMM on the view
# ties im2row (2.7 vs 2.5-2.8 ms forward, 5.7 vs 5.6 backward) with no
# im2row copy.

# Multiply-adds below which one more thread costs more than it saves (the
# hand-over to a worker costs tens of microseconds).
MIN_GEMM_WORK = 1 << 22
MIN_GEMM_ROWS = 128
MAX_GEMM_CALLS = 16
MIN_DIRECT_WORK = 1 << 21
# The weight gradient is summed over at most this many fixed blocks, each of
# at least MIN_BLOCK_WORK multiply-adds: enough blocks to keep 64 threads
# busy on big layers, few enough that their partial sums (one fresh K x n_C
# matrix each) stay cheap. ResNet's 3x3 64 -> 64 at batch 1, float32, one
# thread: 4.4 ms in 4 blocks, 5.1 ms in 16, 16 ms in 56 (one row each).
MAX_REDUCTION_BLOCKS = 64
MIN_BLOCK_WORK = 1 << 24


class ConvPlan(NamedTuple):
    """How one convolution call runs.

    ``path`` is one of FORWARD_PATHS or BACKWARD_PATHS (``"empty"`` when
    there is nothing to compute); ``parts`` is how many threads the
    forward's output rows (or the backward's reduction blocks) are split
    over; ``reduction_bounds`` (backward) the fixed output-row boundaries of
    the weight gradient's blocks, over the m*n_H rows of the batch;
    ``transposed`` (backward path "transposed") the forward plan of the
    input gradient's convolution; ``gemm_rows`` (forward GEMM paths) the
    output pixels of each GEMM call, fixed by the problem's size, threads
    taking whole calls.
    """
    path: str
    parts: int
    reduction_bounds: Tuple[int, ...] = ()
    transposed: Optional["ConvPlan"] = None
    gemm_rows: int = 0


_forced = threading.local()


@contextmanager
def forced_path(forward=None, backward=None):
    """Run the block's convolutions on the named paths (for tests and the
    benchmark; private).

    A forced forward path also runs the input gradient of backward path
    ``"transposed"`` when it is ``"planar"`` or ``"direct"``. A call whose
    layer the forced path cannot run raises ValueError. Per Python thread.

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> from cnnext._plan import forced_path
    >>> A = np.ones((1, 3, 3, 2)); W = np.ones((1, 1, 2, 1)); b = np.zeros((1, 1, 1, 1))
    >>> with forced_path(forward="im2row"):
    ...     Z, _ = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 0})
    >>> float(Z[0, 0, 0, 0])
    2.0
    """
    for name, value, known in (("forward", forward, FORWARD_PATHS),
                               ("backward", backward, BACKWARD_PATHS)):
        if value is not None and value not in known:
            raise ValueError(f"{name} path must be one of {', '.join(known)}; "
                             f"got {value!r}")
    before = getattr(_forced, "paths", (None, None))
    _forced.paths = (forward, backward)
    try:
        yield
    finally:
        _forced.paths = before


def _forced_paths():
    return getattr(_forced, "paths", (None, None))


def _direct_suits(C, n_C, forward):
    """Whether the direct kernels beat im2row + GEMM on C -> n_C channels."""
    if C < 1:
        return False
    if C <= DIRECT_MAX_CHANNELS or (C <= DIRECT_MAX_CHANNELS_FEW_OUTPUTS
                                    and n_C <= DIRECT_FEW_OUTPUTS):
        return True
    return forward and C <= DIRECT_FORWARD_MAX_CHANNELS and n_C <= DIRECT_FORWARD_MAX_CHANNELS


def forward_path_fits(path, C, f, stride, pad):
    """Why ``path`` cannot run a forward of this layer, or "" if it can."""
    if path == "gemm1x1" and (f != 1 or pad != 0):
        return f"it needs a 1x1 filter and pad 0 (got f={f}, pad={pad})"
    if path == "planar" and stride != 1:
        return f"it needs stride 1 (got {stride})"
    if path in ("gemm1x1", "planar", "direct") and C < 1:
        return "it needs at least one input channel"
    return ""


def backward_path_fits(path, C, f, stride, pad):
    """Why ``path`` cannot run a backward of this layer, or "" if it can."""
    if path == "gemm1x1" and (f != 1 or pad != 0):
        return f"it needs a 1x1 filter and pad 0 (got f={f}, pad={pad})"
    if path == "transposed" and (stride != 1 or pad >= f):
        return f"it needs stride 1 and pad < f (got stride={stride}, pad={pad}, f={f})"
    if path in ("gemm1x1", "transposed", "windows", "rows") and C < 1:
        return "it needs at least one input channel"
    return ""


def _natural_forward(C, n_C, f, stride, pad):
    if not _direct_suits(C, n_C, forward=True):
        return "gemm1x1" if f == 1 and pad == 0 and C >= 1 else "im2row"
    return "planar" if stride == 1 and n_C <= PLANAR_MAX_OUTPUTS else "direct"


def _natural_backward(C, n_C, f, stride, pad):
    # The input gradient is itself a stride-1 convolution (n_C -> C), and
    # one the direct forward runs well where it would run that layer.
    if stride == 1 and pad < f and C >= 1 and _direct_suits(n_C, C, forward=True):
        return "transposed"
    if _direct_suits(C, n_C, forward=False):
        return "windows"
    if _direct_suits(C, n_C, forward=True):
        return "rows"
    return "gemm1x1" if f == 1 and pad == 0 and C >= 1 else "im2row"


def _chosen(kind, forced, fits, natural, C, f, stride, pad):
    if forced is None:
        return natural
    why = fits(forced, C, f, stride, pad)
    if why:
        raise ValueError(f"the {kind} path {forced!r} was forced but cannot run "
                         f"this layer: {why}")
    return forced


def _parts(units, work, min_work, threads):
    """Threads to cut ``units`` over: none with less than min_work."""
    return max(1, min(threads, units, work // min_work))


def plan_conv_forward(A_shape, W_shape, stride, pad, threads):
    """The plan of ``conv_forward`` for A (m, H, W, C) and W (f, f, C, n_C)
    (shapes as tuples), on ``threads`` threads.

    Examples
    --------
    >>> from cnnext._plan import plan_conv_forward
    >>> plan_conv_forward((1, 56, 56, 64), (3, 3, 64, 64), 1, 1, threads=2)
    ConvPlan(path='direct', parts=2, reduction_bounds=(), transposed=None, gemm_rows=0)
    >>> plan_conv_forward((32, 28, 28, 128), (1, 1, 128, 256), 1, 0, threads=2).path
    'gemm1x1'
    """
    return _plan_forward(tuple(A_shape), tuple(W_shape), stride, pad, threads,
                         _forced_paths()[0])


# Plans are immutable and a training loop asks for the same few again and
# again: cached, a plan costs a seed-sized call 0.3 us instead of 3-5 us
# (a tenth of the whole call).
@lru_cache(maxsize=1024)
def _plan_forward(A_shape, W_shape, stride, pad, threads, forced):
    C, f, n_C = A_shape[3], W_shape[0], W_shape[3]
    path = _chosen("forward", forced, forward_path_fits,
                   _natural_forward(C, n_C, f, stride, pad), C, f, stride, pad)
    return _forward_plan(A_shape, W_shape, stride, pad, threads, path)


def _forward_plan(A_shape, W_shape, stride, pad, threads, path):
    m, H, Wd, C = A_shape
    f, n_C = W_shape[0], W_shape[3]
    n_H, n_W = conv_output_hw(H, Wd, f, pad, stride)
    if m * n_H * n_W * n_C == 0:
        return ConvPlan("empty", 1)
    work = m * n_H * n_W * n_C * f * f * C
    if path in ("gemm1x1", "im2row"):
        # Cut over output pixels, the rows of the GEMM, in calls of a fixed
        # size that threads take whole: a row's bits must not depend on the
        # thread count through the size of its call (numpy 1.26's OpenBLAS,
        # on its Prescott kernels here, rounds a row differently with M).
        # Calls of >= MIN_GEMM_ROWS rows and MIN_GEMM_WORK multiply-adds, at
        # most MAX_GEMM_CALLS: on this Xeon (model 207), 64 calls of 392 rows
        # made the 1x1 128 -> 256 float64 forward 0.8x as fast and 27 calls
        # of 30 rows a batch-1 3x3 128 -> 128 one 0.6x, against one call per
        # thread. 16 calls still keep 16 cores busy.
        pixels = m * n_H * n_W
        n_calls = max(1, min(MAX_GEMM_CALLS, pixels // MIN_GEMM_ROWS, work // MIN_GEMM_WORK))
        gemm_rows = -(-pixels // n_calls)
        return ConvPlan(path, _parts(-(-pixels // gemm_rows), work, MIN_GEMM_WORK, threads),
                        gemm_rows=gemm_rows)
    return ConvPlan(path, _parts(m * n_H, work, MIN_DIRECT_WORK, threads))


def _reduction_bounds(m, n_H, work, min_work, whole_images):
    """Fixed output-row boundaries of the weight gradient's blocks: a
    function of the problem's size alone, never of the thread count."""
    units = m if whole_images else m * n_H
    step = n_H if whole_images else 1
    n_blocks = max(1, min(MAX_REDUCTION_BLOCKS, units, work // min_work))
    return tuple(units * k // n_blocks * step for k in range(n_blocks + 1))


def plan_conv_backward(A_shape, W_shape, stride, pad, threads):
    """The plan of ``conv_backward`` for A (m, H, W, C) and W (f, f, C, n_C)
    (shapes as tuples), on ``threads`` threads.

    Examples
    --------
    >>> from cnnext._plan import plan_conv_backward
    >>> plan = plan_conv_backward((1, 56, 56, 64), (3, 3, 64, 64), 1, 1, threads=2)
    >>> plan.path, plan.parts, plan.transposed.path
    ('transposed', 2, 'direct')
    """
    return _plan_backward(tuple(A_shape), tuple(W_shape), stride, pad, threads,
                          _forced_paths())


@lru_cache(maxsize=1024)
def _plan_backward(A_shape, W_shape, stride, pad, threads, forced_paths):
    m, H, Wd, C = A_shape
    f, n_C = W_shape[0], W_shape[3]
    n_H, n_W = conv_output_hw(H, Wd, f, pad, stride)
    if m * n_H * n_W * n_C == 0:
        return ConvPlan("empty", 1)
    forced_forward, forced = forced_paths
    path = _chosen("backward", forced, backward_path_fits,
                   _natural_backward(C, n_C, f, stride, pad), C, f, stride, pad)
    K = f * f * C
    transposed = None
    if path == "transposed":
        # dA = conv(dZ padded by f - 1 - pad, flipped filters), n_C -> C.
        inner = forced_forward if forced_forward in ("planar", "direct") else None
        natural = "planar" if C <= PLANAR_MAX_OUTPUTS else "direct"
        transposed = _forward_plan((m, n_H, n_W, n_C), (f, f, n_C, C), 1, f - 1 - pad,
                                   threads, inner or natural)
    # Multiply-adds of the weight gradient, plus the input gradient where it
    # is made inside the same blocks.
    work = m * n_H * n_W * n_C * K * (1 if path == "transposed" else 2)
    gemm = path in ("gemm1x1", "im2row", "rows")
    min_work = MIN_GEMM_WORK if gemm else MIN_DIRECT_WORK
    # Where windows overlap across rows (f > stride), a block must hold whole
    # images for its input gradient to be its own.
    whole_images = path in ("windows", "rows", "im2row")
    bounds = _reduction_bounds(m, n_H, work, max(min_work, MIN_BLOCK_WORK), whole_images)
    return ConvPlan(path, _parts(len(bounds) - 1, work, min_work, threads), bounds,
                    transposed)

