"""Type stubs for cnnext.nn.functional (see functional.py for the docs)."""
from typing import Any, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["relu", "softmax"]

_FloatT = TypeVar("_FloatT", bound=np.floating[Any])
_NumberT = TypeVar("_NumberT", bound=np.integer[Any] | np.floating[Any])

@overload
def relu(x: NDArray[_NumberT]) -> NDArray[_NumberT]: ...
@overload
def relu(x: ArrayLike) -> NDArray[Any]: ...
@overload
def softmax(x: NDArray[_FloatT], axis: int = -1) -> NDArray[_FloatT]: ...
@overload
def softmax(x: ArrayLike, axis: int = -1) -> NDArray[np.floating[Any]]: ...
