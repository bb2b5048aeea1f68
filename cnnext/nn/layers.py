"""The layers: Conv2D, ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten,
Dense, BatchNorm2D and Dropout.

Every layer works on NHWC batches ``(m, n_H, n_W, n_C)`` (Dense on
``(m, n_in)``) and keeps the cache of its last forward pass for its backward
pass. Convolution and pooling call :func:`cnnext.conv_forward`,
:func:`cnnext.conv_backward`, :func:`cnnext.pool_forward` and
:func:`cnnext.pool_backward` and keep the caches those return, so their math
lives in one place, the compiled kernels; output shapes come from
``cnnext._geometry``. :class:`Dense` is a numpy matrix product;
:class:`GlobalAvgPool2D`, :class:`BatchNorm2D` and :class:`Dropout` are numpy
reductions and products.

Training and inference: :class:`BatchNorm2D` and :class:`Dropout` behave
differently in training. They have ``training_aware = True`` and their
``forward`` takes ``training`` (default False: inference).
:meth:`Sequential.train_step <cnnext.nn.Sequential.train_step>` runs them with
``training=True``; ``predict``, ``predict_proba`` and ``evaluate`` in
inference. The other layers have no ``training`` argument and are called
without one.

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
from cnnext._validation import _conv_geometry, _padding, _pair, _pool_geometry

from ._checks import check_bool, check_dtype, check_int, check_real, describe_batch
from ._weights import check_init, init_weights

__all__ = ["Layer", "Conv2D", "DepthwiseConv2D", "ReLU", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
           "Flatten", "Dense", "BatchNorm2D", "Dropout"]


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
    buffers : dict of str to ndarray
        State that is not trained by the optimizers but saved with the model
        (the running statistics of :class:`BatchNorm2D`); empty for most
        layers.
    input_shape, output_shape : tuple of int
        Shapes without the batch axis, set by :meth:`build`.
    dtype : numpy.dtype
        The dtype of the parameters and outputs, set by :meth:`build`.
    cache : object
        What the last ``forward`` kept for ``backward``.
    training_aware : bool (class attribute)
        False by default. A layer that behaves differently in training sets
        it to True and takes ``forward(X, training=False)``; a
        :class:`~cnnext.nn.Sequential` (and :func:`cnnext.gradcheck`) passes
        ``training`` only to such layers, so a ``forward(self, X)`` of a
        subclass keeps working.

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

    training_aware = False

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
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


def _geometry_value(value, key, minimum):
    """A layer's stride, dilation or f: an int, or an (h, w) pair, checked by
    the functions' own rules; pairs kept as tuples (JSON gives lists)."""
    _pair({key: value}, key, minimum)
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _pad_value(value):
    """A layer's pad in any form the functions take, checked by their rules."""
    _padding({"pad": value})
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _hparameters(required, **optional):
    """The functions' dict: the required keys, and the optional ones only
    where they differ from their defaults, so that a layer of the
    assignment's geometry passes the assignment's dict (its fast path)."""
    defaults = {"dilation": 1, "groups": 1, "count_include_pad": False, "pad": 0}
    return {**required, **{k: v for k, v in optional.items() if v != defaults[k]}}


