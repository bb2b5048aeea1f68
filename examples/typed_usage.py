"""One forward and backward pass through every public function, fully typed.

Checked in CI with ``mypy --strict examples/typed_usage.py`` (scripts/check_types.sh):
it proves the ``py.typed`` stubs describe the API the way a user calls it.
Run it too: ``python examples/typed_usage.py`` prints the shapes it gets.
"""
from typing import Any

import numpy as np
from numpy.typing import NDArray

import cnnext


def conv_pool_step(A_prev: NDArray[np.float32]) -> dict[str, tuple[int, ...]]:
    """Conv, max pool, then back through both; return every result's shape."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 3, A_prev.shape[3], 4)).astype(np.float32)
    b = np.zeros((1, 1, 1, 4), dtype=np.float32)

    padded: NDArray[np.float32] = cnnext.zero_pad(A_prev, 1)
    z: np.floating[Any] = cnnext.conv_single_step(padded[0, :3, :3, :], W[..., 0], b[..., 0])

    Z, conv_cache = cnnext.conv_forward(A_prev, W, b, {"stride": 1, "pad": 1})
    A, pool_cache = cnnext.pool_forward(Z, {"f": 2, "stride": 2}, mode="max")
    A_avg, avg_cache = cnnext.pool_forward(Z, {"f": 2, "stride": 2}, mode="average")

    dZ = cnnext.pool_backward(np.ones_like(A), pool_cache, mode="max")
    dZ = dZ + cnnext.pool_backward(np.ones_like(A_avg), avg_cache, mode="average")
    dA_prev, dW, db = cnnext.conv_backward(dZ, conv_cache)
    assert db is not None  # None only for a convolution without bias (b=None)

    mask: NDArray[np.bool_] = cnnext.create_mask_from_window(Z[0, :2, :2, 0])
    spread: NDArray[np.floating[Any]] = cnnext.distribute_value(float(z), (2, 2))

    arrays: dict[str, NDArray[Any]] = {
        "padded": padded, "Z": Z, "A": A, "dZ": dZ, "dA_prev": dA_prev,
        "dW": dW, "db": db, "mask": mask, "spread": spread,
    }
    return {name: arr.shape for name, arr in arrays.items()}


def main() -> None:
    A_prev = np.random.default_rng(1).standard_normal((2, 6, 6, 3)).astype(np.float32)
    print(f"cnnext {cnnext.__version__}")
    for name, shape in conv_pool_step(A_prev).items():
        print(f"{name:8s} {shape}")


if __name__ == "__main__":
    main()
