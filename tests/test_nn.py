"""cnnext.nn: layers against plain numpy references (and PyTorch when
installed), the optimizers against their textbook formulas, save/load."""
import json

import numpy as np
import pytest

import cnnext
from cnnext import nn
from reference import ref_conv_forward, ref_pool_forward

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def small_model(dtype="float64", seed=0, n_classes=3):
    return nn.Sequential([
        nn.Conv2D(4, 3, stride=1, pad=1), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(5, 2, stride=1, pad=1), nn.ReLU(), nn.AvgPool2D(2, stride=1),
        nn.Flatten(), nn.Dense(n_classes),
    ], input_shape=(6, 6, 2), dtype=dtype, seed=seed)


# ---- layers ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_conv2d_forward_matches_reference(dtype, stride, pad):
    rng = np.random.default_rng(1)
    conv = nn.Conv2D(3, 3, stride=stride, pad=pad).build((7, 6, 2), rng=0, dtype=dtype)
    conv.params["b"][...] = rng.standard_normal((1, 1, 1, 3))
    X = rng.standard_normal((2, 7, 6, 2)).astype(dtype)
    Z = conv.forward(X)
    assert Z.dtype == dtype
    assert Z.shape == (2,) + conv.output_shape
    expected = ref_conv_forward(X, conv.params["W"], conv.params["b"],
                                {"stride": stride, "pad": pad})
    np.testing.assert_allclose(Z, expected, **TOL[dtype])


def test_layers_call_cnnext_kernels_and_keep_their_caches(monkeypatch):
    calls = []

    def spy(name):
        real = getattr(cnnext, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        monkeypatch.setattr(cnnext, name, wrapper)

    for name in ("conv_forward", "conv_backward", "pool_forward", "pool_backward"):
        spy(name)
    model = small_model()
    X = np.random.default_rng(0).standard_normal((2, 6, 6, 2))
    logits = model.forward(X)
    conv = model.layers[0]
    # The cache is conv_forward's: (A_prev, W, b, hparameters).
    assert conv.cache[0] is X or np.shares_memory(conv.cache[0], X)
    assert conv.cache[1] is conv.params["W"]
    assert conv.cache[3] == {"stride": 1, "pad": 1}
    assert model.layers[2].cache[1] == {"f": 2, "stride": 2}
    model.backward(np.ones_like(logits))
    assert calls == ["conv_forward", "pool_forward"] * 2 + ["pool_backward", "conv_backward"] * 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,mode,f,stride", [
    (nn.MaxPool2D, "max", 2, 2), (nn.MaxPool2D, "max", 3, 1),
    (nn.AvgPool2D, "average", 2, 2), (nn.AvgPool2D, "average", 3, 2)])
def test_pool_layers_match_reference(dtype, cls, mode, f, stride):
    X = np.random.default_rng(2).standard_normal((3, 7, 7, 4)).astype(dtype)
    layer = cls(f, stride).build((7, 7, 4), dtype=dtype)
    out = layer.forward(X)
    assert out.dtype == dtype and out.shape == (3,) + layer.output_shape
    np.testing.assert_allclose(out, ref_pool_forward(X, {"f": f, "stride": stride}, mode),
                               **TOL[dtype])


def test_pool_stride_defaults_to_window():
    assert nn.MaxPool2D(3).stride == 3
    assert nn.AvgPool2D(2, stride=1).stride == 1


def test_maxpool_backward_routes_gradient_to_the_max():
    X = np.array([[1.0, 3.0], [4.0, 2.0]]).reshape(1, 2, 2, 1)
    layer = nn.MaxPool2D(2).build((2, 2, 1), dtype="float64")
    layer.forward(X)
    dX = layer.backward(np.full((1, 1, 1, 1), 5.0))
    np.testing.assert_array_equal(dX[0, :, :, 0], [[0, 0], [5, 0]])


def test_avgpool_backward_spreads_evenly():
    layer = nn.AvgPool2D(2).build((2, 2, 1), dtype="float64")
    layer.forward(np.zeros((1, 2, 2, 1)))
    dX = layer.backward(np.full((1, 1, 1, 1), 2.0))
    np.testing.assert_array_equal(dX[0, :, :, 0], [[0.5, 0.5], [0.5, 0.5]])


