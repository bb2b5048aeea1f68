"""The loss: softmax followed by the mean cross-entropy, with its label check."""
import numpy as np

__all__ = ["SoftmaxCrossEntropy"]


def _check_labels(y, m, n_classes):
    """``y`` as an integer array of shape (m,) with values in 0..n_classes-1."""
    y = np.asarray(y)
    if y.shape != (m,):
        raise ValueError(f"y must have shape ({m},), one label per example; "
                         f"got {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels; got dtype {y.dtype}")
    if m and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}; got values "
                         f"from {y.min()} to {y.max()}")
    return y


class SoftmaxCrossEntropy:
    """Softmax of the logits followed by the mean cross-entropy.

    Attributes
    ----------
    cache : tuple or None
        ``(log_probs, y)`` of the last :meth:`forward`, for :meth:`backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> loss = nn.SoftmaxCrossEntropy()
    >>> round(float(loss.forward(np.zeros((2, 4)), np.array([0, 3]))), 6)  # log(4)
    1.386294
    >>> loss.backward()
    array([[-0.375,  0.125,  0.125,  0.125],
           [ 0.125,  0.125,  0.125, -0.375]])
    """

    def __init__(self):
        self.cache = None

    def forward(self, logits, y):
        """Mean cross-entropy of ``softmax(logits)`` against integer labels ``y``.

        Parameters
        ----------
        logits : ndarray, shape (m, n_classes)
        y : array_like of int, shape (m,)

        Returns
        -------
        loss : numpy floating scalar, in the dtype of ``logits``

        Raises
        ------
        ValueError
            If ``logits`` is not 2-D, ``y`` is not of shape (m,) or a label is
            out of range.
        TypeError
            If ``y`` does not hold integers.
        """
        logits = np.asarray(logits)
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (m, n_classes); got {logits.shape}")
        m, n = logits.shape
        y = _check_labels(y, m, n)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.cache = (log_probs, y)
        return -log_probs[np.arange(m), y].mean()

    def backward(self):
        """Gradient of the last loss with respect to its logits.

        Returns
        -------
        dlogits : ndarray, shape (m, n_classes)
            ``(softmax(logits) - one_hot(y)) / m``.
        """
        log_probs, y = self.cache
        m = log_probs.shape[0]
        grad = np.exp(log_probs)
        grad[np.arange(m), y] -= 1
        grad /= m
        return grad
