"""Stochastic gradient descent, as a pure function."""


def sgd(params, grads, lr):
    """p ← p − lr·∂L/∂p for every parameter; returns new arrays, changes nothing.

    params, grads: dicts with the same canonical keys (``layers.0.weight`` …).
    """
    return {name: params[name] - lr * grads[name] for name in params}
