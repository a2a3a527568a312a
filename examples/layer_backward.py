"""Homework mode: one layer's backward pass, written by hand (backproof verify-layer, docs/verifying-gradients.md).

    backproof verify-layer examples/layer_backward.py:affine_backward spiral-2-16-3-adam --layer 1
    backproof verify-layer examples/layer_backward.py:relu_backward spiral-2-16-3-adam --layer 0 --part activation \\
        --forward relu_forward
"""

import numpy as np


def affine_backward(x, params, dout):
    """z = x·Wᵀ + b: dx = dout·W, dW = doutᵀ·x, db = Σ_rows dout."""
    return {"x": dout @ params["weight"], "weight": dout.T @ x, "bias": dout.sum(axis=0)}


def affine_backward_averaged(x, params, dout):
    """A common mistake: dW divided by the batch size, where the layer sums over the rows."""
    return {"x": dout @ params["weight"], "weight": dout.T @ x / x.shape[0], "bias": dout.sum(axis=0)}


def relu_forward(x):
    """The course style: (out, cache)."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dx = dout where the input was positive, 0 elsewhere."""
    return (dout * (cache > 0),)