def test_relu_forward_backward():
    X = np.array([-2.0, -0.0, 0.0, 0.5, 3.0]).reshape(1, 5, 1, 1)
    relu = nn.ReLU().build((5, 1, 1), dtype="float64")
    np.testing.assert_array_equal(relu.forward(X).ravel(), [0, 0, 0, 0.5, 3])
    np.testing.assert_array_equal(relu.backward(np.full_like(X, 7.0)).ravel(), [0, 0, 0, 7, 7])


def test_flatten_is_nhwc_order_and_backward_restores_shape():
    X = np.arange(24.0).reshape(2, 2, 3, 2)
    flat = nn.Flatten().build((2, 3, 2), dtype="float64")
    np.testing.assert_array_equal(flat.forward(X), X.reshape(2, 12))
    assert flat.backward(np.ones((2, 12))).shape == (2, 2, 3, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_forward_backward(dtype):
    rng = np.random.default_rng(3)
    dense = nn.Dense(4).build((5,), rng=0, dtype=dtype)
    X = rng.standard_normal((6, 5)).astype(dtype)
    dout = rng.standard_normal((6, 4)).astype(dtype)
    W, b = dense.params["W"].astype(np.float64), dense.params["b"].astype(np.float64)
    out = dense.forward(X)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, X.astype(np.float64) @ W + b, **TOL[dtype])
    dX = dense.backward(dout)
    np.testing.assert_allclose(dX, dout @ W.T, **TOL[dtype])
    np.testing.assert_allclose(dense.grads["W"], X.T.astype(np.float64) @ dout, **TOL[dtype])
    np.testing.assert_allclose(dense.grads["b"], dout.sum(axis=0), **TOL[dtype])


def test_softmax_cross_entropy_against_formula():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    y = np.array([2, 0])
    loss = nn.SoftmaxCrossEntropy()
    value = loss.forward(logits, y)
    p0 = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert value == pytest.approx(-np.log(p0[2]) / 2)   # second row: log(1) = 0, no overflow
    grad = loss.backward()
    np.testing.assert_allclose(grad[0], (p0 - [0, 0, 1]) / 2)
    np.testing.assert_allclose(grad[1], [0, 0, 0], atol=1e-300)


def test_softmax_cross_entropy_rejects_bad_labels():
    loss = nn.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"labels must be in 0..2; got values from 0 to 3"):
        loss.forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        loss.forward(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class labels"):
        loss.forward(np.zeros((2, 3)), np.array([0.0, 1.0]))


# ---- initialisation and dtype ----------------------------------------------

def test_he_and_glorot_initialisation_statistics():
    conv = nn.Conv2D(256, 5).build((9, 9, 16), rng=0, dtype="float64")
    fan_in = 5 * 5 * 16
    assert conv.params["W"].std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.02)
    np.testing.assert_array_equal(conv.params["b"], 0)
    dense = nn.Dense(300).build((500,), rng=0, dtype="float64")
    limit = np.sqrt(6 / 800)
    assert np.abs(dense.params["W"]).max() <= limit
    assert dense.params["W"].std() == pytest.approx(limit / np.sqrt(3), rel=0.02)


def test_seeded_initialisation_is_reproducible():
    a, b, c = small_model(seed=7), small_model(seed=7), small_model(seed=8)
    for (_, pa), (_, pb), (_, pc) in zip(a.parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a.parameters()[0][1], c.parameters()[0][1])


def test_float32_by_default_float64_on_request():
    m32 = nn.Sequential([nn.Flatten(), nn.Dense(2)], input_shape=(2, 2, 1))
    assert all(p.dtype == np.float32 for _, p in m32.parameters())
    assert m32.forward(np.ones((3, 2, 2, 1))).dtype == np.float32
    m64 = nn.Sequential([nn.Flatten(), nn.Dense(2)], input_shape=(2, 2, 1), dtype="float64")
    assert all(p.dtype == np.float64 for _, p in m64.parameters())
    with pytest.raises(TypeError, match="float32 or float64; got float16"):
        nn.Sequential([nn.Flatten()], dtype="float16")


def test_float32_training_keeps_float32_parameters():
    model = small_model(dtype="float32")
    X = np.random.default_rng(0).standard_normal((4, 6, 6, 2))
    for opt in (nn.Adam(0.01), nn.SGD(0.01)):
        model.train_step(X, np.array([0, 1, 2, 0]), opt)
        assert all(p.dtype == np.float32 for _, p in model.parameters())


# ---- Sequential -------------------------------------------------------------

