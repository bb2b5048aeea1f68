"""Type stubs for cnnext.nn.losses (see losses.py for the docs)."""
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["SoftmaxCrossEntropy"]

class SoftmaxCrossEntropy:
    cache: tuple[NDArray[np.floating[Any]], NDArray[np.integer[Any]]] | None
    def __init__(self) -> None: ...
    def forward(self, logits: ArrayLike, y: ArrayLike) -> np.floating[Any]: ...
    def backward(self) -> NDArray[np.floating[Any]]: ...
