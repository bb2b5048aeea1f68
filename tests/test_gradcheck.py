"""cnnext.gradcheck: every layer type and a whole model pass in float64, and
the check catches a wrong backward."""
import numpy as np
import pytest

from cnnext import nn
from cnnext.gradcheck import GradcheckResult, gradcheck


def _layer_cases():
    return [
        ("conv s1 p0", nn.Conv2D(3, 3), (5, 5, 2)),
        ("conv s1 p1", nn.Conv2D(2, 3, pad=1), (4, 5, 3)),
        ("conv s2 p1", nn.Conv2D(3, 3, stride=2, pad=1), (6, 6, 2)),
        ("conv f1", nn.Conv2D(4, 1), (3, 3, 2)),
        ("conv f2 s3 p2", nn.Conv2D(2, 2, stride=3, pad=2), (5, 4, 1)),
        ("relu", nn.ReLU(), (4, 4, 2)),
        ("maxpool 2/2", nn.MaxPool2D(2), (4, 4, 3)),
        ("maxpool 3/1", nn.MaxPool2D(3, stride=1), (5, 5, 2)),
        ("avgpool 2/2", nn.AvgPool2D(2), (4, 6, 2)),
        ("avgpool 3/2", nn.AvgPool2D(3, stride=2), (7, 7, 2)),
        ("flatten", nn.Flatten(), (3, 2, 2)),
        ("dense", nn.Dense(4), (7,)),
    ]


@pytest.mark.parametrize("name,layer,shape", _layer_cases(), ids=[c[0] for c in _layer_cases()])
def test_every_layer_passes_in_float64(name, layer, shape):
    layer.build(shape, rng=0, dtype="float64")
    for k in layer.params:  # non-zero biases, so their gradients matter too
        layer.params[k][...] = np.random.default_rng(9).standard_normal(layer.params[k].shape)
    X = np.random.default_rng(1).standard_normal((3,) + shape)
    if isinstance(layer, nn.ReLU):  # keep away from the kink at 0
        X += np.sign(X) * 0.1
    result = gradcheck(layer, X)
    assert isinstance(result, GradcheckResult)
    assert result.passed, repr(result)
    expected = {"input"} | set(layer.params)
    assert set(result.errors) == expected
    assert result.max_error < 1e-7
    assert result.n_checked["input"] == X.size


def _model():
    return nn.Sequential([
        nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(3, 2, stride=1, pad=1), nn.ReLU(), nn.AvgPool2D(2, stride=1),
        nn.Flatten(), nn.Dense(3),
    ], input_shape=(6, 6, 2), dtype="float64", seed=2)


def test_whole_model_with_softmax_cross_entropy():
    model = _model()
    X = np.random.default_rng(3).standard_normal((4, 6, 6, 2))
    result = gradcheck(model, X, y=np.array([0, 2, 1, 2]))
    assert result.passed, repr(result)
    n_params = sum(1 for _ in model.parameters())
    assert len(result.errors) == n_params + 1
    assert result.max_error < 1e-7


def test_whole_model_without_labels_and_sampled_entries():
    model = _model()
    X = np.random.default_rng(4).standard_normal((2, 6, 6, 2))
    result = gradcheck(model, X, max_checks=10, check_input=False)
    assert result.passed, repr(result)
    assert "input" not in result.errors
    assert all(n == min(10, p.size) for n, (_, p) in
               zip(result.n_checked.values(), model.parameters()))


class _WrongDense(nn.Dense):
    """A Dense layer whose weight gradient is off by a factor of 2."""

    def backward(self, dout):
        dX = super().backward(dout)
        self.grads["W"] = 2 * self.grads["W"]
        return dX


def test_detects_a_wrong_backward():
    layer = _WrongDense(3).build((4,), rng=0, dtype="float64")
    X = np.random.default_rng(0).standard_normal((5, 4))
    result = gradcheck(layer, X)
    assert not result.passed and not bool(result)
    # ||2g - g|| / (||2g|| + ||g||) = 1/3 for the weights; the rest is right.
    assert result.errors["W"] == pytest.approx(1 / 3, rel=1e-6)
    assert result.errors["input"] < 1e-7 and result.errors["b"] < 1e-7
    assert "FAIL" in repr(result)


def test_detects_a_wrong_input_gradient():
    class WrongReLU(nn.ReLU):
        def backward(self, dout):
            return dout  # forgets the mask

    layer = WrongReLU().build((3, 3, 1), dtype="float64")
    X = np.random.default_rng(0).standard_normal((2, 3, 3, 1))
    X += np.sign(X) * 0.1
    assert gradcheck(layer, X).errors["input"] > 0.1


def test_parameters_and_input_are_restored_exactly():
    model = _model()
    before = [p.copy() for _, p in model.parameters()]
    X = np.random.default_rng(5).standard_normal((2, 6, 6, 2))
    X0 = X.copy()
    gradcheck(model, X, y=np.array([1, 0]))
    for b, (_, p) in zip(before, model.parameters()):
        np.testing.assert_array_equal(p, b)
    np.testing.assert_array_equal(X, X0)


def test_float32_model_uses_looser_defaults():
    model = nn.Sequential([nn.Conv2D(2, 3, pad=1), nn.ReLU(), nn.Flatten(), nn.Dense(3)],
                          input_shape=(4, 4, 1), seed=0)
    X = np.random.default_rng(6).standard_normal((3, 4, 4, 1))
    result = gradcheck(model, X, y=np.array([0, 1, 2]))
    assert (result.eps, result.tol) == (1e-3, 1e-2)
    assert result.passed, repr(result)


def test_exposed_as_cnnext_gradcheck():
    """``cnnext.gradcheck`` is the function (needs ``from .gradcheck import
    gradcheck`` in cnnext/__init__.py)."""
    import cnnext
    assert cnnext.gradcheck is gradcheck
    assert "gradcheck" in cnnext.__all__
