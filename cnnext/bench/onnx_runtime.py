"""ONNX Runtime (CPU) as a contender: float32 forward convolution and pooling.

Each row builds a one-node ONNX graph (``Conv``, ``MaxPool`` or
``AveragePool``) with the ``onnx`` helper API and an inference session with
``intra_op_num_threads`` = the benchmark's threads and sequential execution;
the whole geometry goes into the node's attributes (pads [top, left,
bottom, right], strides, dilations, group).
Building the session, transposing the NHWC input to NCHW and the weights to
(n_C, C, f, f) happen in :func:`prepare_args`, outside the timing, as an ONNX
user feeds a model NCHW arrays; the timed call is ``session.run`` alone and
returns the NCHW output, which :func:`to_cnnext` turns into cnnext's NHWC
result (untimed) for the check against cnnext.

Backward and float64 are not rows of this contender (:func:`supports`):
ONNX Runtime's CPU provider is an inference engine.

Importing this module imports onnx and onnxruntime: :mod:`cnnext.bench.contenders`
leaves the contender out where that fails.
"""
import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from onnx import TensorProto, helper

from .geometry import conv_geometry, pool_geometry

# Set by the benchmark (:func:`set_threads`) before any row is built.
_threads = 1


def set_threads(n):
    """Use ``n`` intra-op threads in the sessions built from now on."""
    global _threads
    _threads = int(n)


def supports(op, dtype, args=None):
    """Float32 forwards only; no dilated AveragePool (opset 19's)."""
    if dtype != "float32" or op not in ("conv_fwd", "max_fwd", "avg_fwd"):
        return False
    if args is None or op != "avg_fwd":
        return True
    return pool_geometry(args[0].shape, args[1]).dilation == (1, 1)


def versions():
    return {"onnx": onnx.__version__, "onnxruntime": ort.__version__}


def _session(node, inputs, out_shape, initializers=()):
    graph = helper.make_graph(
        [node], "cnnext_bench", inputs,
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, list(out_shape))],
        initializer=list(initializers))
    # opset 17: supported by every onnxruntime of the last years.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No spinning after a run: spinning intra-op threads held both cores and
    # made the next contender's call wait (torch's seed conv forward: 0.12 ms
    # alone, 19 ms right after a session.run; Xeon 2 cores,
    # /work/briefs/bench-torch-small.py).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _nchw(X):
    return np.ascontiguousarray(X.transpose(0, 3, 1, 2))


def _pads(geo):
    """ONNX's pads: [top, left, bottom, right]."""
    t, b, l, r = geo.pad
    return [t, l, b, r]


def conv_session(A_prev, W, b, hparameters):
    """(session, feeds) of a Conv node; weights and bias are initializers."""
    geo = conv_geometry(A_prev.shape, W.shape, hparameters)
    m, H, Wd, C = A_prev.shape
    n_C = W.shape[3]
    n_H, n_W = geo.out_hw
    weight = onnx.numpy_helper.from_array(_nchw_weight(W), "W")
    inputs, inits = ["X", "W"], [weight]
    if b is not None:
        inputs.append("B")
        inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(b.reshape(-1)), "B"))
    node = helper.make_node("Conv", inputs, ["Y"], kernel_shape=list(geo.f),
                            strides=list(geo.stride), pads=_pads(geo),
                            dilations=list(geo.dilation), group=geo.groups)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [m, C, H, Wd])
    sess = _session(node, [x], (m, n_C, n_H, n_W), inits)
    return sess, {"X": _nchw(A_prev)}


def _nchw_weight(W):
    """(f_h, f_w, C / groups, n_C) -> (n_C, C / groups, f_h, f_w), contiguous."""
    return np.ascontiguousarray(W.transpose(3, 2, 0, 1))


def pool_session(A_prev, hparameters, mode):
    """(session, feeds) of a MaxPool (padding -inf) or AveragePool node
    (count_include_pad=0: the padding excluded, as cnnext's default)."""
    geo = pool_geometry(A_prev.shape, hparameters)
    m, H, Wd, C = A_prev.shape
    n_H, n_W = geo.out_hw
    extra = {"dilations": list(geo.dilation)} if mode == "max" else {"count_include_pad": 0}
    node = helper.make_node("MaxPool" if mode == "max" else "AveragePool", ["X"], ["Y"],
                            kernel_shape=list(geo.f), strides=list(geo.stride),
                            pads=_pads(geo), **extra)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [m, C, H, Wd])
    return _session(node, [x], (m, C, n_H, n_W)), {"X": _nchw(A_prev)}


def run(session, feeds):
    """The timed call: the NCHW output."""
    return session.run(None, feeds)[0]


def prepare_args(op, args):
    """(session, feeds): built here, outside the timing."""
    if op == "conv_fwd":
        return conv_session(*args)
    A_prev, hparameters, mode = args
    return pool_session(A_prev, hparameters, mode)


def to_cnnext(op, result):
    """The NCHW output as cnnext's NHWC array (outside the timing)."""
    return np.ascontiguousarray(result.transpose(0, 2, 3, 1))


# The functions of a contender (contenders.FUNCTION_OF_OP): each takes what
# prepare_args returns.
conv_forward = pool_forward = run


def conv_backward(*args):
    raise NotImplementedError("ONNX Runtime rows are forward only (see supports)")


pool_backward = conv_backward