def test_sequential_shapes_and_lazy_build():
    model = nn.Sequential([nn.Conv2D(4, 3, pad=1), nn.ReLU(), nn.MaxPool2D(2),
                           nn.Flatten(), nn.Dense(5)])
    assert not model.built
    out = model.forward(np.zeros((3, 8, 8, 1)))
    assert out.shape == (3, 5)
    assert [l.output_shape for l in model.layers] == [(8, 8, 4), (8, 8, 4), (4, 4, 4), (64,), (5,)]
    with pytest.raises(ValueError, match=r"expects examples of shape \(8, 8, 1\)"):
        model.forward(np.zeros((3, 8, 7, 1)))


def test_sequential_build_errors_name_the_problem():
    with pytest.raises(ValueError, match="put a Flatten layer before it"):
        nn.Sequential([nn.Dense(3)], input_shape=(4, 4, 1))
    with pytest.raises(ValueError, match=r"MaxPool2D on inputs \(4, 4, 1\): the pooling "
                                         r"window \(f=5\) is larger than the padded input.*4 x 4"):
        nn.Sequential([nn.MaxPool2D(5)], input_shape=(4, 4, 1))
    with pytest.raises(TypeError, match="cnnext.nn.Layer instances; got str"):
        nn.Sequential(["conv"])
    with pytest.raises(ValueError, match="n_C must be >= 1; got 0"):
        nn.Conv2D(0, 3)
    with pytest.raises(RuntimeError, match="Conv2D is not built"):
        nn.Conv2D(1, 1).forward(np.zeros((1, 2, 2, 1)))


def _image_model():
    return nn.Sequential([nn.Conv2D(2, 3, pad=1), nn.ReLU(), nn.MaxPool2D(2),
                          nn.Flatten(), nn.Dense(3)], input_shape=(6, 4, 2),
                         dtype="float64")


_ENTRY_POINTS = {
    "forward": lambda model, X: model.forward(X),
    "predict": lambda model, X: model.predict(X),
    "predict_proba": lambda model, X: model.predict_proba(X),
    "evaluate": lambda model, X: model.evaluate(X, np.zeros(len(X), dtype=int)),
}


@pytest.mark.parametrize("entry", list(_ENTRY_POINTS))
def test_a_single_example_gets_told_to_add_the_batch_axis(entry):
    model = _image_model()
    image = np.random.default_rng(0).standard_normal((6, 4, 2))
    with pytest.raises(ValueError) as info:
        _ENTRY_POINTS[entry](model, image)
    message = str(info.value)
    assert "the model expects examples of shape (6, 4, 2)" in message
    assert "batch axis is missing" in message
    assert "X[None]" in message and "X.reshape(1, 6, 4, 2)" in message
    # Both suggested fixes work and give a batch of one.
    assert image[None].shape == image.reshape(1, 6, 4, 2).shape == (1, 6, 4, 2)
    assert model.predict(image[None]).shape == (1,)


def test_a_single_example_to_a_layer_gets_the_same_hint():
    conv = nn.Conv2D(2, 3).build((5, 5, 1), rng=0)
    with pytest.raises(ValueError, match=r"Conv2D expects inputs of shape \(m, 5, 5, 1\); "
                                         r"got a single example .* X\[None\]"):
        conv.forward(np.zeros((5, 5, 1)))
    dense = nn.Dense(2).build((4,), rng=0)
    with pytest.raises(ValueError, match=r"batch axis is missing.*X.reshape\(1, 4\)"):
        dense.forward(np.zeros(4))


@pytest.mark.parametrize("entry", list(_ENTRY_POINTS))
def test_a_channels_first_batch_gets_the_transpose_to_nhwc(entry):
    model = _image_model()
    X = np.random.default_rng(1).standard_normal((5, 6, 4, 2))  # NHWC
    X_nchw = np.ascontiguousarray(np.moveaxis(X, 3, 1))        # (5, 2, 6, 4), as PyTorch keeps it
    with pytest.raises(ValueError) as info:
        _ENTRY_POINTS[entry](model, X_nchw)
    message = str(info.value)
    assert "the model expects examples of shape (6, 4, 2)" in message
    assert "NCHW" in message and "NHWC" in message
    assert "X.transpose(0, 2, 3, 1)" in message
    # The suggested transpose restores the NHWC batch exactly.
    np.testing.assert_array_equal(X_nchw.transpose(0, 2, 3, 1), X)
    np.testing.assert_array_equal(model.predict(X_nchw.transpose(0, 2, 3, 1)), model.predict(X))


