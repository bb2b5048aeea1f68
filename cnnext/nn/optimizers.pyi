"""Type stubs for cnnext.nn.optimizers (see optimizers.py for the docs)."""
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["SGD", "Adam"]

class _HasParameters(Protocol):
    """What step() reads: Sequential, or anything shaped like it."""
    def parameters(self) -> list[tuple[str, NDArray[np.floating[Any]]]]: ...
    def gradients(self) -> list[NDArray[np.floating[Any]]]: ...

class _Optimizer:
    state: list[Any] | None
    def __init__(self, lr: float) -> None: ...
    @property
    def lr(self) -> float: ...
    @lr.setter
    def lr(self, value: float) -> None: ...
    def step(self, model: _HasParameters) -> None: ...

class SGD(_Optimizer):
    momentum: float
    def __init__(self, lr: float = 0.05, momentum: float = 0.9) -> None: ...

class Adam(_Optimizer):
    beta1: float
    beta2: float
    eps: float
    t: int
    def __init__(
        self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None: ...
