"""The layers' geometry (issue 12): Conv2D with rectangular filters, 'same'
padding, dilation, groups and no bias; DepthwiseConv2D; pooling layers with
padding. Each gradchecked, compared with the functions (which
tests/test_geometry.py checks against PyTorch and the numpy reference), and
saved and loaded."""
import numpy as np
import pytest

import cnnext
from cnnext import gradcheck, nn
from reference import assert_close, ref_conv_general, tf_same_padding


def _rng(seed):
    return np.random.default_rng(seed)


LAYERS = [
    lambda: nn.Conv2D(4, (2, 3), stride=(1, 2), pad="same"),
    lambda: nn.Conv2D(4, 3, pad=2, dilation=2, use_bias=False),
    lambda: nn.Conv2D(6, 3, pad=(0, 1, 1, 0), groups=2),
    lambda: nn.DepthwiseConv2D(3, stride=2, pad="same"),
    lambda: nn.DepthwiseConv2D((3, 1), pad=(1, 0), depth_multiplier=2),
    lambda: nn.MaxPool2D(3, 2, pad="same"),
    lambda: nn.MaxPool2D((2, 3), (2, 1), pad=(0, 1)),
    lambda: nn.AvgPool2D(3, 2, pad=1),
    lambda: nn.AvgPool2D(3, 2, pad=1, count_include_pad=True),
    lambda: nn.MaxPool2D(2, 1, dilation=2),
]
IDS = ["conv-rect-same", "conv-dilated-nobias", "conv-groups", "depthwise-s2-same",
       "depthwise-multiplier", "maxpool-same", "maxpool-rect", "avgpool-pad",
       "avgpool-count-pad", "maxpool-dilated"]


@pytest.mark.parametrize("make", LAYERS, ids=IDS)
def test_each_layer_gradchecks(make):
    layer = make().build((7, 8, 4), rng=0, dtype="float64")
    X = _rng(1).standard_normal((2, 7, 8, 4))
    result = gradcheck(layer, X)
    assert result.passed and result.max_error < 1e-7, repr(result)


@pytest.mark.parametrize("make", LAYERS, ids=IDS)
def test_each_layer_computes_what_the_function_does(make):
    layer = make().build((7, 8, 4), rng=0, dtype="float64")
    X = _rng(2).standard_normal((3, 7, 8, 4))
    out = layer.forward(X)
    assert out.shape[1:] == layer.output_shape
    if isinstance(layer, nn.Conv2D):
        expected = cnnext.conv_forward(X, layer.params["W"], layer.params.get("b"),
                                       layer.hparameters)[0]
    else:
        expected = cnnext.pool_forward(X, layer.hparameters, layer.mode)[0]
    np.testing.assert_array_equal(out, expected)


def test_conv2d_same_matches_the_reference_and_has_no_bias_if_asked():
    layer = nn.Conv2D(5, 4, pad="same", use_bias=False).build((9, 9, 3), rng=3,
                                                               dtype="float64")
    assert set(layer.params) == {"W"}
    X = _rng(4).standard_normal((2, 9, 9, 3))
    pad = (*tf_same_padding(9, 4, 1, 1), *tf_same_padding(9, 4, 1, 1))
    assert_close(layer.forward(X), ref_conv_general(X, layer.params["W"], None, (1, 1), pad,
                                                    (1, 1), 1))
    layer.backward(np.ones((2, 9, 9, 5)))
    assert set(layer.grads) == {"W"}


def test_depthwise_layer_shapes():
    layer = nn.DepthwiseConv2D(3, depth_multiplier=2).build((6, 6, 5), rng=0)
    assert layer.params["W"].shape == (3, 3, 1, 10)
    assert layer.output_shape == (4, 4, 10)
    assert layer.hparameters == {"stride": 1, "pad": 0, "groups": 5}


def test_the_assignments_layers_pass_the_assignments_dicts():
    """Defaults are left out, so the seed-sized fast paths see the plain dict."""
    assert nn.Conv2D(4, 3, pad=1).hparameters == {"stride": 1, "pad": 1}
    assert nn.MaxPool2D(2).hparameters == {"f": 2, "stride": 2}


def test_a_model_with_the_new_geometry_trains_and_round_trips(tmp_path):
    model = nn.Sequential([nn.Conv2D(6, (3, 2), pad="same"), nn.ReLU(),
                           nn.DepthwiseConv2D(3, stride=2, pad="same"), nn.ReLU(),
                           nn.MaxPool2D(2, pad="same"), nn.Flatten(), nn.Dense(3)],
                          input_shape=(9, 9, 2), seed=0)
    X, y = _rng(5).standard_normal((16, 9, 9, 2)).astype(np.float32), _rng(6).integers(0, 3, 16)
    opt = nn.Adam(lr=0.01)
    first = model.train_step(X, y, opt)[0]
    for _ in range(30):
        last = model.train_step(X, y, opt)[0]
    assert last < first
    model.save(tmp_path / "m.npz")
    loaded = nn.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: nn.Conv2D(4, 3, pad="full"), ValueError, r"pad.*'same', 'valid'.*'full'"),
    (lambda: nn.Conv2D(4, (3, 0)), ValueError, r"f'\]\[1\] must be >= 1; got 0"),
    (lambda: nn.Conv2D(4, 3, use_bias=1), TypeError, r"use_bias"),
    (lambda: nn.DepthwiseConv2D(3, depth_multiplier=0), ValueError, r"depth_multiplier"),
    (lambda: nn.AvgPool2D(2, count_include_pad="yes"), TypeError, r"count_include_pad"),
    (lambda: nn.Sequential([nn.Conv2D(4, 3, groups=3)], input_shape=(5, 5, 4)), ValueError,
     r"Conv2D on inputs \(5, 5, 4\): hparameters\['groups'\] = 3 must divide"),
    (lambda: nn.Sequential([nn.MaxPool2D(3, pad=3)], input_shape=(5, 5, 1)), ValueError,
     r"MaxPool2D on inputs .*cover only padding"),
], ids=["pad-word", "f-zero", "use-bias-int", "multiplier-zero", "count-pad-str",
        "groups-at-build", "pool-all-padding"])
def test_bad_layer_geometry_is_refused_by_name(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()