class Conv2D(Layer):
    """2-D convolution over NHWC batches, by :func:`cnnext.conv_forward`.

    Parameters
    ----------
    n_C : int
        Number of filters (output channels).
    f : int or (int, int)
        Filter height and width.
    stride : int or (int, int), default 1
    pad : int, (p_h, p_w), (top, bottom, left, right), "same" or "valid", default 0
        Zero padding, as :func:`cnnext.conv_forward` takes it ("same":
        TensorFlow's rule).
    dilation : int or (int, int), default 1
    groups : int, default 1
        Must divide the input channels and n_C.
    use_bias : bool, default True
        Without, the layer has no ``b`` (as before a batch norm).
    init : {"he", "glorot"}, default "he"
        He-normal or Glorot-uniform initial weights; biases start at zero.

    Attributes
    ----------
    params : dict
        ``W`` of shape (f_h, f_w, n_C_prev / groups, n_C) and, with
        ``use_bias``, ``b`` of shape (1, 1, 1, n_C).
    cache : tuple
        The cache returned by :func:`cnnext.conv_forward` on the last batch.

    Raises
    ------
    TypeError, ValueError
        If an argument is not in range or of the wrong type, ``init`` is
        unknown, or (at build) the geometry does not fit the input.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> conv = nn.Conv2D(2, 3, pad=1).build((5, 5, 1), rng=0)
    >>> conv.forward(np.ones((4, 5, 5, 1))).shape
    (4, 5, 5, 2)
    >>> nn.Conv2D(8, 4, pad="same").build((64, 64, 3), rng=0).output_shape
    (64, 64, 8)
    """

    def __init__(self, n_C, f, stride=1, pad=0, dilation=1, groups=1, use_bias=True,
                 init="he"):
        super().__init__()
        self.n_C = check_int(n_C, "n_C", 1)
        self.f = _geometry_value(f, "f", 1)
        self.stride = _geometry_value(stride, "stride", 1)
        self.pad = _pad_value(pad)
        self.dilation = _geometry_value(dilation, "dilation", 1)
        self.groups = check_int(groups, "groups", 1)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.init = check_init(init)
        self.hparameters = _hparameters({"stride": self.stride, "pad": self.pad},
                                        dilation=self.dilation, groups=self.groups)

    def _filter_shape(self, C):
        f_h, f_w = self.f if isinstance(self.f, tuple) else (self.f, self.f)
        return (f_h, f_w, C // self.groups, self.n_C)

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} needs inputs of shape (n_H, n_W, n_C); "
                             f"got {input_shape}")
        H, Wd, C = input_shape
        W_shape = self._filter_shape(C)
        # The functions' own validation, on an empty batch of this shape.
        try:
            out_shape = _conv_geometry(np.empty((0, H, Wd, C)), np.empty(W_shape), None,
                                       self.hparameters)[4]
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__} on inputs {input_shape}: {exc}") from None
        f_h, f_w, C_g, n_C = W_shape
        self.params = {"W": init_weights(rng, W_shape, f_h * f_w * C_g,
                                         f_h * f_w * n_C // self.groups, self.init,
                                         self.dtype)}
        if self.use_bias:
            self.params["b"] = np.zeros((1, 1, 1, n_C), dtype=self.dtype)
        return out_shape[1:]

    def forward(self, X):
        """Return ``Z`` from :func:`cnnext.conv_forward`; keep its cache."""
        X = self._check_input(X)
        Z, self.cache = cnnext.conv_forward(X, self.params["W"], self.params.get("b"),
                                            self.hparameters)
        return Z

    def backward(self, dZ):
        """Return ``dA_prev`` from :func:`cnnext.conv_backward`; store dW, db."""
        dA_prev, self.grads["W"], db = cnnext.conv_backward(dZ, self.cache)
        if self.use_bias:
            self.grads["b"] = db
        return dA_prev

    def get_config(self):
        """The constructor's arguments."""
        return {"n_C": self.n_C, "f": self.f, "stride": self.stride, "pad": self.pad,
                "dilation": self.dilation, "groups": self.groups,
                "use_bias": self.use_bias, "init": self.init}


