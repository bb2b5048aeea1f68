"""cnnext.nn's GlobalAvgPool2D, BatchNorm2D, Dropout, relu and softmax, and
the training flag: against plain numpy references written here (and PyTorch
when installed), gradient-checked, saved and loaded."""
import json
import warnings

import numpy as np
import pytest

from cnnext import nn
from cnnext._dask import _stateless_copy
from cnnext.gradcheck import gradcheck

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- numpy references -----------------------------------------------------

def ref_batchnorm_train(X, gamma, beta, running_mean, running_var, momentum, eps):
    """Training-mode batch norm of an NHWC batch, in float64, the textbook way.

    Returns (out, new running mean, new running var, backward) where
    ``backward(dout)`` gives (dX, dgamma, dbeta) by the staged chain rule
    through mean and variance (not the layer's compact formula)."""
    X = np.asarray(X, np.float64)
    N = X.shape[0] * X.shape[1] * X.shape[2]
    mu = X.sum(axis=(0, 1, 2)) / N
    xc = X - mu
    var = (xc ** 2).sum(axis=(0, 1, 2)) / N                      # biased
    std = np.sqrt(var + eps)
    x_hat = xc / std
    out = gamma * x_hat + beta
    new_mean = (1 - momentum) * running_mean + momentum * mu
    new_var = (1 - momentum) * running_var + momentum * var * N / (N - 1)  # unbiased

    def backward(dout):
        dout = np.asarray(dout, np.float64)
        dgamma = (dout * x_hat).sum(axis=(0, 1, 2))
        dbeta = dout.sum(axis=(0, 1, 2))
        dx_hat = dout * gamma
        dvar = (dx_hat * xc * -0.5 * (var + eps) ** -1.5).sum(axis=(0, 1, 2))
        dmu = (-dx_hat / std).sum(axis=(0, 1, 2)) + dvar * (-2 * xc).sum(axis=(0, 1, 2)) / N
        dX = dx_hat / std + dvar * 2 * xc / N + dmu / N
        return dX, dgamma, dbeta
    return out, new_mean, new_var, backward


def ref_batchnorm_eval(X, gamma, beta, running_mean, running_var, eps):
    return gamma * (np.asarray(X, np.float64) - running_mean) / np.sqrt(running_var + eps) + beta


def _bn(shape=(4, 5, 3), dtype="float64", seed=0, **kwargs):
    """A built BatchNorm2D with non-trivial gamma and beta."""
    bn = nn.BatchNorm2D(**kwargs).build(shape, dtype=dtype)
    rng = _rng(seed)
    bn.params["gamma"][...] = rng.uniform(0.5, 2.0, shape[-1])
    bn.params["beta"][...] = rng.standard_normal(shape[-1])
    return bn


# ---- GlobalAvgPool2D ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (2, 1, 7, 3), (1, 6, 6, 1)])
def test_global_avg_pool_matches_numpy_mean(dtype, shape):
    X = _rng(1).standard_normal(shape).astype(dtype)
    layer = nn.GlobalAvgPool2D().build(shape[1:], dtype=dtype)
    assert layer.output_shape == (shape[3],)
    out = layer.forward(X)
    assert out.dtype == dtype and out.shape == (shape[0], shape[3])
    np.testing.assert_allclose(out, X.astype(np.float64).mean(axis=(1, 2)), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool_backward_spreads_evenly(dtype):
    m, H, W, C = 3, 4, 5, 2
    layer = nn.GlobalAvgPool2D().build((H, W, C), dtype=dtype)
    layer.forward(np.zeros((m, H, W, C)))
    dA = _rng(2).standard_normal((m, C))
    dX = layer.backward(dA)
    assert dX.dtype == dtype and dX.shape == (m, H, W, C)
    expected = np.broadcast_to(dA[:, None, None, :] / (H * W), (m, H, W, C))
    np.testing.assert_allclose(dX, expected, **TOL[dtype])
    dX[0, 0, 0, 0] = 123.0  # a writable array of its own, not a broadcast view
    assert dX[0, 1, 1, 0] != 123.0


def test_global_avg_pool_gradcheck_and_in_a_model():
    layer = nn.GlobalAvgPool2D().build((3, 5, 2), dtype="float64")
    result = gradcheck(layer, _rng(3).standard_normal((2, 3, 5, 2)))
    assert result.passed and result.max_error < 1e-8, repr(result)
    model = nn.Sequential([nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.GlobalAvgPool2D(),
                           nn.Dense(3)], input_shape=(5, 4, 2), dtype="float64", seed=1)
    result = gradcheck(model, _rng(4).standard_normal((3, 5, 4, 2)), y=np.array([0, 2, 1]))
    assert result.passed and result.max_error < 1e-7, repr(result)


def test_global_avg_pool_needs_images():
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D needs inputs of shape "
                                         r"\(n_H, n_W, n_C\); got \(12,\)"):
        nn.Sequential([nn.Flatten(), nn.GlobalAvgPool2D()], input_shape=(2, 2, 3))


