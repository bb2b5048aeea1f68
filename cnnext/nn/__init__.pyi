"""Type stubs for cnnext.nn (see cnnext/nn/__init__.py for the docs)."""
from cnnext.nn import functional as functional
from cnnext.nn import layers as layers
from cnnext.nn import losses as losses
from cnnext.nn import model as model
from cnnext.nn import optimizers as optimizers
from cnnext.nn import serialization as serialization
from cnnext.nn.functional import relu as relu, softmax as softmax
from cnnext.nn.layers import (
    AvgPool2D as AvgPool2D,
    BatchNorm2D as BatchNorm2D,
    Conv2D as Conv2D,
    DepthwiseConv2D as DepthwiseConv2D,
    Dense as Dense,
    Dropout as Dropout,
    Flatten as Flatten,
    GlobalAvgPool2D as GlobalAvgPool2D,
    Layer as Layer,
    MaxPool2D as MaxPool2D,
    ReLU as ReLU,
)
from cnnext.nn.losses import SoftmaxCrossEntropy as SoftmaxCrossEntropy
from cnnext.nn.model import Sequential as Sequential
from cnnext.nn.optimizers import SGD as SGD, Adam as Adam
from cnnext.nn.serialization import load as load

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
