"""Type stubs for cnnext.nn.layers (see layers.py for the docs).

Parameters, gradients and outputs are float32 or float64 as the layer was
built; the stubs type them ``NDArray[np.floating[Any]]``.
"""
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import Self, TypeAlias

__all__ = ["Layer", "Conv2D", "DepthwiseConv2D", "ReLU", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
           "Flatten", "Dense", "BatchNorm2D", "Dropout"]

#: The dtypes a layer or model computes in.
_FloatDType: TypeAlias = (
    Literal["float32", "float64"]
    | type[np.float32]
    | type[np.float64]
    | np.dtype[np.float32]
    | np.dtype[np.float64]
)
#: What numpy.random.default_rng accepts, as the layers use it.
_Seed: TypeAlias = int | np.random.Generator | None
#: The shape of one example, without the batch axis.
_Shape: TypeAlias = Iterable[SupportsIndex]
_Init: TypeAlias = Literal["he", "glorot"]
_FloatArray: TypeAlias = NDArray[np.floating[Any]]

class Layer:
    training_aware: ClassVar[bool]
    params: dict[str, _FloatArray]
    grads: dict[str, _FloatArray]
    buffers: dict[str, _FloatArray]
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    dtype: np.dtype[np.floating[Any]] | None
    cache: Any
    def __init__(self) -> None: ...
    @property
    def built(self) -> bool: ...
    def build(
        self, input_shape: _Shape, rng: _Seed = None, dtype: _FloatDType = "float32"
    ) -> Self: ...
    def _build(
        self, input_shape: tuple[int, ...], rng: np.random.Generator
    ) -> tuple[int, ...]: ...
    def _check_input(self, X: ArrayLike) -> _FloatArray: ...
    def forward(self, X: ArrayLike) -> _FloatArray: ...
    def backward(self, dout: ArrayLike) -> _FloatArray: ...
    def get_config(self) -> dict[str, Any]: ...

_Pair: TypeAlias = int | tuple[int, int]
_Pad: TypeAlias = (
    int | tuple[int, int] | tuple[int, int, int, int] | Literal["same", "valid"]
)

class Conv2D(Layer):
    n_C: int
    f: _Pair
    stride: _Pair
    pad: _Pad
    dilation: _Pair
    groups: int
    use_bias: bool
    init: _Init
    hparameters: dict[str, Any]
    def __init__(
        self,
        n_C: int,
        f: _Pair,
        stride: _Pair = 1,
        pad: _Pad = 0,
        dilation: _Pair = 1,
        groups: int = 1,
        use_bias: bool = True,
        init: _Init = "he",
    ) -> None: ...
    def backward(self, dZ: ArrayLike) -> _FloatArray: ...

class DepthwiseConv2D(Conv2D):
    depth_multiplier: int
    def __init__(  # type: ignore[override]
        self,
        f: _Pair,
        stride: _Pair = 1,
        pad: _Pad = 0,
        dilation: _Pair = 1,
        depth_multiplier: int = 1,
        use_bias: bool = True,
        init: _Init = "he",
    ) -> None: ...

class ReLU(Layer): ...

class _Pool2D(Layer):
    mode: ClassVar[Literal["", "max", "average"]]
    f: _Pair
    stride: _Pair
    pad: _Pad
    dilation: _Pair
    hparameters: dict[str, Any]
    def __init__(
        self, f: _Pair, stride: _Pair | None = None, pad: _Pad = 0, dilation: _Pair = 1
    ) -> None: ...
    def backward(self, dA: ArrayLike) -> _FloatArray: ...

class MaxPool2D(_Pool2D): ...

class AvgPool2D(_Pool2D):
    count_include_pad: bool
    def __init__(
        self,
        f: _Pair,
        stride: _Pair | None = None,
        pad: _Pad = 0,
        dilation: _Pair = 1,
        count_include_pad: bool = False,
    ) -> None: ...

class GlobalAvgPool2D(Layer):
    def backward(self, dA: ArrayLike) -> _FloatArray: ...

class Flatten(Layer): ...

class Dense(Layer):
    n_out: int
    init: _Init
    def __init__(self, n_out: int, init: _Init = "glorot") -> None: ...

class BatchNorm2D(Layer):
    momentum: float
    eps: float
    def __init__(self, momentum: float = 0.1, eps: float = 1e-5) -> None: ...
    def forward(self, X: ArrayLike, training: bool = False) -> _FloatArray: ...


class Dropout(Layer):
    rate: float
    seed: int | None
    rng: np.random.Generator | None
    def __init__(self, rate: float, seed: int | None = None) -> None: ...
    def forward(self, X: ArrayLike, training: bool = False) -> _FloatArray: ...
