"""Layers, a Sequential model and optimizers built on cnnext's kernels.

Small and plain, in the spirit of the "Convolutional Model" assignment. Every
layer works on NHWC batches ``(m, n_H, n_W, n_C)`` and keeps the cache of its
last forward pass for its backward pass. Convolution and pooling call
:func:`cnnext.conv_forward`, :func:`cnnext.conv_backward`,
:func:`cnnext.pool_forward` and :func:`cnnext.pool_backward` and keep the
caches those return: the math of those operations lives in one place, the
compiled kernels. :class:`Dense` is a numpy matrix product.

Models compute in float32 by default (for speed) or float64 on request
(``Sequential(..., dtype="float64")``, for gradient checks). Weights are
initialised from a seeded :class:`numpy.random.Generator`: He-normal for
convolutions, Glorot-uniform for dense layers.

Only numpy is needed to import this module.

Examples
--------
>>> import numpy as np
>>> from cnnext import nn
>>> model = nn.Sequential([nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.MaxPool2D(2),
...                        nn.Flatten(), nn.Dense(3)], input_shape=(8, 8, 1), seed=0)
>>> model.forward(np.zeros((5, 8, 8, 1))).shape
(5, 3)
"""
import json
import numbers

import numpy as np

import cnnext

__all__ = [
    "Layer",
    "Conv2D",
    "ReLU",
    "MaxPool2D",
    "AvgPool2D",
    "Flatten",
    "Dense",
    "SoftmaxCrossEntropy",
    "Sequential",
    "SGD",
    "Adam",
    "load",
]

_FORMAT = "cnnext.nn/1"


def _check_int(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {dtype}")
    return dtype


def _check_init(init):
    if init not in ("he", "glorot"):
        raise ValueError(f"init must be 'he' or 'glorot'; got {init!r}")
    return init


def _init_weights(rng, shape, fan_in, fan_out, init, dtype):
    """He-normal or Glorot-uniform weights of ``shape`` drawn from ``rng``."""
    if init == "he":
        W = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-limit, limit, size=shape)
    return W.astype(dtype)


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------

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
        """
        self.dtype = _check_dtype(dtype)
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
                             f"got {X.shape}")
        return X

    def forward(self, X):
        """Output of the layer for the batch ``X``; remembers the cache."""
        raise NotImplementedError

    def backward(self, dout):
        """Gradient with respect to the input of the last ``forward``."""
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
        self.n_C = _check_int(n_C, "n_C", 1)
        self.f = _check_int(f, "f", 1)
        self.stride = _check_int(stride, "stride", 1)
        self.pad = _check_int(pad, "pad", 0)
        self.init = _check_init(init)
        self.hparameters = {"stride": self.stride, "pad": self.pad}

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D needs inputs of shape (n_H, n_W, n_C); got "
                             f"{input_shape}")
        H, Wd, C = input_shape
        f, pad, s = self.f, self.pad, self.stride
        if f > H + 2 * pad or f > Wd + 2 * pad:
            raise ValueError(f"Conv2D filter f={f} is larger than its padded input "
                             f"{H + 2 * pad}x{Wd + 2 * pad}")
        self.params = {
            "W": _init_weights(rng, (f, f, C, self.n_C), f * f * C,
                               f * f * self.n_C, self.init, self.dtype),
            "b": np.zeros((1, 1, 1, self.n_C), dtype=self.dtype),
        }
        return ((H - f + 2 * pad) // s + 1, (Wd - f + 2 * pad) // s + 1, self.n_C)

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
        return {"n_C": self.n_C, "f": self.f, "stride": self.stride,
                "pad": self.pad, "init": self.init}


class ReLU(Layer):
    """Rectified linear unit, ``max(X, 0)``; its gradient at 0 is 0."""

    def forward(self, X):
        X = self._check_input(X)
        self.cache = X > 0
        return X * self.cache

    def backward(self, dout):
        return dout * self.cache


class _Pool2D(Layer):
    mode = ""  # "max" or "average", set by the subclasses

    def __init__(self, f, stride=None):
        super().__init__()
        self.f = _check_int(f, "f", 1)
        self.stride = self.f if stride is None else _check_int(stride, "stride", 1)
        self.hparameters = {"f": self.f, "stride": self.stride}

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} needs inputs of shape "
                             f"(n_H, n_W, n_C); got {input_shape}")
        H, Wd, C = input_shape
        if self.f > H or self.f > Wd:
            raise ValueError(f"{type(self).__name__} window f={self.f} is larger "
                             f"than its input {H}x{Wd}")
        s = self.stride
        return ((H - self.f) // s + 1, (Wd - self.f) // s + 1, C)

    def forward(self, X):
        """Return the pooled batch from :func:`cnnext.pool_forward`; keep its cache."""
        X = self._check_input(X)
        A, self.cache = cnnext.pool_forward(X, self.hparameters, mode=self.mode)
        return A

    def backward(self, dA):
        """Return ``dA_prev`` from :func:`cnnext.pool_backward`."""
        return cnnext.pool_backward(dA, self.cache, mode=self.mode)

    def get_config(self):
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
    """
    mode = "average"


