"""JAX (XLA on the CPU) as a contender: jit-compiled NHWC convolution and
pooling, forward and backward.

Forward: ``lax.conv_general_dilated`` with NHWC / HWIO / NHWC dimension
numbers (padding pairs, ``rhs_dilation``, ``feature_group_count``) plus the
bias; ``lax.reduce_window`` (max padded with -inf, or sum / the input
entries of each window) for pooling. Backward: ``jax.vjp`` of the same forward, jit-compiled as one
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

from .._geometry import Geometry
from .geometry import conv_geometry, pool_counts, pool_geometry

jax.config.update("jax_enable_x64", True)

_NHWC = ("NHWC", "HWIO", "NHWC")


def versions():
    return {"jax": jax.__version__}


def supports(op, dtype, args=None):
    """Every row but a dilated max pooling's backward (JAX has no VJP of a
    dilated reduce_window max)."""
    if args is None or op != "max_bwd":
        return True
    _, (A, hp), _ = args
    return pool_geometry(A.shape, hp).dilation == (1, 1)


def _conv(A, W, b, stride, pad, dilation, groups):
    t, bo, l, r = pad
    Z = lax.conv_general_dilated(A, W, stride, [(t, bo), (l, r)], rhs_dilation=dilation,
                                 dimension_numbers=_NHWC, feature_group_count=groups)
    return Z + b


_CONV_STATIC = ("stride", "pad", "dilation", "groups")


@functools.partial(jax.jit, static_argnames=_CONV_STATIC)
def _conv_fwd(A, W, b, stride, pad, dilation, groups):
    return _conv(A, W, b, stride, pad, dilation, groups)


@functools.partial(jax.jit, static_argnames=_CONV_STATIC)
def _conv_bwd(dZ, A, W, b, stride, pad, dilation, groups):
    _, pullback = jax.vjp(lambda A, W, b: _conv(A, W, b, stride, pad, dilation, groups),
                          A, W, b)
    return pullback(dZ)


def _pool(A, f, stride, pad, dilation, mode):
    window, strides = (1, *f, 1), (1, *stride, 1)
    t, b, l, r = pad
    padding, dil = ((0, 0), (t, b), (l, r), (0, 0)), (1, *dilation, 1)
    if mode == "max":  # padded with the init value, -inf
        return lax.reduce_window(A, -jnp.inf, lax.max, window, strides, padding,
                                 window_dilation=dil)
    sums = lax.reduce_window(A, 0.0, lax.add, window, strides, padding, window_dilation=dil)
    if pad == (0, 0, 0, 0):
        return sums / (f[0] * f[1])
    # cnnext's average: divided by the input entries of each window (a
    # constant of the static geometry).
    geo = Geometry(f, stride, pad, dilation, 1, sums.shape[1:3], False)
    counts = pool_counts(A.shape, geo).astype(A.dtype)
    return sums / counts[:, :, None]


_POOL_STATIC = ("f", "stride", "pad", "dilation", "mode")


@functools.partial(jax.jit, static_argnames=_POOL_STATIC)
def _pool_fwd(A, f, stride, pad, dilation, mode):
    return _pool(A, f, stride, pad, dilation, mode)


@functools.partial(jax.jit, static_argnames=_POOL_STATIC)
def _pool_bwd(dA, A, f, stride, pad, dilation, mode):
    _, pullback = jax.vjp(lambda A: _pool(A, f, stride, pad, dilation, mode), A)
    return pullback(dA)[0]


def conv_forward(A, W, b, geo):
    return _conv_fwd(A, W, b, **geo).block_until_ready()


def conv_backward(dZ, A, W, b, geo):
    return jax.block_until_ready(_conv_bwd(dZ, A, W, b, **geo))


def pool_forward(A, geo, mode):
    return _pool_fwd(A, mode=mode, **geo).block_until_ready()


def pool_backward(dA, A, geo, mode):
    return _pool_bwd(dA, A, mode=mode, **geo).block_until_ready()


def _conv_static(A, W, hp):
    geo = conv_geometry(A.shape, W.shape, hp)
    return {"stride": geo.stride, "pad": geo.pad, "dilation": geo.dilation,
            "groups": geo.groups}


def _pool_static(A, hp):
    geo = pool_geometry(A.shape, hp)
    return {"f": geo.f, "stride": geo.stride, "pad": geo.pad, "dilation": geo.dilation}


def prepare_args(op, args):
    """cnnext's arguments as the timed call's: device arrays (outside the
    timing) and the static geometry, normalised as cnnext does."""
    put = jax.device_put
    if op == "conv_fwd":
        A, W, b, hp = args
        return (put(A), put(W), put(b.reshape(1, 1, 1, -1)), _conv_static(A, W, hp))
    if op == "conv_bwd":
        dZ, (A, W, b, hp) = args
        return (put(dZ), put(A), put(W), put(b.reshape(1, 1, 1, -1)), _conv_static(A, W, hp))
    if op.endswith("fwd"):
        A, hp, mode = args
        return (put(A), _pool_static(A, hp), mode)
    dA, (A, hp), mode = args
    return (put(dA), put(A), _pool_static(A, hp), mode)


def to_cnnext(op, result):
    """The results as cnnext's numpy arrays (outside the timing)."""
    if op == "conv_bwd":
        return tuple(np.asarray(r) for r in result)
    return np.asarray(result)
