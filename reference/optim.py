"""Stochastic gradient descent, as a pure function."""

import numpy as np


def sgd(params, grads, lr):
    """p ← p − lr·∂L/∂p for every parameter; returns new arrays, changes nothing.

    params, grads: dicts with the same canonical keys (``layers.0.weight`` …). A gradient
    whose shape differs from its parameter's is refused by name: NumPy would otherwise
    broadcast (1, 3) − (3, 1) into a (3, 3) "update" without a word.
    """
    updated = {}
    for name, value in params.items():
        grad = grads[name]
        if grad.shape != value.shape:
            raise ValueError(f"sgd: the gradient of {name} has shape {np.shape(grad)}, the parameter {value.shape}")
        updated[name] = value - lr * grad
    return updated