class Flatten(Layer):
    """Reshape ``(m, n_H, n_W, n_C)`` to ``(m, n_H * n_W * n_C)``."""

    def _build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, X):
        X = self._check_input(X)
        return X.reshape(X.shape[0], -1)

    def backward(self, dout):
        return np.reshape(dout, (-1,) + self.input_shape)


class Dense(Layer):
    """Fully connected layer, ``X @ W + b``, on inputs of shape (m, n_in).

    Parameters
    ----------
    n_out : int
        Number of outputs.
    init : {"glorot", "he"}, default "glorot"

    Attributes
    ----------
    params : dict
        ``W`` of shape (n_in, n_out) and ``b`` of shape (n_out,).
    """

    def __init__(self, n_out, init="glorot"):
        super().__init__()
        self.n_out = _check_int(n_out, "n_out", 1)
        self.init = _check_init(init)

    def _build(self, input_shape, rng):
        if len(input_shape) != 1:
            raise ValueError(f"Dense needs flat inputs of shape (n_in,); got "
                             f"{input_shape}; put a Flatten layer before it")
        n_in = input_shape[0]
        self.params = {
            "W": _init_weights(rng, (n_in, self.n_out), n_in, self.n_out,
                               self.init, self.dtype),
            "b": np.zeros(self.n_out, dtype=self.dtype),
        }
        return (self.n_out,)

    def forward(self, X):
        X = self._check_input(X)
        self.cache = X
        return X @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        dout = np.asarray(dout, dtype=self.dtype)
        self.grads["W"] = self.cache.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T

    def get_config(self):
        return {"n_out": self.n_out, "init": self.init}


_LAYERS = {cls.__name__: cls for cls in
           (Conv2D, ReLU, MaxPool2D, AvgPool2D, Flatten, Dense)}


# --------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------

def _check_labels(y, m, n_classes):
    y = np.asarray(y)
    if y.shape != (m,):
        raise ValueError(f"y must have shape ({m},), one label per example; "
                         f"got {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels; got dtype {y.dtype}")
    if m and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}; got values "
                         f"from {y.min()} to {y.max()}")
    return y


class SoftmaxCrossEntropy:
    """Softmax of the logits followed by the mean cross-entropy.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> loss = nn.SoftmaxCrossEntropy()
    >>> round(float(loss.forward(np.zeros((2, 4)), np.array([0, 3]))), 6)  # log(4)
    1.386294
    >>> loss.backward()
    array([[-0.375,  0.125,  0.125,  0.125],
           [ 0.125,  0.125,  0.125, -0.375]])
    """

    def __init__(self):
        self.cache = None

    def forward(self, logits, y):
        """Mean cross-entropy of ``softmax(logits)`` against integer labels ``y``.

        Parameters
        ----------
        logits : ndarray, shape (m, n_classes)
        y : array_like of int, shape (m,)

        Returns
        -------
        loss : numpy floating scalar, in the dtype of ``logits``
        """
        logits = np.asarray(logits)
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (m, n_classes); got {logits.shape}")
        m, n = logits.shape
        y = _check_labels(y, m, n)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.cache = (log_probs, y)
        return -log_probs[np.arange(m), y].mean()

    def backward(self):
        """Gradient of the last loss with respect to its logits:
        ``(softmax(logits) - one_hot(y)) / m``."""
        log_probs, y = self.cache
        m = log_probs.shape[0]
        grad = np.exp(log_probs)
        grad[np.arange(m), y] -= 1
        grad /= m
        return grad


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