class DepthwiseConv2D(Conv2D):
    """Depthwise convolution (MobileNet's): each input channel convolved
    with its own ``depth_multiplier`` filters, a :class:`Conv2D` with
    ``groups`` = the input channels and ``n_C`` = depth_multiplier x them.

    Parameters
    ----------
    f, stride, pad, dilation, use_bias, init
        As for :class:`Conv2D`.
    depth_multiplier : int, default 1

    Examples
    --------
    >>> from cnnext import nn
    >>> layer = nn.DepthwiseConv2D(3, stride=2, pad="same").build((9, 9, 16), rng=0)
    >>> layer.output_shape, layer.params["W"].shape
    ((5, 5, 16), (3, 3, 1, 16))
    """

    def __init__(self, f, stride=1, pad=0, dilation=1, depth_multiplier=1, use_bias=True,
                 init="he"):
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier", 1)
        super().__init__(1, f, stride, pad, dilation, 1, use_bias, init)

    def _build(self, input_shape, rng):
        if len(input_shape) == 3:
            C = input_shape[2]
            self.n_C, self.groups = C * self.depth_multiplier, C
            self.hparameters = _hparameters({"stride": self.stride, "pad": self.pad},
                                            dilation=self.dilation, groups=C)
        return super()._build(input_shape, rng)

    def get_config(self):
        """The constructor's arguments."""
        return {"f": self.f, "stride": self.stride, "pad": self.pad,
                "dilation": self.dilation, "depth_multiplier": self.depth_multiplier,
                "use_bias": self.use_bias, "init": self.init}


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

    def __init__(self, f, stride=None, pad=0, dilation=1):
        super().__init__()
        self.f = _geometry_value(f, "f", 1)
        self.stride = self.f if stride is None else _geometry_value(stride, "stride", 1)
        self.pad = _pad_value(pad)
        self.dilation = _geometry_value(dilation, "dilation", 1)
        self.hparameters = _hparameters({"f": self.f, "stride": self.stride}, pad=self.pad,
                                        dilation=self.dilation)

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} needs inputs of shape "
                             f"(n_H, n_W, n_C); got {input_shape}")
        # The functions' own validation, on an empty batch of this shape.
        try:
            return _pool_geometry(np.empty((0, *input_shape)), self.hparameters,
                                  self.mode)[2][1:]
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__} on inputs {input_shape}: {exc}") from None

    def forward(self, X):
        """Return the pooled batch from :func:`cnnext.pool_forward`; keep its cache."""
        X = self._check_input(X)
        A, self.cache = cnnext.pool_forward(X, self.hparameters, mode=self.mode)
        return A

    def backward(self, dA):
        """Return ``dA_prev`` from :func:`cnnext.pool_backward`."""
        return cnnext.pool_backward(dA, self.cache, mode=self.mode)

    def get_config(self):
        """The constructor's arguments."""
        return {"f": self.f, "stride": self.stride, "pad": self.pad, "dilation": self.dilation}


class MaxPool2D(_Pool2D):
    """Max pooling by :func:`cnnext.pool_forward` (``mode="max"``).

    Parameters
    ----------
    f : int or (int, int)
        Window height and width.
    stride : int or (int, int), optional
        Defaults to ``f`` (non-overlapping windows).
    pad : int, pair, 4-tuple, "same" or "valid", default 0
        Padding with -inf (never a window's max); "same" is TensorFlow's rule.
    dilation : int or (int, int), default 1

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
    f : int or (int, int)
        Window height and width.
    stride : int or (int, int), optional
        Defaults to ``f`` (non-overlapping windows).
    pad : int, pair, 4-tuple, "same" or "valid", default 0
    dilation : int or (int, int), default 1
    count_include_pad : bool, default False
        Divide by f_h * f_w (PyTorch's default) rather than by the window's
        input entries, the padding excluded (Keras').

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> pool = nn.AvgPool2D(2).build((2, 2, 1), dtype="float64")
    >>> pool.forward(np.array([1.0, 3.0, 4.0, 2.0]).reshape(1, 2, 2, 1)).ravel()
    array([2.5])
    """
    mode = "average"

    def __init__(self, f, stride=None, pad=0, dilation=1, count_include_pad=False):
        super().__init__(f, stride, pad, dilation)
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")
        self.hparameters = _hparameters(self.hparameters,
                                        count_include_pad=self.count_include_pad)

    def get_config(self):
        """The constructor's arguments."""
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


class GlobalAvgPool2D(Layer):
    """Mean over height and width: ``(m, n_H, n_W, n_C)`` to ``(m, n_C)``.

    The backward pass spreads each gradient evenly, ``dA / (n_H * n_W)``,
    over the positions it averaged. A numpy mean (the window is the whole
    image, which need not be square, so :func:`cnnext.pool_forward` does not
    apply).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> gap = nn.GlobalAvgPool2D().build((2, 3, 1), dtype="float64")
    >>> gap.forward(np.arange(6.0).reshape(1, 2, 3, 1))
    array([[2.5]])
    >>> gap.backward(np.array([[6.0]]))[0, :, :, 0]
    array([[1., 1., 1.],
           [1., 1., 1.]])
    """

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"GlobalAvgPool2D needs inputs of shape (n_H, n_W, n_C); "
                             f"got {input_shape}")
        return (input_shape[2],)

    def forward(self, X):
        """``X.mean(axis=(1, 2))``."""
        X = self._check_input(X)
        return X.mean(axis=(1, 2))

    def backward(self, dA):
        """``dA / (n_H * n_W)`` at every position of the input."""
        H, Wd, C = self.input_shape
        dA = np.asarray(dA, dtype=self.dtype)
        scale = self.dtype.type(1.0 / (H * Wd))
        return np.broadcast_to((dA * scale)[:, None, None, :],
                               (dA.shape[0], H, Wd, C)).copy()


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