# ---- BatchNorm2D --------------------------------------------------------------

def test_batchnorm_defaults_are_pytorchs():
    bn = nn.BatchNorm2D()
    assert (bn.momentum, bn.eps) == (0.1, 1e-5)
    assert bn.training_aware
    bn.build((2, 2, 3), dtype="float64")
    np.testing.assert_array_equal(bn.params["gamma"], np.ones(3))
    np.testing.assert_array_equal(bn.params["beta"], np.zeros(3))
    np.testing.assert_array_equal(bn.buffers["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(bn.buffers["running_var"], np.ones(3))
    assert set(bn.grads) == {"gamma", "beta"}


@pytest.mark.parametrize("momentum,eps", [(0.1, 1e-5), (0.3, 1e-3), (1.0, 1e-5), (0.0, 0.5)])
def test_batchnorm_training_matches_numpy_reference(momentum, eps):
    bn = _bn(momentum=momentum, eps=eps)
    rm, rv = bn.buffers["running_mean"].copy(), bn.buffers["running_var"].copy()
    for step in range(3):  # several steps: the running statistics accumulate
        X = 2.0 + 3.0 * _rng(10 + step).standard_normal((6, 4, 5, 3))
        out = bn.forward(X, training=True)
        ref_out, rm, rv, ref_backward = ref_batchnorm_train(
            X, bn.params["gamma"], bn.params["beta"], rm, rv, momentum, eps)
        np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.buffers["running_mean"], rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(bn.buffers["running_var"], rv, rtol=1e-12, atol=1e-14)
        dout = _rng(20 + step).standard_normal(out.shape)
        dX = bn.backward(dout)
        ref_dX, ref_dgamma, ref_dbeta = ref_backward(dout)
        np.testing.assert_allclose(dX, ref_dX, rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(bn.grads["gamma"], ref_dgamma, rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(bn.grads["beta"], ref_dbeta, rtol=1e-10, atol=1e-11)
    # The output of a training forward is normalised per channel.
    np.testing.assert_allclose(((out - bn.params["beta"]) / bn.params["gamma"]).mean(axis=(0, 1, 2)),
                               0, atol=1e-12)


def test_batchnorm_inference_matches_numpy_reference():
    bn = _bn()
    bn.buffers["running_mean"][...] = [0.5, -1.0, 2.0]
    bn.buffers["running_var"][...] = [0.25, 4.0, 1.5]
    X = _rng(5).standard_normal((4, 4, 5, 3))
    out = bn.forward(X)  # the default is inference
    expected = ref_batchnorm_eval(X, bn.params["gamma"], bn.params["beta"],
                                  bn.buffers["running_mean"], bn.buffers["running_var"], 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(bn.buffers["running_mean"], [0.5, -1.0, 2.0])  # untouched
    dout = _rng(6).standard_normal(out.shape)
    dX = bn.backward(dout)
    np.testing.assert_allclose(dX, dout * bn.params["gamma"] / np.sqrt(bn.buffers["running_var"] + 1e-5),
                               rtol=1e-12)
    x_hat = (X - bn.buffers["running_mean"]) / np.sqrt(bn.buffers["running_var"] + 1e-5)
    np.testing.assert_allclose(bn.grads["gamma"], (dout * x_hat).sum(axis=(0, 1, 2)), rtol=1e-11)
    np.testing.assert_allclose(bn.grads["beta"], dout.sum(axis=(0, 1, 2)), rtol=1e-11)


def test_batchnorm_float32_stays_float32_and_close_to_float64():
    X = 3.0 + _rng(7).standard_normal((8, 5, 5, 4))
    bn32, bn64 = nn.BatchNorm2D().build((5, 5, 4), dtype="float32"), nn.BatchNorm2D().build(
        (5, 5, 4), dtype="float64")
    out32, out64 = bn32.forward(X, training=True), bn64.forward(X, training=True)
    assert out32.dtype == np.float32
    assert all(v.dtype == np.float32 for v in (*bn32.params.values(), *bn32.buffers.values()))
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = _rng(8).standard_normal(out32.shape)
    assert bn32.backward(dout).dtype == np.float32
    assert bn32.grads["gamma"].dtype == np.float32
    np.testing.assert_allclose(bn32.buffers["running_var"], bn64.buffers["running_var"], rtol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck_layer(training):
    bn = _bn((3, 4, 2))
    bn.buffers["running_mean"][...] = [0.3, -0.2]
    bn.buffers["running_var"][...] = [0.7, 1.9]
    X = 1.5 + _rng(9).standard_normal((3, 3, 4, 2))
    before = {k: v.copy() for k, v in bn.buffers.items()}
    result = gradcheck(bn, X, training=training)
    assert result.passed and result.max_error < 1e-7, repr(result)
    assert set(result.errors) == {"input", "gamma", "beta"}
    # The check leaves the running statistics as it found them.
    for k, v in before.items():
        np.testing.assert_array_equal(bn.buffers[k], v)


def test_batchnorm_gradcheck_in_a_model_goes_through_the_batch_statistics():
    model = nn.Sequential([nn.Conv2D(3, 3, pad=1), nn.BatchNorm2D(), nn.ReLU(),
                           nn.GlobalAvgPool2D(), nn.Dense(3)],
                          input_shape=(5, 5, 2), dtype="float64", seed=3)
    model.layers[1].params["beta"][...] = [0.2, -0.1, 0.3]  # away from ReLU's kink
    X = _rng(10).standard_normal((4, 5, 5, 2))
    y = np.array([0, 1, 2, 0])
    result = gradcheck(model, X, y=y)
    errors = dict(result.errors)
    # The conv bias right before a training-mode batch norm has no effect on
    # the output (the batch mean removes it): its gradient is zero, both
    # ways, which a relative error cannot judge.
    errors.pop("0.Conv2D.b")
    logits = model.forward(X, training=True)
    model.loss.forward(logits, y)
    model.backward(model.loss.backward())
    assert np.abs(model.layers[0].grads["b"]).max() < 1e-12
    assert max(errors.values()) < 1e-7, repr(result)
    # Through the batch statistics, a gradient that is constant per channel
    # gives no input gradient (shifting a channel does not change its
    # normalised values); through constant statistics it would be
    # gamma / sqrt(var + eps).
    bn = model.layers[1]
    np.testing.assert_allclose(bn.backward(np.ones((4, 5, 5, 3))), 0, atol=1e-12)


def test_batchnorm_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]; got 1.5"):
        nn.BatchNorm2D(momentum=1.5)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]; got nan"):
        nn.BatchNorm2D(momentum=float("nan"))
    with pytest.raises(TypeError, match="momentum must be a real number; got str '0.1'"):
        nn.BatchNorm2D(momentum="0.1")
    with pytest.raises(ValueError, match="eps must be > 0; got 0.0"):
        nn.BatchNorm2D(eps=0)
    with pytest.raises(TypeError, match="eps must be a real number; got bool True"):
        nn.BatchNorm2D(eps=True)
    with pytest.raises(ValueError, match=r"BatchNorm2D needs inputs of shape \(n_H, n_W, n_C\); "
                                         r"got \(5,\)"):
        nn.BatchNorm2D().build((5,))
    bn = nn.BatchNorm2D().build((1, 1, 3), dtype="float64")
    with pytest.raises(ValueError, match=r"more than one value per channel in training.*"
                                         r"got a batch of shape \(1, 1, 1, 3\)"):
        bn.forward(np.zeros((1, 1, 1, 3)), training=True)
    assert bn.forward(np.zeros((1, 1, 1, 3))).shape == (1, 1, 1, 3)  # inference is fine
    with pytest.raises(TypeError, match="training must be True or False; got str 'False'"):
        bn.forward(np.zeros((2, 1, 1, 3)), training="False")
    with pytest.raises(ValueError, match=r"BatchNorm2D expects inputs of shape \(m, 1, 1, 3\)"):
        bn.forward(np.zeros((2, 1, 1, 4)))


def _torch_bn(torch, bn):
    tbn = torch.nn.BatchNorm2d(bn.params["gamma"].size, momentum=bn.momentum, eps=bn.eps,
                               dtype=torch.float64)
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(bn.params["gamma"].astype(np.float64)))
        tbn.bias.copy_(torch.from_numpy(bn.params["beta"].astype(np.float64)))
    return tbn


@pytest.mark.parametrize("momentum,eps", [(0.1, 1e-5), (0.25, 1e-3)])
def test_batchnorm_matches_pytorch_in_train_and_eval_mode(momentum, eps):
    torch = pytest.importorskip("torch")
    bn = _bn((4, 3, 5), momentum=momentum, eps=eps)
    tbn = _torch_bn(torch, bn)
    tbn.train()
    nchw = lambda a: torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), requires_grad=True)
    for step in range(4):
        X = -1.0 + 2.5 * _rng(30 + step).standard_normal((6, 4, 3, 5))
        dout = _rng(40 + step).standard_normal((6, 4, 3, 5))
        out = bn.forward(X, training=True)
        dX = bn.backward(dout)
        Xt = nchw(X)
        tbn.zero_grad()
        out_t = tbn(Xt)
        out_t.backward(torch.from_numpy(np.ascontiguousarray(dout.transpose(0, 3, 1, 2))))
        np.testing.assert_allclose(out, out_t.detach().numpy().transpose(0, 2, 3, 1),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.buffers["running_mean"], tbn.running_mean.numpy(),
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(bn.buffers["running_var"], tbn.running_var.numpy(),
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dX, Xt.grad.numpy().transpose(0, 2, 3, 1),
                                   rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(bn.grads["gamma"], tbn.weight.grad.numpy(), rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(bn.grads["beta"], tbn.bias.grad.numpy(), rtol=1e-10, atol=1e-11)
    assert int(tbn.num_batches_tracked) == 4

    tbn.eval()
    X = _rng(50).standard_normal((3, 4, 3, 5))
    dout = _rng(51).standard_normal((3, 4, 3, 5))
    out = bn.forward(X)
    dX = bn.backward(dout)
    Xt = nchw(X)
    tbn.zero_grad()
    out_t = tbn(Xt)
    out_t.backward(torch.from_numpy(np.ascontiguousarray(dout.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(out, out_t.detach().numpy().transpose(0, 2, 3, 1),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dX, Xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.grads["gamma"], tbn.weight.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(bn.grads["beta"], tbn.bias.grad.numpy(), rtol=1e-10, atol=1e-11)


def test_batchnorm_float32_matches_pytorch_float32():
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm2D().build((3, 3, 2), dtype="float32")
    tbn = torch.nn.BatchNorm2d(2)  # float32, PyTorch's defaults
    X = (5.0 + _rng(60).standard_normal((5, 3, 3, 2))).astype(np.float32)
    out = bn.forward(X, training=True)
    out_t = tbn(torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(out, out_t.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], tbn.running_var.numpy(), rtol=1e-5)


# ---- Dropout ---------------------------------------------------------------------

def test_dropout_is_seeded_run_to_run():
    X = np.ones((4, 50))
    a = nn.Dropout(0.5, seed=123).build((50,), dtype="float64")
    b = nn.Dropout(0.5, seed=123).build((50,), dtype="float64")
    c = nn.Dropout(0.5, seed=124).build((50,), dtype="float64")
    masks_a = [a.forward(X, training=True) for _ in range(3)]
    masks_b = [b.forward(X, training=True) for _ in range(3)]
    for ma, mb in zip(masks_a, masks_b):
        np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(masks_a[0], masks_a[1])  # a fresh mask each call
    assert not np.array_equal(masks_a[0], c.forward(X, training=True))
    # Rebuilding restarts the sequence from the seed.
    a.build((50,), dtype="float64")
    np.testing.assert_array_equal(a.forward(X, training=True), masks_a[0])


def test_dropout_without_seed_follows_the_models_seed_and_leaves_weights_alone():
    def model(seed, dropout=True):
        layers = [nn.Flatten(), nn.Dense(8)] + ([nn.Dropout(0.5)] if dropout else []) + [nn.Dense(3)]
        return nn.Sequential(layers, input_shape=(2, 2, 1), dtype="float64", seed=seed)
    X = _rng(0).standard_normal((5, 2, 2, 1))
    a, b, c = model(1), model(1), model(2)
    for step in range(3):
        out_a = a.forward(X, training=True)
        np.testing.assert_array_equal(out_a, b.forward(X, training=True))
    np.testing.assert_array_equal(a.layers[2].cache, b.layers[2].cache)
    c.layers[2].forward(np.ones((5, 8)), training=True)
    assert not np.array_equal(c.layers[2].cache, a.layers[2].cache)
    # The mask generator is spawned, not drawn from the weights' generator:
    # the last Dense gets the same weights with or without the Dropout.
    np.testing.assert_array_equal(model(1).layers[3].params["W"],
                                  model(1, dropout=False).layers[2].params["W"])


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_scales_to_keep_the_mean_and_drops_about_rate(rate):
    layer = nn.Dropout(rate, seed=7).build((1000, 1000), dtype="float64")
    X = np.ones((1, 1000, 1000))
    out = layer.forward(X, training=True)
    values = np.unique(out)
    np.testing.assert_allclose(values, [0.0, 1.0 / (1.0 - rate)], rtol=1e-15)
    n = out.size
    # A binomial count: its standard deviation is sqrt(rate (1 - rate) / n) < 5e-4.
    assert abs(np.mean(out == 0) - rate) < 5e-3
    assert abs(out.mean() - 1.0) < 5e-3 / (1 - rate)
    # Inverted dropout keeps any input's mean in expectation.
    Z = _rng(3).uniform(1, 3, size=(1, 1000, 1000))
    assert layer.forward(Z, training=True).mean() == pytest.approx(Z.mean(), rel=1e-2)
    assert n == 10 ** 6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_is_the_identity_at_inference(dtype):
    layer = nn.Dropout(0.6, seed=0).build((3, 4, 2), dtype=dtype)
    X = _rng(1).standard_normal((5, 3, 4, 2)).astype(dtype)
    state = layer.rng.bit_generator.state
    out = layer.forward(X)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, X)
    assert layer.cache is None
    dout = _rng(2).standard_normal(X.shape).astype(dtype)
    np.testing.assert_array_equal(layer.backward(dout), dout)
    assert layer.rng.bit_generator.state == state  # no mask drawn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_backward_applies_the_forward_mask(dtype):
    layer = nn.Dropout(0.3, seed=5).build((6, 6, 2), dtype=dtype)
    X = _rng(3).standard_normal((4, 6, 6, 2)).astype(dtype)
    out = layer.forward(X, training=True)
    assert out.dtype == dtype
    kept = out != 0
    np.testing.assert_allclose(out[kept], X[kept] / dtype(0.7), rtol=1e-6)
    dout = _rng(4).standard_normal(X.shape).astype(dtype)
    dX = layer.backward(dout)
    assert dX.dtype == dtype
    np.testing.assert_array_equal(dX[~kept], 0)
    np.testing.assert_allclose(dX[kept], dout[kept] / dtype(0.7), rtol=1e-6)


def test_dropout_rate_zero_is_the_identity_in_training_too():
    layer = nn.Dropout(0.0, seed=0).build((5,), dtype="float64")
    X = _rng(0).standard_normal((3, 5))
    np.testing.assert_array_equal(layer.forward(X, training=True), X)


def test_dropout_gradcheck_uses_one_fixed_mask():
    layer = nn.Dropout(0.5, seed=2).build((4, 4, 3), dtype="float64")
    X = _rng(5).standard_normal((3, 4, 4, 3))
    state = layer.rng.bit_generator.state
    result = gradcheck(layer, X)
    assert result.passed and result.max_error < 1e-8, repr(result)
    assert layer.rng.bit_generator.state == state  # left as it was found
    assert 0 < np.mean(layer.cache == 0) < 1        # a real mask was checked
    assert gradcheck(layer, X, training=False).passed

    model = nn.Sequential([nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.Dropout(0.4),
                           nn.Flatten(), nn.Dense(3)], input_shape=(5, 5, 2),
                          dtype="float64", seed=4)
    result = gradcheck(model, _rng(6).standard_normal((3, 5, 5, 2)), y=np.array([2, 0, 1]))
    assert result.passed and result.max_error < 1e-7, repr(result)


def test_gradcheck_builds_an_unbuilt_model_before_saving_its_state():
    model = nn.Sequential([nn.Flatten(), nn.Dropout(0.5), nn.Dense(3)], dtype="float64")
    result = gradcheck(model, _rng(7).standard_normal((4, 3, 3, 1)), y=np.array([0, 1, 2, 0]))
    assert model.built
    assert result.passed, repr(result)


def test_gradcheck_catches_a_wrong_batchnorm_backward():
    class InferenceBackward(nn.BatchNorm2D):
        """The gradient of training mode computed as if the batch statistics
        were constants: the classic batch-norm mistake."""

        def backward(self, dout):
            x_hat, inv_std, _ = self.cache
            self.cache = (x_hat, inv_std, False)
            return super().backward(dout)
    bn = InferenceBackward().build((3, 3, 2), dtype="float64")
    result = gradcheck(bn, _rng(8).standard_normal((2, 3, 3, 2)))
    assert not result.passed
    assert result.errors["input"] > 1e-3
    assert result.errors["gamma"] < 1e-7


def test_dropout_rejects_bad_arguments():
    for rate in (1, 1.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"rate must be in \[0, 1\); got"):
            nn.Dropout(rate)
    with pytest.raises(TypeError, match="rate must be a real number; got str '0.5'"):
        nn.Dropout("0.5")
    with pytest.raises(TypeError, match="rate must be a real number; got NoneType"):
        nn.Dropout(None)
    with pytest.raises(ValueError, match="seed must be >= 0; got -1"):
        nn.Dropout(0.5, seed=-1)
    with pytest.raises(TypeError, match="seed must be an integer; got float 1.5"):
        nn.Dropout(0.5, seed=1.5)
    layer = nn.Dropout(0.5).build((3,))
    with pytest.raises(TypeError, match="training must be True or False; got int 1"):
        layer.forward(np.zeros((2, 3)), training=1)
    with pytest.raises(RuntimeError, match="Dropout is not built"):
        nn.Dropout(0.5).forward(np.zeros((2, 3)))


# ---- relu and softmax -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_relu_function(dtype):
    x = np.array([[-3, -1, 0, 2], [5, -7, 1, 0]], dtype=dtype)
    out = nn.relu(x)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0))
    np.testing.assert_array_equal(nn.relu([-1.5, 2.5]), [0.0, 2.5])  # any array_like
    assert np.isnan(nn.relu(np.array([np.nan]))[0])
    # The same values as the ReLU layer.
    layer = nn.ReLU().build((4,), dtype="float64")
    np.testing.assert_array_equal(nn.relu(x.astype(np.float64)), layer.forward(x))


def test_relu_and_softmax_refuse_non_real_input():
    for bad in (np.array([1 + 2j]), np.array([True, False]), np.array(["a"])):
        with pytest.raises(TypeError, match="x must hold real numbers; got dtype"):
            nn.relu(bad)
        with pytest.raises(TypeError, match="x must hold real numbers; got dtype"):
            nn.softmax(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -3])
def test_softmax_matches_the_plain_formula(dtype, axis):
    x = _rng(1).standard_normal((3, 4, 5)).astype(dtype)
    out = nn.softmax(x, axis=axis)
    assert out.dtype == dtype and out.shape == x.shape
    e = np.exp(x.astype(np.float64))
    expected = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    np.testing.assert_allclose(out.sum(axis=axis), 1, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_softmax_is_numerically_stable():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e308, -1e308, -1e308], [710.0, 710.0, 709.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value
        out = nn.softmax(x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], [1, 0, 0], atol=1e-300)
    np.testing.assert_allclose(out[1], [1 / 3] * 3)
    e = np.exp([0.0, 0.0, -1.0])
    np.testing.assert_allclose(out[2], e / e.sum())
    # Shifting the logits does not change the softmax.
    z = _rng(2).standard_normal((4, 6))
    np.testing.assert_allclose(nn.softmax(z + 500.0), nn.softmax(z), rtol=1e-12)
    # Integers give float64; a single vector works.
    np.testing.assert_allclose(nn.softmax([1, 1]), [0.5, 0.5])
    assert nn.softmax(np.array([1, 2])).dtype == np.float64
    assert nn.softmax(np.zeros((2, 0))).shape == (2, 0)


def test_softmax_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = 10 * _rng(3).standard_normal((4, 3, 6))
    for axis in (-1, 0, 1):
        np.testing.assert_allclose(nn.softmax(x, axis=axis),
                                   torch.softmax(torch.from_numpy(x), dim=axis).numpy(),
                                   rtol=1e-12, atol=1e-300)


def test_softmax_matches_the_models_probabilities():
    model = nn.Sequential([nn.Flatten(), nn.Dense(4)], input_shape=(3, 3, 1), dtype="float64")
    X = _rng(4).standard_normal((6, 3, 3, 1))
    np.testing.assert_allclose(nn.softmax(model.forward(X)), model.predict_proba(X), rtol=1e-14)


def test_softmax_rejects_a_bad_axis():
    with pytest.raises(ValueError, match=r"axis must be in -2..1 for x of shape \(2, 3\); got 2"):
        nn.softmax(np.zeros((2, 3)), axis=2)
    with pytest.raises(ValueError, match=r"axis must be in -2..1 for x of shape \(2, 3\); got -3"):
        nn.softmax(np.zeros((2, 3)), axis=-3)
    with pytest.raises(TypeError, match="axis must be an integer; got float 1.0"):
        nn.softmax(np.zeros((2, 3)), axis=1.0)
    with pytest.raises(ValueError, match="x must have at least one axis; got a 0-d array"):
        nn.softmax(3.0)


# ---- training vs inference ------------------------------------------------------------

class _Spy(nn.Layer):
    """An identity layer that records the training flag of each forward."""
    training_aware = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, X, training=False):
        self.seen.append(training)
        return self._check_input(X)

    def backward(self, dout):
        return dout


class _Plain(nn.Layer):
    """A subclass written against forward(X), without a training argument."""

    def forward(self, X):
        return 2 * self._check_input(X)

    def backward(self, dout):
        return 2 * dout


def test_train_step_trains_and_predict_evaluate_infer():
    spy = _Spy()
    model = nn.Sequential([spy, _Plain(), nn.Flatten(), nn.Dense(3)], input_shape=(2, 2, 1),
                          dtype="float64")
    X, y = _rng(0).standard_normal((4, 2, 2, 1)), np.array([0, 1, 2, 0])
    model.train_step(X, y, nn.SGD(0.1))
    assert spy.seen == [True]
    model.predict(X)
    model.predict_proba(X)
    model.evaluate(X, y)
    model.forward(X)
    assert spy.seen == [True, False, False, False, False]
    model.forward(X, training=True)
    assert spy.seen[-1] is True
    with pytest.raises(TypeError, match="training must be True or False; got str 'yes'"):
        model.forward(X, training="yes")
    assert gradcheck(model, X, y=y).passed and spy.seen[-1] is True
    gradcheck(model, X, y=y, training=False)
    assert spy.seen[-1] is False
    with pytest.raises(TypeError, match="training must be True or False; got NoneType"):
        gradcheck(model, X, training=None)


class _OldSequential(nn.Sequential):
    """A subclass whose forward predates the training argument."""
    calls = 0

    def forward(self, X):
        type(self).calls += 1
        return super().forward(X)


def test_a_sequential_subclass_without_the_training_argument_keeps_working():
    model = _OldSequential([nn.Flatten(), nn.Dense(3)], input_shape=(2, 2, 1), dtype="float64")
    X, y = _rng(0).standard_normal((4, 2, 2, 1)), np.array([0, 1, 2, 0])
    loss, _ = model.train_step(X, y, nn.SGD(0.1))
    model.predict(X)
    model.evaluate(X, y)
    assert _OldSequential.calls == 3 and np.isfinite(loss)
    assert gradcheck(model, X, y=y).passed
    # With a layer that needs the flag, train_step says what to change.
    bn_model = _OldSequential([nn.BatchNorm2D(), nn.Flatten(), nn.Dense(3)],
                              input_shape=(2, 2, 1), dtype="float64")
    with pytest.raises(TypeError, match=r"_OldSequential.forward takes no 'training' argument, "
                                        r"but BatchNorm2D\(momentum=0.1, eps=1e-05\) behave "
                                        r"differently in training; add training=False"):
        bn_model.train_step(X, y, nn.SGD(0.1))


def _bn_model(dtype="float64", seed=0):
    return nn.Sequential([nn.Conv2D(4, 3, pad=1), nn.BatchNorm2D(momentum=0.2), nn.ReLU(),
                          nn.Dropout(0.25, seed=11), nn.MaxPool2D(2), nn.Conv2D(3, 1),
                          nn.BatchNorm2D(), nn.GlobalAvgPool2D(), nn.Dense(3)],
                         input_shape=(6, 6, 2), dtype=dtype, seed=seed)


def _separable(n=60, seed=0):
    rng = _rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.normal(0, 0.3, size=(n, 6, 6, 2))
    for c in range(3):
        X[y == c, 2 * c:2 * c + 2, :, :] += 2.0
    return X, y


def test_training_updates_running_statistics_and_inference_uses_them():
    model = _bn_model()
    X, y = _separable()
    bn = model.layers[1]
    opt = nn.Adam(0.02)
    model.evaluate(X, y)
    np.testing.assert_array_equal(bn.buffers["running_mean"], 0)  # inference: untouched
    losses = [model.train_step(X, y, opt)[0] for _ in range(80)]
    assert losses[-1] < losses[0] / 5
    assert not np.allclose(bn.buffers["running_mean"], 0)
    assert all(np.abs(g).max() > 0 for g in (bn.grads["gamma"], bn.grads["beta"]))
    rm = bn.buffers["running_mean"].copy()
    # Inference is deterministic (no dropout) and normalises by the running
    # statistics, so a batch of one predicts as it does within a batch.
    proba = model.predict_proba(X)
    np.testing.assert_array_equal(model.predict_proba(X), proba)
    np.testing.assert_allclose(model.predict_proba(X[3:4]), proba[3:4], rtol=1e-12)
    np.testing.assert_array_equal(bn.buffers["running_mean"], rm)
    # The running statistics have caught up with the trained weights (they
    # lag behind them early on: inference accuracy trails training's).
    assert model.evaluate(X, y)[1] == 1.0


def test_the_optimizers_train_gamma_and_beta():
    model = _bn_model()
    names = [name for name, _ in model.parameters()]
    assert "1.BatchNorm2D.gamma" in names and "6.BatchNorm2D.beta" in names
    assert [name for name, _ in model.buffers()] == [
        "1.BatchNorm2D.running_mean", "1.BatchNorm2D.running_var",
        "6.BatchNorm2D.running_mean", "6.BatchNorm2D.running_var"]
    gamma = model.layers[1].params["gamma"]
    X, y = _separable(seed=1)
    before = gamma.copy()
    model.train_step(X, y, nn.SGD(0.1))
    assert model.layers[1].params["gamma"] is gamma  # updated in place
    np.testing.assert_allclose(gamma, before - 0.1 * model.layers[1].grads["gamma"], rtol=1e-12)


def test_a_stateless_copy_never_writes_into_the_models_running_statistics():
    model = _bn_model()
    clone = _stateless_copy(model)
    clone.forward(_separable()[0], training=True)
    np.testing.assert_array_equal(model.layers[1].buffers["running_mean"], 0)
    assert not np.allclose(clone.layers[1].buffers["running_mean"], 0)


# ---- save / load --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_roundtrip_with_batchnorm_and_dropout(tmp_path, dtype):
    model = _bn_model(dtype=dtype, seed=3)
    X, y = _separable(seed=2)
    opt = nn.Adam(0.01)
    for _ in range(5):
        model.train_step(X, y, opt)
    path = tmp_path / "bn.npz"
    model.save(path)
    loaded = nn.load(path)
    assert repr(loaded) == repr(model)
    assert "BatchNorm2D(momentum=0.2, eps=1e-05)" in repr(loaded)
    assert "Dropout(rate=0.25, seed=11)" in repr(loaded)
    for (na, a), (nb, b) in zip(model.buffers(), loaded.buffers()):
        assert na == nb
        assert b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(loaded.layers[1].buffers["running_var"], 1)  # trained statistics
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    # Same seed, same masks: one training step agrees too.
    model.layers[3].build(model.layers[3].input_shape, dtype=dtype)
    np.testing.assert_array_equal(loaded.forward(X, training=True), model.forward(X, training=True))
    with np.load(path, allow_pickle=False) as data:
        assert "buffer:1.BatchNorm2D.running_mean" in data.files
        assert "buffer:6.BatchNorm2D.running_var" in data.files
        config = json.loads(str(data["config"]))
    assert config["format"] == "cnnext.nn/1"
    assert config["layers"][1] == {"class": "BatchNorm2D", "config": {"momentum": 0.2, "eps": 1e-5}}
    assert config["layers"][3] == {"class": "Dropout", "config": {"rate": 0.25, "seed": 11}}
    assert config["layers"][7] == {"class": "GlobalAvgPool2D", "config": {}}


def test_load_weights_copies_the_running_statistics(tmp_path):
    a, b = _bn_model(seed=1), _bn_model(seed=2)
    X, y = _separable()
    a.train_step(X, y, nn.SGD(0.05))
    a.save(tmp_path / "a.npz")
    b.load_weights(tmp_path / "a.npz")
    for (_, va), (_, vb) in zip(a.buffers() + a.parameters(), b.buffers() + b.parameters()):
        np.testing.assert_array_equal(va, vb)


def test_an_old_file_without_buffers_still_loads(tmp_path):
    # As written before buffers existed: config and param: entries only.
    model = nn.Sequential([nn.Conv2D(2, 3), nn.ReLU(), nn.Flatten(), nn.Dense(3)],
                          input_shape=(5, 5, 1), dtype="float64", seed=4)
    path = tmp_path / "old.npz"
    with open(path, "wb") as fh:
        np.savez(fh, config=np.array(json.dumps(model.get_config())),
                 **{f"param:{name}": v for name, v in model.parameters()})
    loaded = nn.load(path)
    X = _rng(5).standard_normal((3, 5, 5, 1))
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))
    assert loaded.buffers() == []


def test_a_batchnorm_file_without_its_buffers_is_refused_clearly(tmp_path):
    model = _bn_model()
    path = tmp_path / "nobuffers.npz"
    with open(path, "wb") as fh:
        np.savez(fh, config=np.array(json.dumps(model.get_config())),
                 **{f"param:{name}": v for name, v in model.parameters()})
    with pytest.raises(ValueError, match=r"has no buffer '1.BatchNorm2D.running_mean' "
                                         r"\(entry 'buffer:1.BatchNorm2D.running_mean'\)"):
        nn.load(path)
    # A buffer of the wrong shape is refused before anything is copied.
    other = nn.Sequential([nn.Conv2D(5, 3, pad=1), nn.BatchNorm2D()], input_shape=(6, 6, 2))
    other.save(tmp_path / "other.npz")
    target = nn.Sequential([nn.Conv2D(5, 3, pad=1), nn.BatchNorm2D()], input_shape=(6, 6, 2),
                           seed=9)
    with np.load(tmp_path / "other.npz") as data:
        arrays = dict(data)
    arrays["buffer:1.BatchNorm2D.running_var"] = np.ones(4, np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    W = target.layers[0].params["W"].copy()
    with pytest.raises(ValueError, match=r"buffer '1.BatchNorm2D.running_var' has shape "
                                         r"\(4,\), the model wants \(5,\)"):
        target.load_weights(tmp_path / "bad.npz")
    np.testing.assert_array_equal(target.layers[0].params["W"], W)
