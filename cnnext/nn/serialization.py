"""Saving and loading models: the ``cnnext.nn/1`` file format.

A model file is a plain ``.npz`` archive, readable with
``numpy.load(path, allow_pickle=False)``:

- ``config``: a 0-d string array holding the JSON of
  :meth:`Sequential.get_config <cnnext.nn.Sequential.get_config>`:
  ``format`` (``"cnnext.nn/1"``), ``input_shape``, ``dtype``, ``layers``
  (each ``{"class": name, "config": constructor arguments}``) and ``meta``;
- ``param:<name>``: one array per trainable parameter, named as in
  :meth:`Sequential.parameters <cnnext.nn.Sequential.parameters>`
  (``"0.Conv2D.W"``, ...);
- ``buffer:<name>``: one array per buffer (state that is saved but not
  trained: :class:`~cnnext.nn.BatchNorm2D`'s ``running_mean`` and
  ``running_var``), named as in :meth:`Sequential.buffers
  <cnnext.nn.Sequential.buffers>` (``"1.BatchNorm2D.running_mean"``, ...).

The ``buffer:`` entries came with BatchNorm2D and the format stayed
``cnnext.nn/1``: a file of a model without buffers is what it was, and loads
as before; a file naming a layer this version does not know is refused with
the layer's name. A file whose model has a BatchNorm2D but no ``buffer:``
entries for it (never written by :func:`save`) is refused with a
ValueError naming the missing entry, rather than loaded with made-up
statistics.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from cnnext import nn
>>> model = nn.Sequential([nn.Flatten(), nn.Dense(2)], input_shape=(2, 2, 1))
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = os.path.join(tmp, "model.npz")
...     nn.serialization.save(model, path)
...     with np.load(path) as data:
...         print(sorted(data.files))
...     print(nn.load(path))
['config', 'param:1.Dense.W', 'param:1.Dense.b']
Sequential([Flatten(), Dense(n_out=2, init='glorot')])
"""
import json

import numpy as np

from .layers import (AvgPool2D, BatchNorm2D, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                     GlobalAvgPool2D, MaxPool2D, ReLU)

__all__ = ["FORMAT", "save", "load", "load_weights"]

#: The ``format`` entry of a model file's config; a file without it is refused.
FORMAT = "cnnext.nn/1"

#: The layer classes a model file may name, by class name.
_LAYER_CLASSES = {cls.__name__: cls for cls in
                 (Conv2D, DepthwiseConv2D, ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten,
                  Dense, BatchNorm2D, Dropout)}


def save(model, path):
    """Save the architecture, weights and buffers of ``model`` to an ``.npz`` file.

    Parameters
    ----------
    model : Sequential
        A built model.
    path : str or path-like
        Written as given (numpy adds no ``.npz`` suffix).

    Raises
    ------
    RuntimeError
        If the model is not built.
    """
    if not model.built:
        raise RuntimeError("the model is not built; nothing to save")
    arrays = {f"param:{name}": value for name, value in model.parameters()}
    arrays.update({f"buffer:{name}": value for name, value in model.buffers()})
    arrays["config"] = np.array(json.dumps(model.get_config()))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_weights(model, path):
    """Copy the weights and buffers saved in ``path`` into ``model``, in place.

    Parameters
    ----------
    model : Sequential
        A built model of the architecture that was saved.
    path : str or path-like

    Raises
    ------
    ValueError
        If the file lacks one of the model's parameters or buffers or holds
        it in another shape. Nothing is copied then.
    """
    with np.load(path, allow_pickle=False) as data:
        pairs = []
        for name, value in model.parameters():
            key = f"param:{name}"
            if key not in data:
                raise ValueError(f"{path} has no weights {name!r}; was it saved "
                                 f"from a model of this architecture?")
            pairs.append((f"weights {name!r} have", value, data[key]))
        for name, value in model.buffers():
            key = f"buffer:{name}"
            if key not in data:
                raise ValueError(f"{path} has no buffer {name!r} (entry {key!r}); "
                                 f"it was not written by cnnext.nn's save from a "
                                 f"model of this architecture")
            pairs.append((f"buffer {name!r} has", value, data[key]))
    for what, value, saved in pairs:
        if saved.shape != value.shape:
            raise ValueError(f"{path}: {what} shape {saved.shape}, the model "
                             f"wants {value.shape}")
    for _, value, saved in pairs:
        value[...] = saved


def load(path, dtype=None):
    """Rebuild a :class:`~cnnext.nn.Sequential` saved by :func:`save`.

    Parameters
    ----------
    path : str or path-like
    dtype : {"float32", "float64"}, optional
        Override the saved dtype.

    Returns
    -------
    model : Sequential

    Raises
    ------
    ValueError
        If the file is not a model saved by cnnext.nn.

    Examples
    --------
    >>> import os, tempfile
    >>> from cnnext import nn
    >>> model = nn.Sequential([nn.Flatten(), nn.Dense(2)], input_shape=(2, 2, 1))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "model.npz")
    ...     model.save(path)
    ...     print(nn.load(path, dtype="float64").dtype)
    float64
    """
    from .model import Sequential  # model.py imports this module

    with np.load(path, allow_pickle=False) as data:
        if "config" not in data:
            raise ValueError(f"{path} is not a cnnext.nn model (no 'config' entry)")
        try:
            config = json.loads(str(data["config"]))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} has an unreadable 'config': {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a cnnext.nn model (format "
                         f"{config.get('format') if isinstance(config, dict) else None!r})")
    layers = []
    for spec in config["layers"]:
        cls = _LAYER_CLASSES.get(spec.get("class"))
        if cls is None:
            raise ValueError(f"{path}: unknown layer class {spec.get('class')!r}")
        layers.append(cls(**spec.get("config", {})))
    model = Sequential(layers, input_shape=config["input_shape"],
                       dtype=dtype or config["dtype"])
    model.meta = config.get("meta", {})
    load_weights(model, path)
    return model
