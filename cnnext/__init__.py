"""cnnext: the "Convolutional Model: step by step" API, compiled.

The eight functions of the assignment, with its names, signatures, caches and
hyperparameter dictionaries, on NHWC numpy arrays of shape
(m, n_H, n_W, n_C). The loops run in private Cython kernels (``_conv``,
``_pool``) with the GIL released; this module, over the checks of
``_validation``, validates arguments, decides the dtype, manages caches, and is
the only public surface.

dtype rules, for every function: float32 in gives float32 out, float64 gives
float64, float16 is computed in float32, integer and bool inputs are computed
in float64, and mixed inputs follow ``np.result_type``. Complex, object,
string and long-double inputs are refused with a TypeError.
"""
import numbers

import numpy as np

try:
    from . import _conv, _pool
except ImportError as exc:  # the source tree, not an installed build
    import os as _os
    raise ImportError(
        f"cnnext's compiled kernels could not be imported from "
        f"{_os.path.dirname(__file__)} ({exc}). This is probably the source "
        f"checkout shadowing the installed package: run from another directory "
        f"(python -m puts the current one first on sys.path), use the 'cnnext' "
        f"command, or build in place with 'python setup.py build_ext --inplace'."
    ) from None
from . import _dispatch, _general, _plan
from ._parallel import for_batch, get_num_threads, set_num_threads
from ._threads import threads
from ._validation import (_as_real_array, _check_4d, _check_cache, _check_grad_shape,
                          _check_mode, _compute_dtype, _conv_geometry, _pool_geometry,
                          _specialized)
from ._version import __version__
from .gradcheck import gradcheck

__all__ = [
    "zero_pad",
    "conv_single_step",
    "conv_forward",
    "conv_backward",
    "pool_forward",
    "pool_backward",
    "create_mask_from_window",
    "distribute_value",
    "gradcheck",
    "get_num_threads",
    "set_num_threads",
    "threads",
    "show_config",
    "__version__",
]

# --------------------------------------------------------------------------
# The public API
# --------------------------------------------------------------------------

