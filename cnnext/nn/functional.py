"""Plain functions for writing your own training loops: :func:`relu` and
:func:`softmax`.

They take any array (not only batches) and keep no cache; the layers
(:class:`~cnnext.nn.ReLU`, the softmax inside
:class:`~cnnext.nn.SoftmaxCrossEntropy`) are what back-propagate.

Examples
--------
>>> import numpy as np
>>> from cnnext import nn
>>> nn.relu(np.array([-1.0, 0.5]))
array([0. , 0.5])
>>> nn.softmax(np.array([[0.0, np.log(3.0)]])).round(6)
array([[0.25, 0.75]])
"""
import sys

import numpy as np

from ._checks import check_int

__all__ = ["relu", "softmax"]


def _real_array(x):
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"x must hold real numbers; got dtype {x.dtype}")
    return x


def relu(x):
    """``max(x, 0)`` elementwise, in the dtype of ``x``.

    Parameters
    ----------
    x : array_like of real numbers

    Returns
    -------
    ndarray, the shape and dtype of ``x``
        NaN stays NaN.

    Raises
    ------
    TypeError
        If ``x`` does not hold real numbers (bool, complex, strings, objects).
    """
    return np.maximum(_real_array(x), 0)


def softmax(x, axis=-1):
    """Softmax along ``axis``, ``exp(x - max) / sum(exp(x - max))``.

    Subtracting the maximum first keeps ``exp`` from overflowing, so
    logits of any size are fine (``softmax([1000, 0])`` is ``[1, 0]``).

    Parameters
    ----------
    x : array_like of real numbers
        Floating inputs keep their dtype; integers give float64.
    axis : int, default -1
        The axis that sums to 1.

    Returns
    -------
    ndarray, the shape of ``x``

    Raises
    ------
    TypeError
        If ``x`` does not hold real numbers or ``axis`` is not an integer.
    ValueError
        If ``x`` is 0-d or ``axis`` is out of range for it.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext.nn import softmax
    >>> softmax(np.array([1000.0, 0.0]))
    array([1., 0.])
    >>> softmax(np.ones((2, 4)), axis=0)
    array([[0.5, 0.5, 0.5, 0.5],
           [0.5, 0.5, 0.5, 0.5]])
    """
    x = _real_array(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim == 0:
        raise ValueError("x must have at least one axis; got a 0-d array (a scalar)")
    axis = check_int(axis, "axis", -sys.maxsize - 1)  # the type; the range below
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis must be in {-x.ndim}..{x.ndim - 1} for x of shape "
                         f"{x.shape}; got {axis}")
    if x.shape[axis] == 0:
        return x.copy()
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
