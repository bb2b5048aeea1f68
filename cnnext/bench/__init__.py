"""Benchmark cnnext's conv and pool kernels against five other implementations.

Run ``cnnext-bench`` or ``python -m cnnext.bench`` (``--help`` lists the
options; ``--quick`` for a short run, ``--json`` to keep every number,
``--render run.json --markdown`` to print a kept run as the README's table;
``--no-torch``, ``--no-onnx``, ``--no-jax`` leave a contender out; the extra
``bench-more`` installs onnx, onnxruntime and jax).
In one process, for every case of issue 3, the layers of real networks of
issue 10 and those of the whole geometry of issue 12 (depthwise, dilated,
1x7 / 7x1, 'same' and padded pools; :mod:`~cnnext.bench.cases`), forward
and backward, float32 and
float64, it times side by side, alternating the contenders and taking
medians over repeats, each contender warmed up before its calls per sample
are calibrated:

cnnext
    the package under test.
torch
    PyTorch CPU, when installed (:mod:`~cnnext.bench.torch_cpu`): the NHWC
    arrays are seen as channels_last tensors; the layout changes are inside
    the timing. Max pooling's backward gets its argmax indices from a
    forward call outside the timing, as an autograd user would have them.
onnx
    ONNX Runtime's CPU provider, when onnx and onnxruntime are installed
    (:mod:`~cnnext.bench.onnx_runtime`), float32 forwards only: a one-node
    graph per row, fed the NCHW input prepared outside the timing.
jax
    JAX on XLA's CPU backend, when installed (:mod:`~cnnext.bench.jax_xla`):
    jit-compiled NHWC forward and ``jax.vjp`` backward, on device arrays put
    there outside the timing, float64 rows with x64 enabled.
numpy
    a vectorised numpy version (:mod:`~cnnext.bench.numpy_vectorised`).
seed
    a straightforward numpy transcription of the seed's loops
    (:mod:`~cnnext.bench.seed_loops`), timed on a subsample of (example,
    output row) pairs, reported per output element and extrapolated to the
    full case.

numpy and the seed loops run the assignment's geometry only: the rows of
issue 12 leave them out. The depthwise rows also report GB/s (each array
read or written once) against a measured memory-copy bandwidth.

It also measures the GFLOP/s of a large matmul of each dtype in the same run
(the best of its repeats: the practical peak each conv row's "cnnext % peak"
is a share of),
the peak traced memory (tracemalloc) of one cnnext call minus the size of its
outputs ("scratch"), and the growth of traced memory and RSS over repeated
calls (leak check).

Environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on some machines
for old OpenBLAS builds, slow a current numpy's OpenBLAS down. When either is
set, the command runs itself again without both (say ``--keep-openblas-env``
to keep them); the header reports it, and which BLAS kernel and thread count
threadpoolctl finds.

Modules, one job each: :mod:`~cnnext.bench.cases` (the rows),
:mod:`~cnnext.bench.contenders` (who is timed, and how to add one),
:mod:`~cnnext.bench.timing`, :mod:`~cnnext.bench.environment`,
:mod:`~cnnext.bench.report` and :mod:`~cnnext.bench.cli` (the command).
"""
from .cli import BenchError, console_main, main

__all__ = ["BenchError", "console_main", "main"]
