"""The model: :class:`Sequential`, a stack of layers trained with a softmax
cross-entropy loss.

Examples
--------
>>> import numpy as np
>>> from cnnext.nn.layers import Dense, Flatten
>>> from cnnext.nn.model import Sequential
>>> model = Sequential([Flatten(), Dense(3)], input_shape=(2, 2, 1))
>>> print(model.summary())
Flatten()                                -> (4,)  params=0
Dense(n_out=3, init='glorot')            -> (3,)  params=15
"""
import inspect

import numpy as np

from .. import _dask
from . import serialization
from ._checks import check_bool, check_dtype, describe_batch
from .layers import Layer
from .losses import SoftmaxCrossEntropy

__all__ = ["Sequential"]


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
    layers : list of Layer
    dtype : numpy.dtype
    input_shape : tuple of int or None
        Shape of one example, None until the model is built.
    loss : SoftmaxCrossEntropy
    meta : dict
        Free-form JSON-serialisable metadata saved with the model (the
        command line keeps class names and input scaling there).
    training_aware : bool (class attribute)
        True: :meth:`forward` takes ``training``, as the layers that set it
        do (see :class:`~cnnext.nn.Layer`).

    Raises
    ------
    TypeError
        If a layer is not a :class:`Layer` or ``dtype`` is not float32 or
        float64.
    ValueError
        If ``layers`` is empty or a layer cannot take its input shape.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> model = nn.Sequential([nn.Flatten(), nn.Dense(3)], input_shape=(2, 2, 1),
    ...                       dtype="float64")
    >>> opt = nn.Adam(lr=0.1)
    >>> X, y = np.ones((4, 2, 2, 1)), np.array([0, 1, 2, 1])
    >>> loss, accuracy = model.train_step(X, y, opt)
    >>> 0 <= accuracy <= 1
    True
    >>> model.predict(X).shape
    (4,)
    """

    training_aware = True

    def __init__(self, layers, input_shape=None, dtype="float32", seed=0):
        layers = list(layers)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"layers must be cnnext.nn.Layer instances; got "
                                f"{type(layer).__name__}")
        if not layers:
            raise ValueError("a Sequential needs at least one layer")
        self.layers = layers
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self.loss = SoftmaxCrossEntropy()
        self.meta = {}
        self.input_shape = None
        if input_shape is not None:
            self.build(input_shape)

    @property
    def built(self):
        """Whether :meth:`build` has run."""
        return self.input_shape is not None

    @property
    def output_shape(self):
        """Shape of the logits of one example, ``(n_classes,)``; None until built."""
        return self.layers[-1].output_shape

    def build(self, input_shape):
        """Build every layer for examples of ``input_shape``; return self.

        Raises
        ------
        ValueError
            If a layer cannot take the shape it receives or produces an empty
            output.
        """
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
        # Checked first, so a single example gets the hint to add the batch
        # axis rather than the generic "must be a batch" below.
        if self.built and X.shape[1:] != self.input_shape:
            raise ValueError(f"the model expects examples of shape {self.input_shape}; "
                             f"{describe_batch(X.shape, self.input_shape)}")
        if X.ndim < 2:
            raise ValueError(f"X must be a batch of shape (m, ...); got {X.shape}")
        if not self.built:
            self.build(X.shape[1:])
        return X

    def forward(self, X, training=False):
        """Logits for the batch ``X``; every layer keeps its cache.

        Parameters
        ----------
        X : array_like, shape (m,) + input_shape
            A batch of NHWC examples; builds the model if it is not yet.
        training : bool, default False
            Passed to the layers whose behaviour depends on it (those with
            ``training_aware``: :class:`~cnnext.nn.BatchNorm2D` normalises by
            the batch's statistics and updates its running ones,
            :class:`~cnnext.nn.Dropout` drops); the others are called as
            ``forward(X)``. :meth:`train_step` passes True; the default,
            inference, is what :meth:`predict` and :meth:`evaluate` use. For
            a training loop of your own: ``forward(X, training=True)``, then
            :meth:`backward` and ``optimizer.step(model)``.

        Returns
        -------
        logits : ndarray, shape (m, n_classes)

        Raises
        ------
        ValueError
            If the examples of ``X`` are not of the model's input shape.
        TypeError
            If ``training`` is not a bool.
        """
        training = check_bool(training, "training")
        out = self._as_input(X)
        for layer in self.layers:
            if layer.training_aware:
                out = layer.forward(out, training=training)
            else:
                out = layer.forward(out)
        return out

    def _training_forward(self, X):
        """``self.forward(X, training=True)``, or ``self.forward(X)`` for a
        subclass whose ``forward`` predates the argument when no layer needs
        it (so such subclasses keep training as before)."""
        try:
            params = inspect.signature(self.forward).parameters.values()
        except (TypeError, ValueError):  # no signature to read: assume the argument
            params = None
        if params is None or any(p.name == "training" or p.kind is p.VAR_KEYWORD
                                 for p in params):
            return self.forward(X, training=True)
        aware = [repr(layer) for layer in self.layers if layer.training_aware]
        if aware:
            raise TypeError(f"{type(self).__name__}.forward takes no 'training' "
                            f"argument, but {', '.join(aware)} behave differently in "
                            f"training; add training=False to its parameters and pass "
                            f"it on to Sequential.forward")
        return self.forward(X)

    def backward(self, dout):
        """Back-propagate ``dout`` (gradient w.r.t. the logits) through every
        layer; return the gradient with respect to the input."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self):
        """List of (name, array) of every trainable parameter, in a fixed order.

        Names are ``"<layer index>.<layer class>.<parameter>"``, e.g.
        ``"0.Conv2D.W"``; the arrays are the layers' own (not copies).
        """
        return [(f"{i}.{type(layer).__name__}.{k}", v)
                for i, layer in enumerate(self.layers) for k, v in layer.params.items()]

    def buffers(self):
        """List of (name, array) of every buffer (state saved with the model
        but not trained: :class:`~cnnext.nn.BatchNorm2D`'s running
        statistics), named as :meth:`parameters` names them, e.g.
        ``"1.BatchNorm2D.running_mean"``; the layers' own arrays."""
        return [(f"{i}.{type(layer).__name__}.{k}", v)
                for i, layer in enumerate(self.layers) for k, v in layer.buffers.items()]

    def gradients(self):
        """Gradients from the last :meth:`backward`, in :meth:`parameters` order."""
        return [layer.grads[k] for layer in self.layers for k in layer.params]

    def train_step(self, X, y, optimizer):
        """One step of gradient descent on the batch (X, y), in training
        mode (``forward(X, training=True)``).

        Parameters
        ----------
        X : array_like, shape (m,) + input_shape
        y : array_like of int, shape (m,)
        optimizer : SGD or Adam

        Returns
        -------
        loss : float
            Mean cross-entropy on the batch before the update.
        accuracy : float
            Fraction of the batch classified right before the update, in
            [0, 1], as :meth:`evaluate` returns it (multiply by ``len(y)``
            for a count).
        """
        logits = self._training_forward(X)
        loss = self.loss.forward(logits, y)
        self.backward(self.loss.backward())
        optimizer.step(self)
        n_correct = int((logits.argmax(axis=1) == y).sum())
        return float(loss), n_correct / max(logits.shape[0], 1)

    def predict_proba(self, X, batch_size=256):
        """Softmax class probabilities of each example, by batches, in
        inference mode.

        Parameters
        ----------
        X : array_like or dask array, shape (m,) + input_shape
            A dask array chunked along the batch axis is predicted block by
            block on the Dask cluster (see :mod:`cnnext._dask`); the result is
            then a dask array too.
        batch_size : int, default 256

        Returns
        -------
        proba : ndarray (or dask array), shape (m, n_classes)
        """
        if _dask.is_dask_array(X):
            return _dask.predict_proba_dask(self, X, batch_size)
        X = self._as_input(X)
        out = []
        for i in range(0, X.shape[0], batch_size):
            logits = self.forward(X[i:i + batch_size])  # inference, the default
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        if not out:
            return np.empty((0,) + self.output_shape, dtype=self.dtype)
        return np.concatenate(out)

    def predict(self, X, batch_size=256):
        """Predicted class of each example of X, in inference mode.

        Parameters
        ----------
        X : array_like or dask array, shape (m,) + input_shape
            A dask array gives a dask array, as :meth:`predict_proba`.
        batch_size : int, default 256

        Returns
        -------
        classes : ndarray (or dask array) of int, shape (m,)
        """
        if _dask.is_dask_array(X):
            return _dask.predict_dask(self, X, batch_size)
        return self.predict_proba(X, batch_size).argmax(axis=1)

    def evaluate(self, X, y, batch_size=256):
        """Mean loss and accuracy on (X, y), by batches, in inference mode.

        Parameters
        ----------
        X : array_like, shape (m,) + input_shape
        y : array_like of int, shape (m,)
        batch_size : int, default 256

        Returns
        -------
        loss : float
            Mean cross-entropy.
        accuracy : float
            Fraction of the examples classified right, in [0, 1].
        """
        X = self._as_input(X)
        y = np.asarray(y)
        total, correct = 0.0, 0
        for i in range(0, X.shape[0], batch_size):
            logits = self.forward(X[i:i + batch_size])  # inference, the default
            yb = y[i:i + batch_size]
            total += float(self.loss.forward(logits, yb)) * len(yb)
            correct += int((logits.argmax(axis=1) == yb).sum())
        m = max(X.shape[0], 1)
        return total / m, correct / m

    def get_config(self):
        """The architecture as a JSON-serialisable dict (see
        :mod:`cnnext.nn.serialization` for the keys)."""
        return {
            "format": serialization.FORMAT,
            "input_shape": list(self.input_shape) if self.built else None,
            "dtype": self.dtype.name,
            "layers": [{"class": type(l).__name__, "config": l.get_config()}
                       for l in self.layers],
            "meta": self.meta,
        }

    def save(self, path):
        """Save architecture, weights and buffers to an ``.npz`` file; see
        :func:`cnnext.nn.serialization.save` and :func:`cnnext.nn.load`."""
        serialization.save(self, path)

    def load_weights(self, path):
        """Load weights and buffers saved by :meth:`save` from a model of the same
        architecture; see :func:`cnnext.nn.serialization.load_weights`."""
        serialization.load_weights(self, path)

    def summary(self):
        """One line per layer: name, output shape, parameter count."""
        lines = []
        for layer in self.layers:
            n = sum(v.size for v in layer.params.values())
            lines.append(f"{layer!r:40s} -> {layer.output_shape}  params={n}")
        return "\n".join(lines)

    def __repr__(self):
        return "Sequential([" + ", ".join(map(repr, self.layers)) + "])"
