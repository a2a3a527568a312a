"""Losses over a batch and their hand-derived gradients.

Y (outputs) and T (targets) both have shape (n, out). Each loss returns a
0-d array in Y's dtype, and each ``*_grad`` returns ∂L/∂Y with Y's shape.
How a loss reduces over the batch matters: it scales every gradient.

    sse      = Σ (Y − T)²            summed over rows and outputs
    half_sse = ½ · Σ (Y − T)²        the ½ cancels the 2 of the derivative
    mse      = Σ (Y − T)² / (n·out)  mean over all elements, as torch's MSELoss

The two classification losses take the last layer's output as *logits* (no softmax
or sigmoid before them: the loss applies it, stably) and average as torch does:

    cross_entropy        = −(1/n)·Σ_r Σ_k T'_rk·log softmax(Y_r)_k     mean over rows
    binary_cross_entropy = mean over all elements of −[T·log σ(Y) + (1−T)·log(1−σ(Y))]

T for cross_entropy holds probability rows (one-hot rows for class indices), and with
label smoothing ε the loss uses T' = (1 − ε)·T + ε/K, K classes. Over a sequence, Y is (n, T, K)
and every step is a row: the mean is over the steps of every row, leaving out the steps whose
target is torch's ignore_index (-100), held as rows of zeros.
"""

import numpy as np

from .activations import sigmoid


def sse(y, t):
    """L = Σ (y − t)²"""
    return ((y - t) ** 2).sum()


def sse_grad(y, t):
    """∂L/∂y = 2·(y − t)"""
    return 2.0 * (y - t)


def half_sse(y, t):
    """L = ½·Σ (y − t)²"""
    return 0.5 * ((y - t) ** 2).sum()


def half_sse_grad(y, t):
    """∂L/∂y = y − t"""
    return y - t


def mse(y, t):
    """L = Σ (y − t)² / N, with N = n·out, the number of elements"""
    return ((y - t) ** 2).sum() / y.size


def mse_grad(y, t):
    """∂L/∂y = 2·(y − t) / N"""
    return 2.0 * (y - t) / y.size


def log_softmax(y):
    """log softmax(y) over each row (the last axis), as y − max − log Σ e^(y − max): no overflow, no log(0)."""
    shifted = y - y.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def smooth_labels(t, label_smoothing):
    """T' = (1 − ε)·T + ε/K, on the rows that count (an ignored step's row of zeros stays zeros)"""
    counted = np.any(t != 0, axis=-1, keepdims=True)
    return np.where(counted, (1.0 - label_smoothing) * t + label_smoothing / t.shape[-1], 0.0).astype(t.dtype)


def counted_rows(t):
    """The rows the mean is over: every row, less a sequence's ignored steps (rows of zeros)."""
    return int(np.count_nonzero(np.any(t != 0, axis=-1)))


def cross_entropy(y, t, label_smoothing=0.0):
    """L = −(1/n)·Σ_r Σ_k T'_rk·log softmax(y_r)_k, n the rows counted"""
    t = smooth_labels(t, label_smoothing)
    return -(t * log_softmax(y)).sum() / counted_rows(t)


def cross_entropy_grad(y, t, label_smoothing=0.0):
    """∂L/∂y = (softmax(y)·Σ_k T'_k − T') / n, which is (softmax(y) − T')/n when each row of T' sums to 1 (and 0 on an
    ignored step, whose row of T' is zeros).

    The general form is the one autodiff computes; a probability row whose float sum is 1 ± 1 ulp
    keeps the two in agreement to the last bit.
    """
    t = smooth_labels(t, label_smoothing)
    p = np.exp(log_softmax(y))
    return (p * t.sum(axis=-1, keepdims=True) - t) / counted_rows(t)


def binary_cross_entropy(y, t):
    """L = mean of max(y, 0) − y·t + log(1 + e^(−|y|)), the overflow-free form of
    −[t·log σ(y) + (1 − t)·log(1 − σ(y))]"""
    return (np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y)))).sum() / y.size


def binary_cross_entropy_grad(y, t):
    """∂L/∂y = (σ(y) − t) / N, N = n·out"""
    return (sigmoid(y) - t) / y.size


# name -> (L, ∂L/∂y); cross_entropy's pair also takes label_smoothing
LOSSES = {
    "sse": (sse, sse_grad),
    "half_sse": (half_sse, half_sse_grad),
    "mse": (mse, mse_grad),
    "cross_entropy": (cross_entropy, cross_entropy_grad),
    "binary_cross_entropy": (binary_cross_entropy, binary_cross_entropy_grad),
}

CLASSIFICATION = ("cross_entropy", "binary_cross_entropy")     # losses that take logits
