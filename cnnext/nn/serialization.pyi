"""Type stubs for cnnext.nn.serialization (see serialization.py for the docs)."""
import os

from typing_extensions import TypeAlias

from cnnext.nn.layers import Layer, _FloatDType
from cnnext.nn.model import Sequential

__all__ = ["FORMAT", "save", "load", "load_weights"]

#: Where a model file is read or written.
_Path: TypeAlias = str | os.PathLike[str]

FORMAT: str
_LAYER_CLASSES: dict[str, type[Layer]]

def save(model: Sequential, path: _Path) -> None: ...
def load_weights(model: Sequential, path: _Path) -> None: ...
def load(path: _Path, dtype: _FloatDType | None = None) -> Sequential: ...
