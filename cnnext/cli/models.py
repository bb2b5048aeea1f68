"""The model ``cnnext train`` trains: the course's ConvNet, sized to the input."""
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
