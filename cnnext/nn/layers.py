"""The layers: Conv2D, ReLU, MaxPool2D, AvgPool2D, Flatten and Dense.

Every layer works on NHWC batches ``(m, n_H, n_W, n_C)`` (Dense on
``(m, n_in)``) and keeps the cache of its last forward pass for its backward
pass. Convolution and pooling call :func:`cnnext.conv_forward`,
:func:`cnnext.conv_backward`, :func:`cnnext.pool_forward` and
:func:`cnnext.pool_backward` and keep the caches those return, so their math
lives in one place, the compiled kernels; output shapes come from
``cnnext._geometry``. :class:`Dense` is a numpy matrix product.

Examples
--------
>>> import numpy as np
>>> from cnnext.nn.layers import Conv2D, MaxPool2D
>>> conv = Conv2D(4, 3, pad=1).build((8, 8, 1), rng=0)
>>> pool = MaxPool2D(2).build(conv.output_shape)
>>> pool.forward(conv.forward(np.ones((2, 8, 8, 1)))).shape
(2, 4, 4, 4)
"""
import numpy as np

import cnnext
from cnnext._geometry import conv_output_shape, pool_output_shape

from ._checks import check_dtype, check_int, describe_batch
from ._weights import check_init, init_weights

__all__ = ["Layer", "Conv2D", "ReLU", "MaxPool2D", "AvgPool2D", "Flatten", "Dense"]


