"""The optimizers: SGD with momentum and Adam.

An optimizer updates a model's parameters in place from its gradients:
``optimizer.step(model)`` reads ``model.parameters()`` and
``model.gradients()`` (as :class:`~cnnext.nn.Sequential` provides them) and
keeps its own state (velocities, moments) from step to step.
"""
import numpy as np

__all__ = ["SGD", "Adam"]


class _Optimizer:
    def __init__(self, lr):
        self.lr = lr
        self.state = None

    @property
    def lr(self):
        """The learning rate, a Python float (so float32 parameters stay float32)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        if not value > 0:
            raise ValueError(f"lr must be > 0; got {value!r}")
        self._lr = float(value)

    def step(self, model):
        """Update every parameter of ``model`` in place from its gradients.

        Parameters
        ----------
        model : Sequential
            Anything with ``parameters()`` (a list of (name, array)) and
            ``gradients()`` (the matching gradients, in the same order).
        """
        params = [p for _, p in model.parameters()]
        grads = model.gradients()
        if self.state is None:
            self.state = self._init_state(params)
        self._update(params, grads)


class SGD(_Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    ``v = momentum * v - lr * g``; ``p += v``.

    Parameters
    ----------
    lr : float, default 0.05
    momentum : float, default 0.9
        0 gives plain gradient descent.

    Raises
    ------
    ValueError
        If ``lr`` is not > 0 or ``momentum`` not in [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> model = nn.Sequential([nn.Dense(1)], input_shape=(2,), dtype="float64")
    >>> model.layers[0].params["W"][...] = 1.0
    >>> model.layers[0].grads["W"][...] = 2.0
    >>> nn.SGD(lr=0.1, momentum=0).step(model)
    >>> model.layers[0].params["W"].ravel()
    array([0.8, 0.8])
    """

    def __init__(self, lr=0.05, momentum=0.9):
        super().__init__(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
        self.momentum = float(momentum)

    def _init_state(self, params):
        return [np.zeros_like(p) for p in params]

    def _update(self, params, grads):
        for p, g, v in zip(params, grads, self.state):
            v *= self.momentum
            v -= self.lr * g
            p += v


class Adam(_Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    ``m = beta1 m + (1 - beta1) g``; ``v = beta2 v + (1 - beta2) g**2``;
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - beta1**t)``
    and ``v_hat = v / (1 - beta2**t)``.

    Parameters
    ----------
    lr : float, default 0.001
    beta1, beta2 : float, default 0.9, 0.999
    eps : float, default 1e-8

    Attributes
    ----------
    t : int
        Number of steps taken.

    Raises
    ------
    ValueError
        If ``lr`` is not > 0.

    Examples
    --------
    The first step moves each parameter by about ``lr`` against the sign of
    its gradient:

    >>> import numpy as np
    >>> from cnnext import nn
    >>> model = nn.Sequential([nn.Dense(1)], input_shape=(2,), dtype="float64")
    >>> model.layers[0].params["W"][...] = 1.0
    >>> model.layers[0].grads["W"][...] = [[5.0], [-0.5]]
    >>> nn.Adam(lr=0.1).step(model)
    >>> model.layers[0].params["W"].ravel().round(6)
    array([0.9, 1.1])
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0

    def _init_state(self, params):
        return [(np.zeros_like(p), np.zeros_like(p)) for p in params]

    def _update(self, params, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t  # bias corrections
        for p, g, (m, v) in zip(params, grads, self.state):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
