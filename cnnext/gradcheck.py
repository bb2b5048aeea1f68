"""Gradient check: central differences against a layer's or model's backward.

:func:`gradcheck` perturbs each checked entry of the input and of every
parameter by ``+eps`` and ``-eps``, takes the central difference of a scalar
objective, and compares it with the gradient the analytic backward pass
computed, tensor by tensor, with the assignment's relative error
``||analytic - numeric|| / (||analytic|| + ||numeric||)``.

Layers that behave differently in training (``training_aware``:
:class:`~cnnext.nn.BatchNorm2D`, :class:`~cnnext.nn.Dropout`) are checked in
training mode by default, the mode whose gradients train them, and made
deterministic: before every forward pass each layer's buffers (running
statistics) and random generator (:class:`~cnnext.nn.Dropout`'s ``rng``) are
put back as they were, so every pass sees the same dropout mask, and the
check leaves them as it found them.
"""
import inspect

import numpy as np

__all__ = ["gradcheck", "GradcheckResult"]

_DEFAULTS = {  # dtype -> (eps, tol)
    np.dtype(np.float64): (1e-6, 1e-6),
    np.dtype(np.float32): (1e-3, 1e-2),
}


class GradcheckResult:
    """Outcome of :func:`gradcheck`; true when every tensor passed.

    Attributes
    ----------
    errors : dict of str to float
        Relative error of each checked tensor (``"input"`` and the parameter
        names).
    max_error : float
        The largest of ``errors``.
    tol : float
        The tolerance the errors were held to.
    passed : bool
        ``max_error <= tol``.
    """

    def __init__(self, errors, tol, eps, n_checked):
        self.errors = dict(errors)
        self.tol = tol
        self.eps = eps
        self.n_checked = dict(n_checked)
        self.max_error = max(self.errors.values(), default=0.0)
        self.passed = bool(self.max_error <= tol)

    def __bool__(self):
        return self.passed

    def __repr__(self):
        lines = [f"gradcheck {'passed' if self.passed else 'FAILED'}: max relative "
                 f"error {self.max_error:.3e} (tol {self.tol:.1e}, eps {self.eps:.1e})"]
        for name, err in self.errors.items():
            flag = "" if err <= self.tol else "  <-- FAIL"
            lines.append(f"  {name:30s} {err:.3e}  ({self.n_checked[name]} entries){flag}")
        return "\n".join(lines)


def _parameters(obj):
    """(name, array) pairs and the matching gradient getter of a layer or model."""
    if hasattr(obj, "parameters"):  # Sequential
        return obj.parameters(), obj.gradients
    names = list(obj.params)
    return ([(k, obj.params[k]) for k in names],
            lambda: [obj.grads[k] for k in names])


def _takes_training(forward):
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)


def _forward(obj, X, training):
    # A subclass whose forward(X) predates the argument is called as before.
    if getattr(obj, "training_aware", False) and _takes_training(obj.forward):
        return obj.forward(X, training=training)
    return obj.forward(X)


def _rewinder(obj):
    """A function that puts the buffers and random generators of the layers
    of ``obj`` (a model, or a layer) back as they are now."""
    saved = []
    for layer in getattr(obj, "layers", [obj]):
        buffers = {k: np.array(v, copy=True) for k, v in getattr(layer, "buffers", {}).items()}
        rng = getattr(layer, "rng", None)
        state = rng.bit_generator.state if isinstance(rng, np.random.Generator) else None
        saved.append((layer, buffers, state))

    def rewind():
        for layer, buffers, state in saved:
            for k, v in buffers.items():
                layer.buffers[k][...] = v
            if state is not None:
                layer.rng.bit_generator.state = state
    return rewind


def _rel_error(analytic, numeric):
    analytic = np.asarray(analytic, dtype=np.float64).ravel()
    numeric = np.asarray(numeric, dtype=np.float64).ravel()
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    if denom == 0:
        return 0.0
    return float(np.linalg.norm(analytic - numeric) / denom)