class Layer:
    """Base class of every layer.

    A layer is built once for an input shape (without the batch axis) and a
    dtype, which creates its parameters. ``forward`` maps a batch to a batch
    and remembers what ``backward`` needs; ``backward`` takes the gradient
    of the cost with respect to the output, stores the gradients of the
    parameters in ``grads`` and returns the gradient with respect to the
    input.

    Attributes
    ----------
    params : dict of str to ndarray
        Trainable parameters (empty for layers without any).
    grads : dict of str to ndarray
        Gradients of the parameters from the last ``backward``.
    input_shape, output_shape : tuple of int
        Shapes without the batch axis, set by :meth:`build`.
    dtype : numpy.dtype
        The dtype of the parameters and outputs, set by :meth:`build`.
    cache : object
        What the last ``forward`` kept for ``backward``.

    Examples
    --------
    A subclass overrides ``forward`` and ``backward`` (and ``_build`` when
    it has parameters or changes the shape):

    >>> import numpy as np
    >>> from cnnext.nn import Layer
    >>> class Double(Layer):
    ...     def forward(self, X):
    ...         return 2 * self._check_input(X)
    ...     def backward(self, dout):
    ...         return 2 * dout
    >>> Double().build((3,), dtype="float64").forward(np.ones((1, 3)))
    array([[2., 2., 2.]])
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.input_shape = None
        self.output_shape = None
        self.dtype = None
        self.cache = None

    @property
    def built(self):
        """Whether :meth:`build` has run."""
        return self.output_shape is not None

    def build(self, input_shape, rng=None, dtype="float32"):
        """Create the parameters for inputs of ``input_shape``.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one example, without the batch axis.
        rng : numpy.random.Generator or int or None
            Source of the initial weights (a seed is passed to
            :func:`numpy.random.default_rng`).
        dtype : {"float32", "float64"}

        Returns
        -------
        self : Layer

        Raises
        ------
        TypeError
            If ``dtype`` is not float32 or float64.
        ValueError
            If the layer cannot take inputs of ``input_shape``.
        """
        self.dtype = check_dtype(dtype)
        self.input_shape = tuple(int(n) for n in input_shape)
        self.output_shape = self._build(self.input_shape, np.random.default_rng(rng))
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return self

    def _build(self, input_shape, rng):
        return input_shape

    def _check_input(self, X):
        if not self.built:
            raise RuntimeError(f"{type(self).__name__} is not built; call "
                               f"build(input_shape) or use it in a Sequential")
        X = np.asarray(X, dtype=self.dtype)
        if X.shape[1:] != self.input_shape:
            raise ValueError(f"{type(self).__name__} expects inputs of shape "
                             f"(m, {', '.join(map(str, self.input_shape))}); "
                             f"{describe_batch(X.shape, self.input_shape)}")
        return X

    def forward(self, X):
        """Output of the layer for the batch ``X``; remembers the cache.

        Parameters
        ----------
        X : array_like, shape (m,) + input_shape

        Returns
        -------
        out : ndarray, shape (m,) + output_shape, in the layer's dtype
        """
        raise NotImplementedError

    def backward(self, dout):
        """Gradient with respect to the input of the last ``forward``.

        Parameters
        ----------
        dout : array_like, shape (m,) + output_shape
            Gradient of the cost with respect to the last output.

        Returns
        -------
        dX : ndarray, shape (m,) + input_shape
        """
        raise NotImplementedError

    def get_config(self):
        """Constructor arguments, as a JSON-serialisable dict."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Conv2D(Layer):
    """2-D convolution over NHWC batches, by :func:`cnnext.conv_forward`.

    Parameters
    ----------
    n_C : int
        Number of filters (output channels).
    f : int
        Filter height and width.
    stride : int, default 1
    pad : int, default 0
        Zero padding on each side of height and width.
    init : {"he", "glorot"}, default "he"
        He-normal or Glorot-uniform initial weights; biases start at zero.

    Attributes
    ----------
    params : dict
        ``W`` of shape (f, f, n_C_prev, n_C) and ``b`` of shape (1, 1, 1, n_C).
    cache : tuple
        The cache returned by :func:`cnnext.conv_forward` on the last batch.

    Raises
    ------
    TypeError, ValueError
        If an argument is not an integer in range or ``init`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> conv = nn.Conv2D(2, 3, pad=1).build((5, 5, 1), rng=0)
    >>> conv.forward(np.ones((4, 5, 5, 1))).shape
    (4, 5, 5, 2)
    """

    def __init__(self, n_C, f, stride=1, pad=0, init="he"):
        super().__init__()
        self.n_C = check_int(n_C, "n_C", 1)
        self.f = check_int(f, "f", 1)
        self.stride = check_int(stride, "stride", 1)
        self.pad = check_int(pad, "pad", 0)
        self.init = check_init(init)
        self.hparameters = {"stride": self.stride, "pad": self.pad}

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D needs inputs of shape (n_H, n_W, n_C); got "
                             f"{input_shape}")
        H, Wd, C = input_shape
        f, pad = self.f, self.pad
        if f > H + 2 * pad or f > Wd + 2 * pad:
            raise ValueError(f"Conv2D filter f={f} is larger than its padded input "
                             f"{H + 2 * pad}x{Wd + 2 * pad}")
        self.params = {
            "W": init_weights(rng, (f, f, C, self.n_C), f * f * C,
                              f * f * self.n_C, self.init, self.dtype),
            "b": np.zeros((1, 1, 1, self.n_C), dtype=self.dtype),
        }
        return conv_output_shape(input_shape, f, self.n_C, pad, self.stride)

    def forward(self, X):
        """Return ``Z`` from :func:`cnnext.conv_forward`; keep its cache."""
        X = self._check_input(X)
        Z, self.cache = cnnext.conv_forward(X, self.params["W"], self.params["b"],
                                            self.hparameters)
        return Z

    def backward(self, dZ):
        """Return ``dA_prev`` from :func:`cnnext.conv_backward`; store dW, db."""
        dA_prev, self.grads["W"], self.grads["b"] = cnnext.conv_backward(dZ, self.cache)
        return dA_prev

    def get_config(self):
        """``n_C``, ``f``, ``stride``, ``pad`` and ``init``."""
        return {"n_C": self.n_C, "f": self.f, "stride": self.stride,
                "pad": self.pad, "init": self.init}


class ReLU(Layer):
    """Rectified linear unit, ``max(X, 0)``; its gradient at 0 is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> relu = nn.ReLU().build((3,), dtype="float64")
    >>> relu.forward(np.array([[-1.0, 0.0, 2.0]]))  # X * (X > 0): -1 gives -0.0
    array([[-0.,  0.,  2.]])
    >>> relu.backward(np.ones((1, 3)))
    array([[0., 0., 1.]])
    """

    def forward(self, X):
        """``max(X, 0)``; keeps where ``X > 0``."""
        X = self._check_input(X)
        self.cache = X > 0
        return X * self.cache

    def backward(self, dout):
        """``dout`` where the last input was > 0, else 0."""
        return dout * self.cache


