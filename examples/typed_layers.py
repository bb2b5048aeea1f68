"""Build, train, save and reload a small CNN with cnnext.nn, fully typed.

Checked in CI with ``mypy --strict examples/typed_layers.py`` (scripts/check_types.sh):
it proves the ``cnnext/nn/*.pyi`` stubs describe the layer API the way a user
calls it. Run it too: ``python examples/typed_layers.py`` trains on random
data and prints what it gets.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cnnext import nn
from cnnext.nn.serialization import FORMAT


def make_model(seed: int = 0) -> nn.Sequential:
    """Conv, ReLU, max pool, conv, average pool, flatten, dense."""
    layers: list[nn.Layer] = [
        nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(6, 2, stride=1, init="glorot"), nn.AvgPool2D(2, stride=1),
        nn.Flatten(), nn.Dense(3),
    ]
    return nn.Sequential(layers, input_shape=(8, 8, 1), dtype="float64", seed=seed)


def train(model: nn.Sequential, X: NDArray[np.float64], y: NDArray[np.int64],
          optimizer: nn.SGD | nn.Adam, steps: int) -> list[tuple[float, float]]:
    """``steps`` optimizer steps on (X, y), halving the learning rate half-way;
    the (loss, accuracy) of each."""
    history = []
    for step in range(steps):
        if step == steps // 2:
            optimizer.lr = optimizer.lr / 2
        history.append(model.train_step(X, y, optimizer))
    return history


def layer_by_layer(model: nn.Sequential, X: NDArray[np.float64],
                   y: NDArray[np.int64]) -> list[tuple[str, tuple[int, ...]]]:
    """Each layer's output shape for the batch X, from its own forward."""
    shapes = []
    out: NDArray[np.floating[Any]] = X
    for layer in model.layers:
        out = layer.forward(out)
        shapes.append((repr(layer), out.shape))
    # Back through the loss and every layer, by hand.
    loss = nn.SoftmaxCrossEntropy()
    value: np.floating[Any] = loss.forward(out, y)
    dX = model.backward(loss.backward())
    assert dX.shape == X.shape and np.isfinite(value)
    return shapes


def normalised_model(seed: int = 0) -> nn.Sequential:
    """Conv, batch norm, ReLU, dropout, global average pool, dense."""
    layers: list[nn.Layer] = [
        nn.Conv2D(4, 3, pad=1), nn.BatchNorm2D(momentum=0.1, eps=1e-5), nn.ReLU(),
        nn.Dropout(0.25, seed=seed), nn.GlobalAvgPool2D(), nn.Dense(3),
    ]
    return nn.Sequential(layers, input_shape=(8, 8, 1), dtype="float64", seed=seed)


def own_loop(model: nn.Sequential, X: NDArray[np.float64], y: NDArray[np.int64],
             optimizer: nn.Adam, steps: int) -> float:
    """A training loop by hand: forward in training mode, backward, step;
    the loss of the last step, from nn.softmax."""
    loss = nn.SoftmaxCrossEntropy()
    value = float("nan")
    for _ in range(steps):
        logits = model.forward(X, training=True)
        proba: NDArray[np.float64] = nn.softmax(logits.astype(np.float64), axis=1)
        value = float(-np.log(proba[np.arange(len(y)), y]).mean())
        loss.forward(logits, y)
        model.backward(loss.backward())
        optimizer.step(model)
    return value


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 8, 8, 1))
    y = rng.integers(0, 3, size=24)
    for optimizer in (nn.SGD(lr=0.05, momentum=0.9), nn.Adam(lr=0.02)):
        model = make_model()
        history = train(model, X, y, optimizer, steps=20)
        (first, _), (last, accuracy) = history[0], history[-1]
        print(f"{type(optimizer).__name__:4s}: loss {first:.4f} -> {last:.4f}, "
              f"accuracy {accuracy:.0%} at the last step")

    loss, accuracy = model.evaluate(X, y, batch_size=10)
    proba: NDArray[np.floating[Any]] = model.predict_proba(X[:2])
    classes: NDArray[np.intp] = model.predict(X[0][None])  # a batch of one
    print(f"evaluate: loss {loss:.4f}  accuracy {accuracy:.0%}; "
          f"first probabilities {proba[0].round(3)}; class of X[0] {classes[0]}")
    for name, shape in layer_by_layer(model, X[:2], y[:2]):
        print(f"  {name:40s} {shape}")

    names = [name for name, _ in model.parameters()]
    grads = model.gradients()
    print(f"{len(names)} parameter arrays, {sum(g.size for g in grads)} values")

    model.meta = {"classes": ["a", "b", "c"]}
    other = make_model(seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.npz")
        model.save(path)
        loaded: nn.Sequential = nn.load(path)
        other.load_weights(path)
    same = np.array_equal(loaded.forward(X), model.forward(X)) and np.array_equal(
        other.forward(X), model.forward(X))
    print(f"saved as {FORMAT} and reloaded: {loaded!r}; same logits: {same}")
    print(loaded.summary())

    bn_model = normalised_model()
    last = own_loop(bn_model, X, y, nn.Adam(lr=0.02), steps=10)
    running: list[tuple[str, NDArray[np.floating[Any]]]] = bn_model.buffers()
    hidden: NDArray[np.float64] = nn.relu(X[:2].reshape(2, -1))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bn.npz")
        bn_model.save(path)
        same = np.array_equal(nn.load(path).predict_proba(X), bn_model.predict_proba(X))
    print(f"batch norm model: loss {last:.4f} after 10 steps of a loop of its own; "
          f"{len(running)} buffers; relu kept {int((hidden > 0).sum())} values; "
          f"same probabilities after reload: {same}")


if __name__ == "__main__":
    main()