def gradcheck(obj, X, y=None, *, eps=None, tol=None, max_checks=None, seed=0,
              check_input=True, training=True):
    """Compare the analytic gradients of a layer or model with central differences.

    Parameters
    ----------
    obj : cnnext.nn.Layer or cnnext.nn.Sequential
        Anything with ``forward(X)`` and ``backward(dout)``, and either
        ``params``/``grads`` dicts (a layer) or ``parameters()``/
        ``gradients()`` (a model). A layer must be built; a model is built
        from ``X`` if it is not yet.
    X : array_like
        A batch of inputs, in the shape ``obj`` expects.
    y : array_like of int, optional
        Labels. Given, the objective is the softmax cross-entropy of the
        outputs (the logits) against ``y``. Otherwise it is
        ``sum(out * R)`` for a fixed random ``R`` of the output's shape, so
        that every output entry is checked.
    eps : float, optional
        Perturbation size. Default 1e-6 in float64, 1e-3 in float32.
    tol : float, optional
        Largest relative error that passes. Default 1e-6 in float64, 1e-2
        in float32. Check in float64 for a meaningful answer.
    max_checks : int, optional
        Check at most this many entries of each tensor, drawn at random
        (seeded); all entries by default.
    seed : int, default 0
        Seed of ``R`` and of the sampled entries.
    check_input : bool, default True
        Also check the gradient with respect to ``X``.
    training : bool, default True
        The mode of the forward passes, for an ``obj`` with
        ``training_aware`` (a Sequential, BatchNorm2D, Dropout; other layers
        have one mode): True checks :class:`~cnnext.nn.BatchNorm2D` through
        its batch statistics and :class:`~cnnext.nn.Dropout` with one fixed
        mask; False checks the inference mode.

    Returns
    -------
    result : GradcheckResult
        True when all tensors passed; ``result.errors`` holds the relative
        error of each tensor, and ``print(result)`` a table.

    Notes
    -----
    Central differences are wrong at kinks (ReLU at 0, ties in max
    pooling): keep the inputs away from them, as random float64 data does
    with high probability. The parameters are restored exactly after each
    perturbation; the buffers and random generators of the layers before
    each forward pass and at the end.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnext import nn
    >>> from cnnext.gradcheck import gradcheck
    >>> conv = nn.Conv2D(2, 3, pad=1).build((4, 4, 2), rng=0, dtype="float64")
    >>> X = np.random.default_rng(1).standard_normal((2, 4, 4, 2))
    >>> bool(gradcheck(conv, X))
    True
    """
    from .nn import SoftmaxCrossEntropy  # gradcheck itself works on any object

    dtype = getattr(obj, "dtype", None)
    X = np.array(X, dtype=dtype if dtype is not None else np.float64)
    if dtype is None:
        dtype = X.dtype
    dtype = np.dtype(dtype)
    d_eps, d_tol = _DEFAULTS.get(dtype, _DEFAULTS[np.dtype(np.float64)])
    eps = d_eps if eps is None else float(eps)
    tol = d_tol if tol is None else float(tol)
    rng = np.random.default_rng(seed)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False; got "
                        f"{type(training).__name__} {training!r}")
    if getattr(obj, "built", True) is False and hasattr(obj, "layers"):
        obj.build(X.shape[1:])  # a model: build it now, so its layers' state is rewound
    rewind = _rewinder(obj)

    def forward(Xp):
        rewind()  # the same dropout masks and running statistics every time
        return _forward(obj, Xp, bool(training))

    # Analytic gradients.
    out = forward(X)
    if y is not None:
        loss = SoftmaxCrossEntropy()
        loss.forward(out, y)
        dout = loss.backward()

        def objective(Xp):
            return float(loss.forward(forward(Xp), y))
    else:
        R = rng.standard_normal(out.shape).astype(out.dtype)
        dout = R

        def objective(Xp):
            return float(np.sum(np.asarray(forward(Xp), np.float64) * R))

    dX = obj.backward(dout)
    params, get_grads = _parameters(obj)
    analytic = [("input", X, dX)] if check_input else []
    analytic += [(name, p, np.array(g, copy=True))
                 for (name, p), g in zip(params, get_grads())]

    errors, counts = {}, {}
    for name, target, grad in analytic:
        if grad.shape != target.shape:
            raise ValueError(f"the gradient of {name} has shape {grad.shape} but "
                             f"{name} has shape {target.shape}")
        flat = target.reshape(-1)  # a view: perturbs ``target`` in place
        if not np.shares_memory(flat, target):
            raise ValueError(f"{name} is not contiguous; cannot perturb it in place")
        idx = np.arange(flat.size)
        if max_checks is not None and flat.size > max_checks:
            idx = np.sort(rng.choice(flat.size, size=max_checks, replace=False))
        numeric = np.empty(idx.size)
        for j, k in enumerate(idx):
            orig = flat[k]
            flat[k] = orig + eps
            hi = float(flat[k])  # the step actually taken, after rounding
            plus = objective(X)
            flat[k] = orig - eps
            lo = float(flat[k])
            minus = objective(X)
            flat[k] = orig
            numeric[j] = (plus - minus) / (hi - lo)
        errors[name] = _rel_error(grad.reshape(-1)[idx], numeric)
        counts[name] = int(idx.size)
    # Leave the caches as the unperturbed forward left them, and the buffers
    # and generators as they were before the check.
    forward(X)
    rewind()
    return GradcheckResult(errors, tol, eps, counts)