def test_a_single_channels_first_image_gets_its_transpose():
    model = _image_model()
    image = np.random.default_rng(2).standard_normal((6, 4, 2))
    chw = np.moveaxis(image, 2, 0)
    with pytest.raises(ValueError, match=r"channels-first \(CHW\).*X.transpose\(1, 2, 0\)\[None\]"):
        model.predict(chw)
    np.testing.assert_array_equal(chw.transpose(1, 2, 0)[None], image[None])


@pytest.mark.parametrize("shape", [(5, 2, 4, 6), (5, 4, 6, 2), (5, 6, 2, 4), (5, 6, 4, 3),
                                   (5, 1, 6, 4, 2), (5, 24, 2)])
def test_the_layout_hints_only_when_the_shape_really_is_a_mistake(shape):
    # Other permutations and other shapes are plain mismatches: no hint that
    # would not fit.
    model = _image_model()
    with pytest.raises(ValueError) as info:
        model.predict(np.zeros(shape))
    message = str(info.value)
    assert f"expects examples of shape (6, 4, 2); got a batch of shape {shape}" in message
    assert "transpose" not in message and "batch axis" not in message


def test_predict_proba_and_predict():
    model = small_model()
    X = np.random.default_rng(0).standard_normal((300, 6, 6, 2))
    proba = model.predict_proba(X, batch_size=64)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    logits = model.forward(X)
    np.testing.assert_array_equal(model.predict(X), logits.argmax(axis=1))


def test_training_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=90)
    X = rng.normal(0, 0.3, size=(90, 6, 6, 2))
    for c in range(3):  # class c lights up row band 2c..2c+1
        X[y == c, 2 * c:2 * c + 2, :, :] += 2.0
    model = small_model(dtype="float32")
    opt = nn.Adam(0.01)
    first, _ = model.evaluate(X, y)
    for _ in range(30):
        model.train_step(X, y, opt)
    last, acc = model.evaluate(X, y)
    assert last < first / 5
    assert acc == 1.0


def test_train_step_returns_loss_and_accuracy_like_evaluate():
    model = small_model(dtype="float64", seed=4)
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((30, 6, 6, 2)), rng.integers(0, 3, size=30)
    # Before the update: the batch's mean cross-entropy and fraction right,
    # computed here from the logits.
    logits = model.forward(X)
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected_loss = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(30), y])
    expected_accuracy = np.mean(logits.argmax(axis=1) == y)
    assert 0 < expected_accuracy < 1  # a count and a fraction differ here
    assert model.evaluate(X, y) == pytest.approx((expected_loss, expected_accuracy))

    loss, accuracy = model.train_step(X, y, nn.SGD(0.01))
    assert type(loss) is float and type(accuracy) is float
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert accuracy == pytest.approx(expected_accuracy, rel=1e-15)


# ---- optimizers -------------------------------------------------------------

class _OneParam:
    """A stand-in model with one parameter and a fixed gradient sequence."""

    def __init__(self, p):
        self.p, self.g = p, np.zeros_like(p)

    def parameters(self):
        return [("p", self.p)]

    def gradients(self):
        return [self.g]


def test_sgd_momentum_formula():
    model = _OneParam(np.array([1.0, -2.0]))
    opt = nn.SGD(lr=0.1, momentum=0.5)
    grads = [np.array([1.0, 2.0]), np.array([-1.0, 0.5]), np.array([3.0, 3.0])]
    p, v = np.array([1.0, -2.0]), np.zeros(2)
    for g in grads:
        model.g[...] = g
        opt.step(model)
        v = 0.5 * v - 0.1 * g
        p = p + v
        np.testing.assert_allclose(model.p, p, rtol=1e-15)


def test_adam_formula():
    model = _OneParam(np.array([0.5, -1.5, 2.0]))
    opt = nn.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7)
    p, m, v = model.p.copy(), np.zeros(3), np.zeros(3)
    rng = np.random.default_rng(0)
    for t in range(1, 6):
        g = rng.standard_normal(3)
        model.g[...] = g
        opt.step(model)
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g ** 2
        m_hat, v_hat = m / (1 - 0.8 ** t), v / (1 - 0.99 ** t)
        p = p - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-7)
        np.testing.assert_allclose(model.p, p, rtol=1e-13)


