"""JAX (XLA on the CPU) as a contender: jit-compiled NHWC convolution and
pooling, forward and backward.

Forward: ``lax.conv_general_dilated`` with NHWC / HWIO / NHWC dimension
numbers plus the bias; ``lax.reduce_window`` (max, or sum / f*f) for
pooling. Backward: ``jax.vjp`` of the same forward, jit-compiled as one
function of (inputs, output gradient), as a JAX training step computes it.
The inputs are put on the device in :func:`prepare_args`, outside the timing
(a JAX user holds jax arrays); each timed call ends with
``block_until_ready``; :func:`to_cnnext` turns the results into numpy arrays
for the check (untimed). The first call of each shape compiles; the
benchmark's warm-up calls come before any timing.

Threads: XLA sizes its CPU thread pool when jax is first imported, so
:mod:`cnnext.bench.contenders` sets ``XLA_FLAGS`` (:func:`cnnext.bench.contenders.xla_flags`) before
importing this module. ``jax_enable_x64`` is switched on at import so that
float64 rows run in float64.

Importing this module imports jax: :mod:`cnnext.bench.contenders` leaves the
contender out where that fails.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)

_NHWC = ("NHWC", "HWIO", "NHWC")


def versions():
    return {"jax": jax.__version__}


def supports(op, dtype):
    return True


def _conv(A, W, b, stride, pad):
    Z = lax.conv_general_dilated(A, W, (stride, stride), [(pad, pad), (pad, pad)],
                                 dimension_numbers=_NHWC)
    return Z + b


@functools.partial(jax.jit, static_argnames=("stride", "pad"))
def _conv_fwd(A, W, b, stride, pad):
    return _conv(A, W, b, stride, pad)


@functools.partial(jax.jit, static_argnames=("stride", "pad"))
def _conv_bwd(dZ, A, W, b, stride, pad):
    _, pullback = jax.vjp(lambda A, W, b: _conv(A, W, b, stride, pad), A, W, b)
    return pullback(dZ)


def _pool(A, f, stride, mode):
    window, strides = (1, f, f, 1), (1, stride, stride, 1)
    if mode == "max":
        return lax.reduce_window(A, -jnp.inf, lax.max, window, strides, "VALID")
    return lax.reduce_window(A, 0.0, lax.add, window, strides, "VALID") / (f * f)


@functools.partial(jax.jit, static_argnames=("f", "stride", "mode"))
def _pool_fwd(A, f, stride, mode):
    return _pool(A, f, stride, mode)


@functools.partial(jax.jit, static_argnames=("f", "stride", "mode"))
def _pool_bwd(dA, A, f, stride, mode):
    _, pullback = jax.vjp(lambda A: _pool(A, f, stride, mode), A)
    return pullback(dA)[0]


def conv_forward(A, W, b, stride, pad):
    return _conv_fwd(A, W, b, stride=stride, pad=pad).block_until_ready()


def conv_backward(dZ, A, W, b, stride, pad):
    return jax.block_until_ready(_conv_bwd(dZ, A, W, b, stride=stride, pad=pad))


def pool_forward(A, f, stride, mode):
    return _pool_fwd(A, f=f, stride=stride, mode=mode).block_until_ready()


def pool_backward(dA, A, f, stride, mode):
    return _pool_bwd(dA, A, f=f, stride=stride, mode=mode).block_until_ready()


def prepare_args(op, args):
    """cnnext's arguments as the timed call's: device arrays (outside the
    timing) and the static hyperparameters."""
    put = jax.device_put
    if op == "conv_fwd":
        A, W, b, hp = args
        return (put(A), put(W), put(b), hp["stride"], hp["pad"])
    if op == "conv_bwd":
        dZ, (A, W, b, hp) = args
        return (put(dZ), put(A), put(W), put(b), hp["stride"], hp["pad"])
    if op.endswith("fwd"):
        A, hp, mode = args
        return (put(A), hp["f"], hp["stride"], mode)
    dA, (A, hp), mode = args
    return (put(dA), put(A), hp["f"], hp["stride"], mode)


def to_cnnext(op, result):
    """The results as cnnext's numpy arrays (outside the timing)."""
    if op == "conv_bwd":
        return tuple(np.asarray(r) for r in result)
    return np.asarray(result)