class BatchNorm2D(Layer):
    """Batch normalisation per channel of NHWC batches (Ioffe & Szegedy, 2015).

    Each channel is normalised over the batch, height and width axes
    (``m * n_H * n_W`` values), then scaled and shifted by the trainable
    ``gamma`` and ``beta``: ``gamma * (X - mean) / sqrt(var + eps) + beta``.

    - Training (``forward(X, training=True)``, as
      :meth:`Sequential.train_step <cnnext.nn.Sequential.train_step>` calls
      it): ``mean`` and ``var`` are the batch's own (``var`` biased, divided
      by ``m * n_H * n_W``), and the backward pass goes through them. The
      running statistics are updated as PyTorch does,
      ``running = (1 - momentum) * running + momentum * batch``, with the
      *unbiased* batch variance (divided by ``m * n_H * n_W - 1``) for
      ``running_var``.
    - Inference (the default; ``predict``, ``predict_proba``, ``evaluate``):
      ``mean`` and ``var`` are ``running_mean`` and ``running_var``.

    This is :class:`torch.nn.BatchNorm2d` (on NCHW) with its defaults,
    ``momentum=0.1`` and ``eps=1e-5``.

    Parameters
    ----------
    momentum : float in [0, 1], default 0.1
        Weight of the new batch in the running statistics, PyTorch's
        convention. Keras's ``BatchNormalization(momentum=0.99)`` is the
        weight of the *old* value: it is ``momentum=0.01`` here.
    eps : float > 0, default 1e-5
        Added to the variance (Keras's default is 1e-3).

    Attributes
    ----------
    params : dict
        ``gamma`` (starts at 1) and ``beta`` (starts at 0), of shape (n_C,);
        trained by the optimizers like any parameter.
    buffers : dict
        ``running_mean`` (starts at 0) and ``running_var`` (starts at 1), of
        shape (n_C,), updated in place in training, saved and loaded with
        the model.

    Raises
    ------
    TypeError, ValueError
        If ``momentum`` is not a number in [0, 1] or ``eps`` not > 0.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> bn = nn.BatchNorm2D().build((1, 2, 1), dtype="float64")
    >>> X = np.array([1.0, 3.0, 5.0, 7.0]).reshape(2, 1, 2, 1)
    >>> bn.forward(X, training=True).ravel().round(4)
    array([-1.3416, -0.4472,  0.4472,  1.3416])
    >>> bn.buffers["running_mean"], bn.buffers["running_var"].round(4)
    (array([0.4]), array([1.5667]))
    >>> bn.forward(X).ravel().round(4)  # inference: the running statistics
    array([0.4794, 2.0772, 3.6751, 5.273 ])
    """

    training_aware = True

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum = check_real(momentum, "momentum", 0, 1)
        self.eps = check_real(eps, "eps", 0, None, low_open=True)

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"BatchNorm2D needs inputs of shape (n_H, n_W, n_C); got "
                             f"{input_shape}")
        C = input_shape[2]
        self.params = {"gamma": np.ones(C, dtype=self.dtype),
                       "beta": np.zeros(C, dtype=self.dtype)}
        self.buffers = {"running_mean": np.zeros(C, dtype=self.dtype),
                        "running_var": np.ones(C, dtype=self.dtype)}
        return input_shape

    def forward(self, X, training=False):
        """Normalised ``X``: by the batch's statistics (updating the running
        ones) when ``training``, else by the running statistics.

        Raises
        ------
        ValueError
            In training, if a channel has a single value (``m * n_H * n_W
            == 1``): its variance is not defined.
        """
        X = self._check_input(X)
        training = check_bool(training, "training")
        axes = (0, 1, 2)
        if training:
            n = X.shape[0] * X.shape[1] * X.shape[2]
            if n < 2:
                raise ValueError(f"BatchNorm2D needs more than one value per channel "
                                 f"in training (m * n_H * n_W >= 2); got a batch of "
                                 f"shape {X.shape}")
            mean = X.mean(axis=axes)
            centred = X - mean
            var = np.mean(centred * centred, axis=axes)
            inv_std = 1.0 / np.sqrt(var + self.eps)
            x_hat = centred * inv_std
            m = self.momentum
            running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
            running_mean *= 1.0 - m
            running_mean += m * mean
            running_var *= 1.0 - m
            running_var += (m * n / (n - 1)) * var
        else:
            inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)
            x_hat = (X - self.buffers["running_mean"]) * inv_std
        self.cache = (x_hat, inv_std, training)
        return x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dout):
        """Gradient with respect to the input, through the batch statistics
        when the last forward was in training; stores ``dgamma`` and
        ``dbeta``."""
        x_hat, inv_std, training = self.cache
        dout = np.asarray(dout, dtype=self.dtype)
        axes = (0, 1, 2)
        self.grads["beta"] = dbeta = dout.sum(axis=axes)
        self.grads["gamma"] = dgamma = (dout * x_hat).sum(axis=axes)
        scale = self.params["gamma"] * inv_std
        if not training:
            return dout * scale
        n = x_hat.shape[0] * x_hat.shape[1] * x_hat.shape[2]
        # d/dX of gamma * x_hat + beta, x_hat depending on X through the
        # batch's mean and variance too.
        return scale * (dout - dbeta / n - x_hat * (dgamma / n))

    def get_config(self):
        """``momentum`` and ``eps``."""
        return {"momentum": self.momentum, "eps": self.eps}


