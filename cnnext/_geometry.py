"""Output sizes of convolution and pooling: the one place the formulas live.

Everything in cnnext that needs an output size (the public functions'
validation, the layers' shape inference, the benchmark's cases) calls these.
"""


def conv_output_size(n_prev, f, pad, stride):
    """Output length along one axis of a convolution: the assignment's
    ``floor((n_prev - f + 2*pad) / stride) + 1``."""
    return (n_prev - f + 2 * pad) // stride + 1


def pool_output_size(n_prev, f, stride):
    """Output length along one axis of a pooling (no padding):
    ``floor((n_prev - f) / stride) + 1``."""
    return conv_output_size(n_prev, f, 0, stride)


def conv_output_hw(n_H_prev, n_W_prev, f, pad, stride):
    """``(n_H, n_W)`` of a convolution: :func:`conv_output_size` on both axes,
    in one call (the validation of a seed-sized call is this module's hot
    path: a call per axis cost 3-5% of a 4 us pooling call)."""
    return ((n_H_prev - f + 2 * pad) // stride + 1, (n_W_prev - f + 2 * pad) // stride + 1)


def pool_output_hw(n_H_prev, n_W_prev, f, stride):
    """``(n_H, n_W)`` of a pooling: :func:`pool_output_size` on both axes."""
    return ((n_H_prev - f) // stride + 1, (n_W_prev - f) // stride + 1)


def conv_output_shape(input_shape, f, n_C, pad, stride):
    """``(n_H, n_W, n_C)`` of a convolution of images of shape
    ``input_shape = (n_H_prev, n_W_prev, n_C_prev)``."""
    H, W = input_shape[0], input_shape[1]
    return (conv_output_size(H, f, pad, stride), conv_output_size(W, f, pad, stride), n_C)


def pool_output_shape(input_shape, f, stride):
    """``(n_H, n_W, n_C)`` of a pooling of images of shape ``input_shape``."""
    H, W, C = input_shape
    return (pool_output_size(H, f, stride), pool_output_size(W, f, stride), C)
