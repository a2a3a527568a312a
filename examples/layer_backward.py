"""Homework mode: one layer's backward pass, written by hand (backproof verify-layer, docs/verifying-gradients.md).

    backproof verify-layer examples/layer_backward.py:affine_backward spiral-2-16-3-adam --layer 1
    backproof verify-layer examples/layer_backward.py:softmax_loss spiral-2-16-3-adam --layer 1 --part loss
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


def softmax_loss(x, y):
    """The course's softmax_loss(x, y) -> (loss, dx): the mean cross-entropy of logits x (n, C) against class
    indices y (n,), and its gradient p − onehot(y), over n."""
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), y]).mean()
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def softmax_loss_summed(x, y):
    """A common mistake: the gradient of the summed loss, where the loss averages over the rows."""
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]


def batchnorm_backward(x, params, dout, eps=1e-5):
    """A batch norm in training, (n, C): x̂ = (x − mean)/√(var + ε) over the batch; every x moves the mean and the
    variance it is normalised by, hence the two subtracted terms."""
    r = 1.0 / np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) * r
    g = dout * params["weight"]
    dx = r * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return {"x": dx, "weight": (dout * x_hat).sum(axis=0), "bias": dout.sum(axis=0)}


def batchnorm_backward_as_constants(x, params, dout, eps=1e-5):
    """A common mistake: the batch's mean and variance treated as constants (what eval mode would compute)."""
    answer = batchnorm_backward(x, params, dout, eps)
    return {**answer, "x": dout * params["weight"] / np.sqrt(x.var(axis=0) + eps)}
