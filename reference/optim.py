"""Stochastic gradient descent, as a pure function."""

import numpy as np


def sgd(params, grads, lr):
    """p ← p − lr·∂L/∂p for every parameter; returns new arrays, changes nothing.

    params, grads: dicts with the same canonical keys (``layers.0.weight`` …). A gradient
    whose shape differs from its parameter's is refused by name: NumPy would otherwise
    broadcast (1, 3) − (3, 1) into a (3, 3) "update" without a word.
    """
    for name, value in params.items():
        if np.shape(grads[name]) != np.shape(value):
            raise ValueError(f"sgd: the gradient of {name} has shape {np.shape(grads[name])}, "
                             f"the parameter {np.shape(value)}")
    return {name: params[name] - lr * grads[name] for name in params}
