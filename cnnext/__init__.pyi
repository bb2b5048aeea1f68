"""Type stubs for cnnext's public API (see cnnext/__init__.py for the docs).

Arrays go in as anything numpy accepts (``ArrayLike``) and come out as
ndarrays. The float dtype of an output follows the runtime rules (float32 in,
float32 out; float64, integer and bool in, float64 out), which the stubs do not
try to encode: outputs are typed ``NDArray[np.floating[Any]]``.
"""
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal, SupportsIndex, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cnnext.gradcheck import GradcheckResult as _GradcheckResult

__version__: str
__all__ = [
    "zero_pad",
    "conv_single_step",
    "conv_forward",
    "conv_backward",
    "pool_forward",
    "pool_backward",
    "create_mask_from_window",
    "distribute_value",
    "get_num_threads",
    "set_num_threads",
    "threads",
    "show_config",
    "gradcheck",
    "__version__",
]

_ScalarT = TypeVar("_ScalarT", bound=np.generic)

#: ``{"stride": ..., "pad": ...}`` for conv, ``{"f": ..., "stride": ...}`` for pool;
#: values an int, an (h, w) pair, a (top, bottom, left, right) pad, "same" or
#: "valid", or count_include_pad's bool.
_HValue = SupportsIndex | tuple[SupportsIndex, ...] | list[SupportsIndex] | str | bool
_HParameters = Mapping[str, _HValue]
_PoolMode = Literal["max", "average"]
#: What conv_forward returns as its cache: (A_prev, W, b, hparameters).
_ConvCache = tuple[ArrayLike, ArrayLike, ArrayLike | None, _HParameters]
#: What pool_forward returns as its cache: (A_prev, hparameters).
_PoolCache = tuple[ArrayLike, _HParameters]

@overload
def zero_pad(X: NDArray[_ScalarT], pad: SupportsIndex) -> NDArray[_ScalarT]: ...
@overload
def zero_pad(X: ArrayLike, pad: SupportsIndex) -> NDArray[Any]: ...
def conv_single_step(
    a_slice_prev: ArrayLike, W: ArrayLike, b: ArrayLike
) -> np.floating[Any]: ...
def conv_forward(
    A_prev: ArrayLike, W: ArrayLike, b: ArrayLike | None, hparameters: _HParameters
) -> tuple[NDArray[np.floating[Any]], _ConvCache]: ...
def conv_backward(
    dZ: ArrayLike, cache: _ConvCache
) -> tuple[
    NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]] | None
]: ...
def pool_forward(
    A_prev: ArrayLike, hparameters: _HParameters, mode: _PoolMode = "max"
) -> tuple[NDArray[np.floating[Any]], _PoolCache]: ...
def pool_backward(
    dA: ArrayLike, cache: _PoolCache, mode: _PoolMode = "max"
) -> NDArray[np.floating[Any]]: ...
def create_mask_from_window(x: ArrayLike) -> NDArray[np.bool_]: ...
def distribute_value(
    dz: ArrayLike,
    shape: tuple[SupportsIndex, SupportsIndex] | list[SupportsIndex],
) -> NDArray[np.floating[Any]]: ...
def get_num_threads() -> int: ...
def set_num_threads(num_threads: int) -> None: ...
def threads(num_threads: int) -> AbstractContextManager[None]: ...
@overload
def show_config(mode: Literal["stdout"] = ...) -> None: ...
@overload
def show_config(mode: Literal["dicts"]) -> dict[str, Any]: ...
def gradcheck(
    obj: Any,
    X: ArrayLike,
    y: ArrayLike | None = None,
    *,
    eps: float | None = None,
    tol: float | None = None,
    max_checks: int | None = None,
    seed: int = 0,
    check_input: bool = True,
    training: bool = True,
) -> _GradcheckResult: ...