def _spawn(rng):
    """An independent generator from ``rng``, without drawing from it (so the
    layers built after this one get the same weights either way)."""
    try:
        return rng.spawn(1)[0]
    except (AttributeError, TypeError):  # a bit generator without a SeedSequence
        return np.random.default_rng(rng.integers(2 ** 63))


class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability
    ``rate`` and scale the others by ``1 / (1 - rate)``, so the expected
    output is the input; at inference, the identity.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability that an entry is dropped.
    seed : int >= 0, optional
        Seed of the masks' generator, created when the layer is built: the
        same seed gives the same sequence of masks, run to run. Without it
        the generator is spawned from the one :meth:`build` gets, so a
        :class:`~cnnext.nn.Sequential`'s ``seed`` fixes the masks too (a
        layer built alone with ``rng=None`` gets fresh entropy).

    Attributes
    ----------
    rng : numpy.random.Generator
        The masks' generator, set by :meth:`build`.
    cache : ndarray or None
        The last training mask, already scaled (0 or ``1 / (1 - rate)``);
        None after an inference forward.

    Raises
    ------
    TypeError, ValueError
        If ``rate`` is not a number in [0, 1) or ``seed`` not an integer
        >= 0.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> drop = nn.Dropout(0.5, seed=0).build((6,), dtype="float64")
    >>> drop.forward(np.ones((1, 6)), training=True)
    array([[2., 0., 0., 0., 2., 2.]])
    >>> drop.forward(np.ones((1, 6)))  # inference
    array([[1., 1., 1., 1., 1., 1.]])
    """

    training_aware = True

    def __init__(self, rate, seed=None):
        super().__init__()
        self.rate = check_real(rate, "rate", 0, 1, high_open=True)
        self.seed = None if seed is None else check_int(seed, "seed", 0)
        self.rng = None

    def _build(self, input_shape, rng):
        self.rng = (np.random.default_rng(self.seed) if self.seed is not None
                    else _spawn(rng))
        return input_shape

    def forward(self, X, training=False):
        """``X`` times a fresh scaled mask when ``training``, else ``X``."""
        X = self._check_input(X)
        if not check_bool(training, "training") or self.rate == 0:
            self.cache = None
            return X
        keep = self.rng.random(X.shape, dtype=self.dtype) >= self.rate
        self.cache = keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - self.rate))
        return X * self.cache

    def backward(self, dout):
        """``dout`` times the last mask (``dout`` itself after inference)."""
        dout = np.asarray(dout, dtype=self.dtype)
        return dout if self.cache is None else dout * self.cache

    def get_config(self):
        """``rate`` and ``seed``."""
        return {"rate": self.rate, "seed": self.seed}