class Sequential:
    """A stack of layers applied in order, trained with a softmax
    cross-entropy loss on its last layer's outputs (the logits).

    Parameters
    ----------
    layers : list of Layer
    input_shape : tuple of int, optional
        Shape of one example, e.g. ``(8, 8, 1)``. Given, the model is built
        at once; otherwise on the first :meth:`forward`.
    dtype : {"float32", "float64"}, default "float32"
    seed : int or numpy.random.Generator, default 0
        Source of the initial weights; the same seed gives the same weights.

    Attributes
    ----------
    meta : dict
        Free-form JSON-serialisable metadata saved with the model (the
        command line keeps class names and input scaling there).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> model = nn.Sequential([nn.Flatten(), nn.Dense(3)], input_shape=(2, 2, 1),
    ...                       dtype="float64")
    >>> opt = nn.Adam(lr=0.1)
    >>> X, y = np.ones((4, 2, 2, 1)), np.array([0, 1, 2, 1])
    >>> loss, correct = model.train_step(X, y, opt)
    >>> model.predict(X).shape
    (4,)
    """

    def __init__(self, layers, input_shape=None, dtype="float32", seed=0):
        layers = list(layers)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"layers must be cnnext.nn.Layer instances; got "
                                f"{type(layer).__name__}")
        if not layers:
            raise ValueError("a Sequential needs at least one layer")
        self.layers = layers
        self.dtype = _check_dtype(dtype)
        self.seed = seed
        self.loss = SoftmaxCrossEntropy()
        self.meta = {}
        self.input_shape = None
        if input_shape is not None:
            self.build(input_shape)

    @property
    def built(self):
        return self.input_shape is not None

    @property
    def output_shape(self):
        return self.layers[-1].output_shape

    def build(self, input_shape):
        """Build every layer for examples of ``input_shape``; return self."""
        rng = np.random.default_rng(self.seed)
        shape = tuple(int(n) for n in input_shape)
        self.input_shape = shape
        for layer in self.layers:
            shape = layer.build(shape, rng=rng, dtype=self.dtype).output_shape
            if min(shape, default=1) < 1:
                raise ValueError(f"{layer!r} produces an empty output {shape}")
        return self

    def _as_input(self, X):
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim < 2:
            raise ValueError(f"X must be a batch of shape (m, ...); got {X.shape}")
        if not self.built:
            self.build(X.shape[1:])
        if X.shape[1:] != self.input_shape:
            raise ValueError(f"the model expects examples of shape {self.input_shape}; "
                             f"got a batch of shape {X.shape}")
        return X

    def forward(self, X):
        """Logits for the batch ``X``; every layer keeps its cache."""
        out = self._as_input(X)
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def backward(self, dout):
        """Back-propagate ``dout`` (gradient w.r.t. the logits) through every
        layer; return the gradient with respect to the input."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self):
        """List of (name, array) of every trainable parameter, in a fixed order."""
        return [(f"{i}.{type(layer).__name__}.{k}", v)
                for i, layer in enumerate(self.layers) for k, v in layer.params.items()]

    def gradients(self):
        """Gradients from the last :meth:`backward`, in :meth:`parameters` order."""
        return [layer.grads[k] for layer in self.layers for k in layer.params]

    def train_step(self, X, y, optimizer):
        """One step of gradient descent on the batch (X, y).

        Returns
        -------
        loss : float
            Mean cross-entropy on the batch before the update.
        n_correct : int
            How many examples of the batch were classified right.
        """
        logits = self.forward(X)
        loss = self.loss.forward(logits, y)
        self.backward(self.loss.backward())
        optimizer.step(self)
        return float(loss), int((logits.argmax(axis=1) == y).sum())

    def predict_proba(self, X, batch_size=256):
        """Softmax class probabilities, shape (m, n_classes), by batches."""
        X = self._as_input(X)
        out = []
        for i in range(0, X.shape[0], batch_size):
            logits = self.forward(X[i:i + batch_size])
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        if not out:
            return np.empty((0,) + self.output_shape, dtype=self.dtype)
        return np.concatenate(out)

    def predict(self, X, batch_size=256):
        """Predicted class of each example of X, shape (m,)."""
        return self.predict_proba(X, batch_size).argmax(axis=1)

    def evaluate(self, X, y, batch_size=256):
        """Mean loss and accuracy on (X, y), by batches; returns (loss, accuracy)."""
        X = self._as_input(X)
        y = np.asarray(y)
        total, correct = 0.0, 0
        for i in range(0, X.shape[0], batch_size):
            logits = self.forward(X[i:i + batch_size])
            yb = y[i:i + batch_size]
            total += float(self.loss.forward(logits, yb)) * len(yb)
            correct += int((logits.argmax(axis=1) == yb).sum())
        m = max(X.shape[0], 1)
        return total / m, correct / m

    def get_config(self):
        """The architecture as a JSON-serialisable dict."""
        return {
            "format": _FORMAT,
            "input_shape": list(self.input_shape) if self.built else None,
            "dtype": self.dtype.name,
            "layers": [{"class": type(l).__name__, "config": l.get_config()}
                       for l in self.layers],
            "meta": self.meta,
        }

    def save(self, path):
        """Save architecture and weights to an ``.npz`` file (see :func:`load`)."""
        if not self.built:
            raise RuntimeError("the model is not built; nothing to save")
        arrays = {f"param:{name}": value for name, value in self.parameters()}
        arrays["config"] = np.array(json.dumps(self.get_config()))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    def load_weights(self, path):
        """Load weights saved by :meth:`save` from a model of the same architecture."""
        with np.load(path, allow_pickle=False) as data:
            for name, value in self.parameters():
                key = f"param:{name}"
                if key not in data:
                    raise ValueError(f"{path} has no weights {name!r}; was it saved "
                                     f"from a model of this architecture?")
                saved = data[key]
                if saved.shape != value.shape:
                    raise ValueError(f"{path}: weights {name!r} have shape "
                                     f"{saved.shape}, the model wants {value.shape}")
                value[...] = saved

    def summary(self):
        """One line per layer: name, output shape, parameter count."""
        lines = []
        for layer in self.layers:
            n = sum(v.size for v in layer.params.values())
            lines.append(f"{layer!r:40s} -> {layer.output_shape}  params={n}")
        return "\n".join(lines)

    def __repr__(self):
        return "Sequential([" + ", ".join(map(repr, self.layers)) + "])"


def load(path, dtype=None):
    """Rebuild a :class:`Sequential` saved by :meth:`Sequential.save`.

    Parameters
    ----------
    path : str or path-like
    dtype : {"float32", "float64"}, optional
        Override the saved dtype.

    Returns
    -------
    model : Sequential

    Raises
    ------
    ValueError
        If the file is not a model saved by cnnext.nn.
    """
    with np.load(path, allow_pickle=False) as data:
        if "config" not in data:
            raise ValueError(f"{path} is not a cnnext.nn model (no 'config' entry)")
        try:
            config = json.loads(str(data["config"]))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} has an unreadable 'config': {exc}") from None
    if not isinstance(config, dict) or config.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a cnnext.nn model (format "
                         f"{config.get('format') if isinstance(config, dict) else None!r})")
    layers = []
    for spec in config["layers"]:
        cls = _LAYERS.get(spec.get("class"))
        if cls is None:
            raise ValueError(f"{path}: unknown layer class {spec.get('class')!r}")
        layers.append(cls(**spec.get("config", {})))
    model = Sequential(layers, input_shape=config["input_shape"],
                       dtype=dtype or config["dtype"])
    model.meta = config.get("meta", {})
    model.load_weights(path)
    return model


# --------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------

class _Optimizer:
    def __init__(self, lr):
        self.lr = lr
        self.state = None

    @property
    def lr(self):
        """The learning rate, a Python float (so float32 parameters stay float32)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        if not value > 0:
            raise ValueError(f"lr must be > 0; got {value!r}")
        self._lr = float(value)

    def step(self, model):
        """Update every parameter of ``model`` in place from its gradients."""
        params = [p for _, p in model.parameters()]
        grads = model.gradients()
        if self.state is None:
            self.state = self._init_state(params)
        self._update(params, grads)


class SGD(_Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    ``v = momentum * v - lr * g``; ``p += v``.

    Parameters
    ----------
    lr : float, default 0.05
    momentum : float, default 0.9
        0 gives plain gradient descent.
    """

    def __init__(self, lr=0.05, momentum=0.9):
        super().__init__(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
        self.momentum = float(momentum)

    def _init_state(self, params):
        return [np.zeros_like(p) for p in params]

    def _update(self, params, grads):
        for p, g, v in zip(params, grads, self.state):
            v *= self.momentum
            v -= self.lr * g
            p += v


class Adam(_Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    ``m = beta1 m + (1 - beta1) g``; ``v = beta2 v + (1 - beta2) g**2``;
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - beta1**t)``
    and ``v_hat = v / (1 - beta2**t)``.

    Parameters
    ----------
    lr : float, default 0.001
    beta1, beta2 : float, default 0.9, 0.999
    eps : float, default 1e-8
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0

    def _init_state(self, params):
        return [(np.zeros_like(p), np.zeros_like(p)) for p in params]

    def _update(self, params, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t  # bias corrections
        for p, g, (m, v) in zip(params, grads, self.state):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
