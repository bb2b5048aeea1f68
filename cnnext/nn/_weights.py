"""Initial weights of the layers: He-normal or Glorot-uniform, from a seeded
:class:`numpy.random.Generator`."""
import numpy as np

INITS = ("he", "glorot")


def check_init(init):
    """``init`` if it names a known initialisation, else ValueError."""
    if init not in INITS:
        raise ValueError(f"init must be 'he' or 'glorot'; got {init!r}")
    return init


def init_weights(rng, shape, fan_in, fan_out, init, dtype):
    """He-normal or Glorot-uniform weights of ``shape`` drawn from ``rng``."""
    if init == "he":
        W = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-limit, limit, size=shape)
    return W.astype(dtype)
