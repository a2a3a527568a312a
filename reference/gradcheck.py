"""Finite-difference gradients, the oracle that needs no calculus.

Every probe perturbs a *copy* of the parameters; the caller's arrays are never
touched, even when the loss function raises midway.
"""

import numpy as np


def central_differences(loss, params, delta=1e-4):
    """∂L/∂p ≈ (L(p + δ) − L(p − δ)) / 2δ for every coordinate of every parameter.

    loss: a function of a params dict (canonical names -> arrays) returning a scalar.
    Costs two loss evaluations per coordinate.
    """
    grads = {}
    for name, value in params.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            probe = {k: np.array(v, copy=True) for k, v in params.items()}
            probe[name][index] = value[index] + delta
            up = loss(probe)
            probe[name][index] = value[index] - delta
            down = loss(probe)
            grad[index] = (up - down) / (2 * delta)
        grads[name] = grad
    return grads