class _Pool2D(Layer):
    mode = ""  # "max" or "average", set by the subclasses

    def __init__(self, f, stride=None):
        super().__init__()
        self.f = check_int(f, "f", 1)
        self.stride = self.f if stride is None else check_int(stride, "stride", 1)
        self.hparameters = {"f": self.f, "stride": self.stride}

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} needs inputs of shape "
                             f"(n_H, n_W, n_C); got {input_shape}")
        H, Wd, _ = input_shape
        if self.f > H or self.f > Wd:
            raise ValueError(f"{type(self).__name__} window f={self.f} is larger "
                             f"than its input {H}x{Wd}")
        return pool_output_shape(input_shape, self.f, self.stride)

    def forward(self, X):
        """Return the pooled batch from :func:`cnnext.pool_forward`; keep its cache."""
        X = self._check_input(X)
        A, self.cache = cnnext.pool_forward(X, self.hparameters, mode=self.mode)
        return A

    def backward(self, dA):
        """Return ``dA_prev`` from :func:`cnnext.pool_backward`."""
        return cnnext.pool_backward(dA, self.cache, mode=self.mode)

    def get_config(self):
        """``f`` and ``stride``."""
        return {"f": self.f, "stride": self.stride}


class MaxPool2D(_Pool2D):
    """Max pooling by :func:`cnnext.pool_forward` (``mode="max"``).

    Parameters
    ----------
    f : int
        Window height and width.
    stride : int, optional
        Defaults to ``f`` (non-overlapping windows).

    Notes
    -----
    As in the assignment, the backward pass sends a window's gradient to
    every entry equal to its maximum, so ties each receive all of it.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> pool = nn.MaxPool2D(2).build((2, 2, 1), dtype="float64")
    >>> pool.forward(np.array([1.0, 3.0, 4.0, 2.0]).reshape(1, 2, 2, 1)).ravel()
    array([4.])
    """
    mode = "max"


class AvgPool2D(_Pool2D):
    """Average pooling by :func:`cnnext.pool_forward` (``mode="average"``).

    Parameters
    ----------
    f : int
        Window height and width.
    stride : int, optional
        Defaults to ``f`` (non-overlapping windows).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> pool = nn.AvgPool2D(2).build((2, 2, 1), dtype="float64")
    >>> pool.forward(np.array([1.0, 3.0, 4.0, 2.0]).reshape(1, 2, 2, 1)).ravel()
    array([2.5])
    """
    mode = "average"


class Flatten(Layer):
    """Reshape ``(m, n_H, n_W, n_C)`` to ``(m, n_H * n_W * n_C)``, in NHWC order.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> flat = nn.Flatten().build((2, 3, 4))
    >>> flat.output_shape, flat.forward(np.zeros((5, 2, 3, 4))).shape
    ((24,), (5, 24))
    """

    def _build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, X):
        """``X`` reshaped to ``(m, -1)``."""
        X = self._check_input(X)
        return X.reshape(X.shape[0], -1)

    def backward(self, dout):
        """``dout`` reshaped back to ``(m,) + input_shape``."""
        return np.reshape(dout, (-1,) + self.input_shape)


class Dense(Layer):
    """Fully connected layer, ``X @ W + b``, on inputs of shape (m, n_in).

    Parameters
    ----------
    n_out : int
        Number of outputs.
    init : {"glorot", "he"}, default "glorot"
        Glorot-uniform or He-normal initial weights; biases start at zero.

    Attributes
    ----------
    params : dict
        ``W`` of shape (n_in, n_out) and ``b`` of shape (n_out,).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> dense = nn.Dense(3).build((4,), rng=0)
    >>> dense.params["W"].shape, dense.forward(np.ones((2, 4))).shape
    ((4, 3), (2, 3))
    """

    def __init__(self, n_out, init="glorot"):
        super().__init__()
        self.n_out = check_int(n_out, "n_out", 1)
        self.init = check_init(init)

    def _build(self, input_shape, rng):
        if len(input_shape) != 1:
            raise ValueError(f"Dense needs flat inputs of shape (n_in,); got "
                             f"{input_shape}; put a Flatten layer before it")
        n_in = input_shape[0]
        self.params = {
            "W": init_weights(rng, (n_in, self.n_out), n_in, self.n_out,
                              self.init, self.dtype),
            "b": np.zeros(self.n_out, dtype=self.dtype),
        }
        return (self.n_out,)

    def forward(self, X):
        """``X @ W + b``; keeps ``X``."""
        X = self._check_input(X)
        self.cache = X
        return X @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        """``dout @ W.T``; stores ``dW = X.T @ dout`` and ``db = sum(dout)``."""
        dout = np.asarray(dout, dtype=self.dtype)
        self.grads["W"] = self.cache.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T

    def get_config(self):
        """``n_out`` and ``init``."""
        return {"n_out": self.n_out, "init": self.init}
