"""A user's own backward pass, checked by backproof against torch, JAX and finite differences."""

import numpy as np

from backproof.testing import assert_gradients


def gradients(params, inputs, targets):
    """tiny-2-2-1 by hand: h = σ(x·W0ᵀ + b0), y = h·W1ᵀ + b1, L = mean((y − t)²)."""
    W0, b0, W1, b1 = (params[k] for k in ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"))
    h = 1.0 / (1.0 + np.exp(-(inputs @ W0.T + b0)))
    y = h @ W1.T + b1
    dy = 2.0 * (y - targets) / y.size
    dz = (dy @ W1) * h * (1.0 - h)
    return {"layers.0.weight": dz.T @ inputs, "layers.0.bias": dz.sum(0),
            "layers.1.weight": dy.T @ h, "layers.1.bias": dy.sum(0)}


def test_my_gradients_are_right(backproof_scenario):
    assert_gradients(gradients, backproof_scenario("scenarios/tiny-2-2-1.json"))
