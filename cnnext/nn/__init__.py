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

One concern per module, every public name importable from here:

- :mod:`cnnext.nn.layers`: Layer, Conv2D, DepthwiseConv2D, ReLU, MaxPool2D, AvgPool2D,
  GlobalAvgPool2D, Flatten, Dense, BatchNorm2D, Dropout;
- :mod:`cnnext.nn.functional`: relu, softmax (plain functions, for loops of
  your own);
- :mod:`cnnext.nn.losses`: SoftmaxCrossEntropy;
- :mod:`cnnext.nn.model`: Sequential;
- :mod:`cnnext.nn.optimizers`: SGD, Adam;
- :mod:`cnnext.nn.serialization`: save, load and the model file format.

:class:`BatchNorm2D` and :class:`Dropout` behave differently in training:
:meth:`Sequential.train_step` runs the model with ``forward(X,
training=True)``; ``forward(X)``, ``predict``, ``predict_proba`` and
``evaluate`` run it in inference (running statistics, no dropout).

Only numpy is needed to import this package.

Examples
--------
>>> import numpy as np
>>> from cnnext import nn
>>> model = nn.Sequential([nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.MaxPool2D(2),
...                        nn.Flatten(), nn.Dense(3)], input_shape=(8, 8, 1), seed=0)
>>> model.forward(np.zeros((5, 8, 8, 1))).shape
(5, 3)
"""
from .functional import relu, softmax
from .layers import (AvgPool2D, BatchNorm2D, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                     GlobalAvgPool2D, Layer, MaxPool2D, ReLU)
from .losses import SoftmaxCrossEntropy
from .model import Sequential
from .optimizers import SGD, Adam
from .serialization import load

__all__ = [
    "Layer",
    "Conv2D",
    "DepthwiseConv2D",
    "ReLU",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "Flatten",
    "Dense",
    "BatchNorm2D",
    "Dropout",
    "SoftmaxCrossEntropy",
    "Sequential",
    "SGD",
    "Adam",
    "load",
    "relu",
    "softmax",
]
