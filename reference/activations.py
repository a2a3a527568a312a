"""Activation functions and their hand-derived derivatives.

Every activation is a pair: ``f(z)`` and ``f_grad(z) = df/dz``, written next to
each other so each derivative can be checked against the line above it. All but
softmax work elementwise on arrays of any shape; all keep the input's dtype.

softmax is the exception: each output depends on every unit of its row, so its
derivative is a Jacobian, not a number per unit, and its pair is (f, the
vector-Jacobian product ``softmax_backward(a, da) -> dz``): see ``Activation.backward``.

The derivative at a kink is a *convention*, not mathematics. The reference
takes the left derivative at 0 for both ReLU-style activations:

    relu'(0)       = 0                (as torch ``F.relu`` and ``jax.nn.relu``)
    leaky_relu'(0) = negative_slope   (as torch ``F.leaky_relu``; ``jax.nn.leaky_relu`` gives 1)
"""

import numpy as np


def identity(z):
    """f(z) = z"""
    return z.copy()


def identity_grad(z):
    """f'(z) = 1"""
    return np.ones_like(z)


def relu(z):
    """f(z) = max(0, z); a NaN stays NaN, as in torch and JAX (``where(z > 0, z, 0)`` would make it 0)"""
    return np.maximum(z, np.zeros_like(z))


def relu_grad(z):
    """f'(z) = 1 if z > 0 else 0 (0 at the kink z = 0)"""
    return (z > 0).astype(z.dtype)


def leaky_relu(z, negative_slope=0.01):
    """f(z) = z if z > 0 else negative_slope·z"""
    return np.where(z > 0, z, negative_slope * z).astype(z.dtype)


def leaky_relu_grad(z, negative_slope=0.01):
    """f'(z) = 1 if z > 0 else negative_slope (negative_slope at the kink z = 0)"""
    return np.where(z > 0, 1.0, negative_slope).astype(z.dtype)


def sigmoid(z):
    """f(z) = 1 / (1 + e^(−z)), computed without overflow.

    The textbook form overflows in e^(−z) for large negative z. With
    e = e^(−|z|), which lies in (0, 1], the two algebraically equal forms
    1/(1+e) for z ≥ 0 and e/(1+e) for z < 0 never overflow.
    """
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype)


def sigmoid_grad(z):
    """f'(z) = σ(z)·(1 − σ(z))"""
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh(z):
    """f(z) = tanh(z)"""
    return np.tanh(z)


def tanh_grad(z):
    """f'(z) = 1 − tanh²(z)"""
    return 1.0 - np.tanh(z) ** 2


def elu(z):
    """f(z) = z if z > 0 else e^z − 1 (α = 1, torch's and JAX's default)"""
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0))).astype(z.dtype)


def elu_grad(z):
    """f'(z) = 1 if z > 0 else e^z (e^0 = 1 at the kink: ELU is smooth there with α = 1)"""
    return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))).astype(z.dtype)


def softmax(z):
    """f(z)_j = e^(z_j) / Σ_k e^(z_k) over each row (the last axis); the row max is subtracted first,
    which changes nothing but keeps e^z from overflowing."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(a, da):
    """dz = a ⊙ (da − Σ_j da_j·a_j), row by row, with a = softmax(z).

    The Jacobian is ∂a_j/∂z_k = a_j·(δ_jk − a_k), so dz_k = Σ_j da_j·a_j·(δ_jk − a_k)
    = a_k·da_k − a_k·Σ_j da_j·a_j. Multiplying da by a diagonal "f'(z)" would drop the
    second term: every unit of the row feeds every other.
    """
    return a * (da - (da * a).sum(axis=-1, keepdims=True))


# name -> (f, f'); leaky_relu's pair takes negative_slope as a second argument; softmax's second
# function is its vector-Jacobian product (a, da) -> dz, not an elementwise derivative.
ACTIVATIONS = {
    "identity": (identity, identity_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "elu": (elu, elu_grad),
    "softmax": (softmax, softmax_backward),
}

ELEMENTWISE = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu")   # all but softmax