def test_learning_rate_stays_a_python_float():
    # A numpy float64 lr would promote float32 updates to float64 (NEP 50).
    opt = nn.Adam(np.float64(0.01))
    opt.lr = np.cos(np.float64(0.5))
    assert type(opt.lr) is float


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="lr must be > 0; got 0"):
        nn.SGD(lr=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\); got 1.5"):
        nn.SGD(momentum=1.5)


# ---- against PyTorch ----------------------------------------------------------

def test_model_forward_and_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = small_model(dtype="float64", seed=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 6, 6, 2))
    y = np.array([0, 1, 2, 1, 0])
    for layer in model.layers:  # non-zero biases
        if "b" in layer.params:
            layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)

    logits = model.forward(X)
    loss = model.loss.forward(logits, y)
    dX = model.backward(model.loss.backward())

    c1, c2, d = model.layers[0], model.layers[3], model.layers[7]
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)
    W1, b1 = t(c1.params["W"].transpose(3, 2, 0, 1)), t(c1.params["b"].ravel())
    W2, b2 = t(c2.params["W"].transpose(3, 2, 0, 1)), t(c2.params["b"].ravel())
    Wd, bd = t(d.params["W"].T), t(d.params["b"])
    Xt = t(X.transpose(0, 3, 1, 2))
    h = F.max_pool2d(F.relu(F.conv2d(Xt, W1, b1, padding=1)), 2)
    h = F.avg_pool2d(F.relu(F.conv2d(h, W2, b2, padding=1)), 2, stride=1)
    h = h.permute(0, 2, 3, 1).reshape(5, -1)  # NHWC flatten order
    out = F.linear(h, Wd, bd)
    tloss = F.cross_entropy(out, torch.tensor(y))
    tloss.backward()

    np.testing.assert_allclose(logits, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(dX, Xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-12)
    np.testing.assert_allclose(c1.grads["W"], W1.grad.numpy().transpose(2, 3, 1, 0), atol=1e-12)
    np.testing.assert_allclose(c1.grads["b"].ravel(), b1.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(c2.grads["W"], W2.grad.numpy().transpose(2, 3, 1, 0), atol=1e-12)
    np.testing.assert_allclose(d.grads["W"], Wd.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(d.grads["b"], bd.grad.numpy(), atol=1e-12)


# ---- save / load ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_roundtrip_rebuilds_architecture(tmp_path, dtype):
    model = small_model(dtype=dtype, seed=5)
    model.meta = {"classes": ["a", "b", "c"]}
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = nn.load(path)
    assert repr(loaded) == repr(model)
    assert loaded.dtype == np.dtype(dtype)
    assert loaded.input_shape == (6, 6, 2)
    assert loaded.meta == {"classes": ["a", "b", "c"]}
    for (na, pa), (nb, pb) in zip(model.parameters(), loaded.parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa, pb)
    X = np.random.default_rng(0).standard_normal((7, 6, 6, 2))
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))
    with np.load(path, allow_pickle=False) as data:  # a plain, pickle-free .npz
        assert json.loads(str(data["config"]))["format"] == "cnnext.nn/1"


def test_load_weights_into_same_architecture(tmp_path):
    a, b = small_model(seed=1), small_model(seed=2)
    a.save(tmp_path / "a.npz")
    b.load_weights(tmp_path / "a.npz")
    for (_, pa), (_, pb) in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa, pb)
    other = nn.Sequential([nn.Flatten(), nn.Dense(3)], input_shape=(6, 6, 2))
    with pytest.raises(ValueError, match="has no weights '1.Dense.W'"):
        other.load_weights(tmp_path / "a.npz")


def test_load_rejects_a_file_that_is_not_a_model(tmp_path):
    np.savez(tmp_path / "data.npz", X=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"is not a cnnext.nn model \(no 'config' entry\)"):
        nn.load(tmp_path / "data.npz")


def test_import_needs_numpy_only(tmp_path):
    import subprocess
    import sys
    code = ("import sys; import cnnext.nn, cnnext.gradcheck; "
            "bad = [m for m in ('sklearn', 'h5py', 'matplotlib', 'torch', 'scipy') "
            "if m in sys.modules]; print(bad)")
    # Run outside the checkout: `python -c` puts the working directory on
    # sys.path, where the sources (without the compiled kernels) would shadow
    # the installed package.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