def show_config(mode="stdout"):
    """Show how this cnnext was built and what it runs on, as
    ``numpy.show_config`` does.

    The kernels are compiled once per instruction-set level (on x86-64:
    baseline SSE2, AVX2 + FMA, AVX-512) and the highest level the CPU runs
    is picked at import; the environment variable ``CNNEXT_CPU_LEVEL``
    (``baseline``, ``avx2``, ``avx512``) asks for a lower one. Also shown:
    the compiler, and the BLAS that the large convolutions call (with
    threadpoolctl installed).

    Parameters
    ----------
    mode : {"stdout", "dicts"}
        Print the configuration, or return it as a dict.

    Examples
    --------
    >>> import cnnext
    >>> kernels = cnnext.show_config(mode="dicts")["kernels"]
    >>> kernels["level running"] in kernels["levels built"]
    True
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    info = {"cnnext": __version__, **_dispatch.config()}
    if mode == "dicts":
        return info
    import json
    print(json.dumps(info, indent=2))


def zero_pad(X, pad):
    """Pad every image of X with ``pad`` zeros on height and width.

    Parameters
    ----------
    X : array_like, shape (m, n_H, n_W, n_C)
        A batch of m images. Its dtype is kept (padding computes nothing).
    pad : int
        Amount of zero padding around each image, >= 0.

    Returns
    -------
    X_pad : ndarray, shape (m, n_H + 2*pad, n_W + 2*pad, n_C)

    Raises
    ------
    ValueError
        If X is not 4-D or pad is negative.
    TypeError
        If pad is not an integer or X is not real-valued.

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> cnnext.zero_pad(np.ones((1, 2, 2, 1)), 1)[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 1., 0.],
           [0., 1., 1., 0.],
           [0., 0., 0., 0.]])
    """
    X = _as_real_array(X, "X")
    _check_4d(X, "X", "(m, n_H, n_W, n_C)")
    if isinstance(pad, (bool, np.bool_)) or not isinstance(pad, numbers.Integral):
        raise TypeError(f"pad must be an integer; got {type(pad).__name__} {pad!r}")
    pad = int(pad)
    if pad < 0:
        raise ValueError(f"pad must be >= 0; got {pad}")
    m, H, Wd, C = X.shape
    X_pad = np.zeros((m, H + 2 * pad, Wd + 2 * pad, C), dtype=X.dtype)
    X_pad[:, pad:pad + H, pad:pad + Wd, :] = X
    return X_pad


def conv_single_step(a_slice_prev, W, b):
    """Apply one filter W and bias b to one window: ``sum(a_slice_prev * W) + b``.

    Parameters
    ----------
    a_slice_prev : array_like, shape (f, f, n_C_prev)
    W : array_like, shape (f, f, n_C_prev)
    b : number or array_like with one element, e.g. shape (1, 1, 1)

    Returns
    -------
    Z : numpy floating scalar (float32 or float64, by the dtype rules)

    Raises
    ------
    ValueError
        If the shapes differ, are not 3-D, or b has more than one element.

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> float(cnnext.conv_single_step(np.ones((2, 2, 1)), np.ones((2, 2, 1)), 0.5))
    4.5
    """
    a = _as_real_array(a_slice_prev, "a_slice_prev")
    W = _as_real_array(W, "W")
    b_given, b = b, _as_real_array(b, "b")
    if a.ndim != 3:
        raise ValueError(f"a_slice_prev must be a 3-D array of shape (f, f, "
                         f"n_C_prev); got a {a.ndim}-D array of shape {a.shape}")
    if W.shape != a.shape:
        raise ValueError(f"W must have the shape of a_slice_prev, {a.shape}; "
                         f"got {W.shape}")
    if b.size != 1:
        raise ValueError(f"b must be a single number (shape (1, 1, 1), () or a "
                         f"scalar); got shape {b.shape}")
    # A Python number b is "weak" (NEP 50): float32 a and W stay float32.
    dtype = _compute_dtype(a, W, b_given if np.isscalar(b_given) else b)
    a = a.astype(dtype, copy=False).ravel()
    W = W.astype(dtype, copy=False).ravel()
    return dtype.type(np.dot(a, W) + b.astype(dtype).reshape(()))


def conv_forward(A_prev, W, b, hparameters):
    """Forward pass of a convolution layer.

    ``Z[i, h, w, c] = sum(A_pad[i, h*s:h*s+f, w*s:w*s+f, :] * W[..., c]) + b[..., c]``
    where A_pad is A_prev zero-padded by ``pad`` and s is the stride.

    Parameters
    ----------
    A_prev : array_like, shape (m, n_H_prev, n_W_prev, n_C_prev)
    W : array_like, shape (f_h, f_w, n_C_prev // groups, n_C)
        The assignment's square (f, f, n_C_prev, n_C), or rectangular.
    b : array_like of shape (1, 1, 1, n_C) or (n_C,), or None (no bias)
    hparameters : dict
        The assignment's ``{"stride": int >= 1, "pad": int >= 0}``, or more:

        - ``"stride"``: an int, or ``(s_h, s_w)``;
        - ``"pad"``: an int; ``(p_h, p_w)``; ``(top, bottom, left, right)``;
          ``"valid"`` (no padding); ``"same"`` (TensorFlow's rule: the output
          has ``ceil(n_prev / stride)`` rows and columns, an odd extra row or
          column of padding goes at the bottom or right);
        - ``"dilation"`` (optional, default 1): an int, or ``(d_h, d_w)``: the
          filter's taps are that far apart;
        - ``"groups"`` (optional, default 1): an int dividing n_C_prev and
          n_C; output channels ``g*n_C/groups`` on read input channels
          ``g*n_C_prev/groups`` on (``groups == n_C_prev``: depthwise).

    Returns
    -------
    Z : ndarray, shape (m, n_H, n_W, n_C)
        ``n_H = (n_H_prev + top + bottom - d_h*(f_h - 1) - 1) // s_h + 1``,
        the assignment's ``(n_H_prev - f + 2*pad) // stride + 1`` for its
        hyperparameters; likewise n_W.
    cache : tuple
        ``(A_prev, W, b, hparameters)``, for :func:`conv_backward`.

    Raises
    ------
    ValueError
        On mismatched shapes or channels, stride < 1, pad < 0, a filter larger
        than the padded input, groups not dividing the channels, or missing
        or unknown hyperparameters.
    TypeError
        On non-integer hyperparameters or unsupported dtypes.

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> A = np.ones((1, 3, 3, 1)); W = np.ones((2, 2, 1, 1)); b = np.zeros((1, 1, 1, 1))
    >>> Z, cache = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 0})
    >>> Z[0, :, :, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    A, W_arr, b_arr, geo, out_shape = _conv_geometry(A_prev, W, b, hparameters)
    dtype = _compute_dtype(A, W_arr) if b_arr is None else _compute_dtype(A, W_arr, b_arr)
    if not geo.square:
        Z = _general.conv_forward(A.astype(dtype, copy=False), W_arr.astype(dtype, copy=False),
                                  None if b_arr is None else b_arr.astype(dtype, copy=False),
                                  geo, dtype)
        return Z, (A_prev, W, b, hparameters)
    f, _, C, n_C = W_arr.shape
    stride, pad = geo.stride[0], geo.pad[0]
    if b_arr is None:
        b_arr = np.zeros((1, 1, 1, n_C), dtype=dtype)
    Z = np.empty(out_shape, dtype=dtype)
    plan = _plan.plan_conv_forward(A.shape, W_arr.shape, stride, pad, get_num_threads())
    _conv.conv_forward(np.ascontiguousarray(A, dtype=dtype),
                       np.ascontiguousarray(W_arr, dtype=dtype).reshape(f * f * C, n_C),
                       b_arr.astype(dtype, copy=False), Z, f, stride, pad, plan)
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ, cache):
    """Backward pass of a convolution layer.

    Parameters
    ----------
    dZ : array_like, shape (m, n_H, n_W, n_C)
        Gradient of the cost with respect to conv_forward's output Z.
    cache : tuple
        ``(A_prev, W, b, hparameters)`` as returned by :func:`conv_forward`.

    Returns
    -------
    dA_prev : ndarray, shape of A_prev
    dW : ndarray, shape of W
    db : ndarray, shape of b ((1, 1, 1, n_C) or (n_C,)), or None if b is None

    Raises
    ------
    ValueError
        On a malformed cache or a dZ whose shape is not that of Z.

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> A = np.ones((1, 3, 3, 1)); W = np.ones((2, 2, 1, 1)); b = np.zeros((1, 1, 1, 1))
    >>> Z, cache = cnnext.conv_forward(A, W, b, {"stride": 1, "pad": 0})
    >>> dA, dW, db = cnnext.conv_backward(np.ones_like(Z), cache)
    >>> dA[0, :, :, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    _check_cache(cache, 4, "(A_prev, W, b, hparameters)", "conv_forward")
    A, W, b, geo, out_shape = _conv_geometry(*cache)
    dZ = _as_real_array(dZ, "dZ")
    _check_grad_shape(dZ, "dZ", out_shape, "conv_forward")
    dtype = _compute_dtype(A, W, dZ) if b is None else _compute_dtype(A, W, b, dZ)
    n_C = W.shape[3]
    dZ = np.ascontiguousarray(dZ, dtype=dtype)
    # einsum's column sums run 3-5x faster than dZ.sum(axis=(0, 1, 2)) here.
    rows = dZ.shape[0] * dZ.shape[1] * dZ.shape[2]
    db = None if b is None else np.einsum("ij->j", dZ.reshape(rows, n_C)).reshape(
        np.shape(cache[2]))
    if not geo.square:
        dA_prev, dW = _general.conv_backward(A.astype(dtype, copy=False),
                                             W.astype(dtype, copy=False), dZ, geo, dtype)
        return dA_prev, dW, db
    f, _, C, _ = W.shape
    stride, pad = geo.stride[0], geo.pad[0]
    dA_prev = np.zeros(A.shape, dtype=dtype)
    dW = np.zeros((f * f * C, n_C), dtype=dtype)
    plan = _plan.plan_conv_backward(A.shape, W.shape, stride, pad, get_num_threads())
    _conv.conv_backward(np.ascontiguousarray(A, dtype=dtype),
                        np.ascontiguousarray(W, dtype=dtype).reshape(f * f * C, n_C),
                        dZ, dA_prev, dW, f, stride, pad, plan)
    return dA_prev, dW.reshape(W.shape), db


def pool_forward(A_prev, hparameters, mode="max"):
    """Forward pass of a max or average pooling layer.

    Parameters
    ----------
    A_prev : array_like, shape (m, n_H_prev, n_W_prev, n_C)
    hparameters : dict
        The assignment's ``{"f": int >= 1, "stride": int >= 1}``, or more:
        ``"f"`` and ``"stride"`` an int or an (h, w) pair; ``"pad"`` and
        ``"dilation"`` (optional) as in :func:`conv_forward`. Max pooling
        pads with -inf (padding is never a window's max); average pooling
        divides by the number of input entries in the window, excluding the
        padding (Keras' and TensorFlow's convention), unless
        ``"count_include_pad": True`` (PyTorch's default) divides by
        ``f_h * f_w``. No window may lie in the padding alone.
    mode : {"max", "average"}

    Returns
    -------
    A : ndarray, shape (m, n_H, n_W, n_C)
        ``n_H = (n_H_prev - f) // stride + 1`` for the assignment's
        hyperparameters (in general as in :func:`conv_forward`), likewise
        n_W. Max pooling propagates NaN like ``np.max``.
    cache : tuple
        ``(A_prev, hparameters)``, for :func:`pool_backward`. In max mode
        (without padding or dilation, A_prev of 16384 elements or more)
        the tuple also carries a record of
        where each window's maxima are, one bit per window entry, from which
        pool_backward writes the gradient without reading A_prev again; it
        unpacks, indexes, compares and prints as the plain tuple does.

    Raises
    ------
    ValueError
        On a window larger than the input, f or stride < 1, an unknown mode
        or missing hyperparameters.
    TypeError
        On non-integer hyperparameters or unsupported dtypes.

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> A = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> cnnext.pool_forward(A, {"f": 2, "stride": 2})[0][0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    _check_mode(mode)
    A, geo, out_shape, count_include_pad = _pool_geometry(A_prev, hparameters, mode)
    dtype = _compute_dtype(A)
    is_max = mode == "max"
    if not geo.square:
        return (_general.pool_forward(A.astype(dtype, copy=False), geo, is_max,
                                      count_include_pad, dtype), (A_prev, hparameters))
    f, stride = geo.f[0], geo.stride[0]
    A_c = np.ascontiguousarray(A, dtype=dtype)
    out = np.empty(out_shape, dtype=dtype)
    if not is_max or A_c.size < _RECORD_MIN_ELEMENTS:
        for_batch(_specialized(_pool.pool_forward, dtype), (A_c, out),
                  (f, stride, is_max), A_c.size)
        return out, (A_prev, hparameters)
    record = np.empty(out_shape[:3] + (_pool.tie_record_bytes(f, A.shape[3]),), np.uint8)
    for_batch(_specialized(_pool.max_pool_forward_recording, dtype), (A_c, out, record),
              (f, stride), A_c.size)
    return out, _MaxPoolCache((A_prev, hparameters), record, geo, A.shape, dtype)


# Inputs of fewer elements are not recorded (their cache is the plain tuple):
# the record costs a call about 1.6 us, more than pool_backward saves on
# them. A forward and backward pair ran 0.75-0.98x as fast recorded at
# 256-4K elements, 0.84-1.27x at 16K, 0.84-1.33x at 64K and 1.0-1.3x past
# (Intel Xeon, AVX-512; f 2-8, 2-64 channels, both dtypes).
_RECORD_MIN_ELEMENTS = 16384


class _MaxPoolCache(tuple):
    """Max pool_forward's cache: the assignment's ``(A_prev, hparameters)``
    tuple, which it unpacks, indexes, compares and prints as, carrying beside
    it a record of where every window's maxima are (a bit per window entry,
    1/32 of A_prev's size in float32), so that pool_backward neither reads
    A_prev again nor recomputes a max. The record answers only for the
    geometry, shape and dtype it was made for: pool_backward recomputes from
    A_prev for any other cache (a plain tuple, a changed hparameters)."""

    def __new__(cls, contents, record, geometry, input_shape, dtype):
        cache = super().__new__(cls, contents)
        cache._record = record
        cache._made_for = (geometry, input_shape, dtype)
        return cache

    def __reduce__(self):
        # Copies and pickles are the plain tuple (they recompute).
        return tuple, (tuple(self),)

    def record_for(self, geometry, input_shape, dtype):
        """The record when it was made for this call, else None."""
        return self._record if self._made_for == (geometry, input_shape, dtype) else None


def pool_backward(dA, cache, mode="max"):
    """Backward pass of a pooling layer.

    In max mode the gradient of each window goes to **every** entry equal to
    the window's max (the assignment's ``x == np.max(x)`` mask), so ties
    each receive the full gradient. In average mode it is spread evenly.

    Given max pool_forward's own cache, the gradient goes where the maxima
    were when the forward ran: the cache's record of them is used, and
    A_prev is not read. Should A_prev be changed in place in between, the
    result is still the gradient of the forward that ran (as in PyTorch,
    whose max pooling keeps the argmax indices). Any other cache, such as
    a tuple built by hand, a copy or a pickle of one (both plain tuples),
    or one whose hparameters were changed since, is recomputed from the
    A_prev it holds, as it is now.

    Parameters
    ----------
    dA : array_like, shape (m, n_H, n_W, n_C)
        Gradient of the cost with respect to pool_forward's output.
    cache : tuple
        ``(A_prev, hparameters)`` as returned by :func:`pool_forward`.
    mode : {"max", "average"}

    Returns
    -------
    dA_prev : ndarray, shape of A_prev

    Raises
    ------
    ValueError
        On a malformed cache, an unknown mode or a dA whose shape is not
        that of pool_forward's output.

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> A = np.array([[1.0, 3.0], [4.0, 2.0]]).reshape(1, 2, 2, 1)
    >>> out, cache = cnnext.pool_forward(A, {"f": 2, "stride": 1})
    >>> cnnext.pool_backward(np.ones_like(out), cache)[0, :, :, 0]
    array([[0., 0.],
           [1., 0.]])
    """
    _check_cache(cache, 2, "(A_prev, hparameters)", "pool_forward")
    _check_mode(mode)
    A, geo, out_shape, count_include_pad = _pool_geometry(*cache, mode)
    dA = _as_real_array(dA, "dA")
    _check_grad_shape(dA, "dA", out_shape, "pool_forward")
    dtype = _compute_dtype(A, dA)
    if not geo.square:
        return _general.pool_backward(A.astype(dtype, copy=False), dA.astype(dtype, copy=False),
                                      geo, mode == "max", count_include_pad, dtype)
    f, stride = geo.f[0], geo.stride[0]
    A_c = np.ascontiguousarray(A, dtype=dtype)
    dA_c = np.ascontiguousarray(dA, dtype=dtype)
    dA_prev = np.empty(A.shape, dtype=dtype)  # every element written by the kernel
    is_max = mode == "max"
    record = (cache.record_for(geo, A.shape, dtype)
              if is_max and type(cache) is _MaxPoolCache else None)
    if record is not None:
        for_batch(_specialized(_pool.max_pool_backward_recorded, dtype),
                  (dA_c, record, dA_prev), (f, stride), A_c.size)
        return dA_prev
    for_batch(_specialized(_pool.pool_backward, dtype), (A_c, dA_c, dA_prev),
              (f, stride, is_max), A_c.size)
    return dA_prev


def create_mask_from_window(x):
    """Boolean mask of the entries of x equal to its maximum (ties all True).

    Parameters
    ----------
    x : array_like, non-empty, e.g. shape (f, f)

    Returns
    -------
    mask : ndarray of bool, shape of x
        All False when x holds a NaN (NaN equals nothing).

    Examples
    --------
    >>> import numpy as np, cnnext
    >>> cnnext.create_mask_from_window(np.array([[1, 3], [4, 2]]))
    array([[False, False],
           [ True, False]])
    """
    x = _as_real_array(x, "x")
    if x.size == 0:
        raise ValueError(f"x must not be empty; got shape {x.shape}")
    return x == np.max(x)


def distribute_value(dz, shape):
    """An array of ``shape`` filled with ``dz / (n_H * n_W)``.

    Parameters
    ----------
    dz : real number (or a one-element array)
    shape : tuple of two ints (n_H, n_W), each >= 1

    Returns
    -------
    a : ndarray of ``shape``, float64 (float32 if dz is float32)

    Examples
    --------
    >>> import cnnext
    >>> cnnext.distribute_value(2, (2, 2))
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    dz = _as_real_array(dz, "dz")
    if dz.size != 1:
        raise ValueError(f"dz must be a single number; got shape {dz.shape}")
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(n, numbers.Integral)
                       and not isinstance(n, (bool, np.bool_)) for n in shape)):
        raise TypeError(f"shape must be a tuple of two integers (n_H, n_W); got {shape!r}")
    n_H, n_W = (int(n) for n in shape)
    if n_H < 1 or n_W < 1:
        raise ValueError(f"shape must have n_H >= 1 and n_W >= 1; got {shape!r}")
    dtype = _compute_dtype(dz)
    average = dz.astype(dtype).reshape(()) / dtype.type(n_H * n_W)
    return np.full((n_H, n_W), average, dtype=dtype)
