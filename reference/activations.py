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

import math

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


_ERF = np.frompyfunc(math.erf, 1, 1)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715
SOFTPLUS_THRESHOLD = 20.0


def _phi(z):
    """Φ(z) = (1 + erf(z/√2)) / 2, the standard normal's distribution function (erf from Python's math: NumPy has
    none), computed in float64 and returned in z's dtype."""
    return (0.5 * (1.0 + _ERF(np.asarray(z, np.float64) / math.sqrt(2.0)).astype(np.float64))).astype(z.dtype)


def gelu(z):
    """f(z) = z·Φ(z), exact (torch's nn.GELU() default; jax.nn.gelu needs approximate=False)"""
    return z * _phi(z)


def gelu_grad(z):
    """f'(z) = Φ(z) + z·φ(z), with φ(z) = e^(−z²/2)/√(2π) the normal density"""
    return _phi(z) + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def gelu_tanh(z):
    """f(z) = z/2 · (1 + tanh(u)), u = √(2/π)·(z + 0.044715·z³): GELU's tanh approximation (torch
    nn.GELU(approximate="tanh"); jax.nn.gelu's default)"""
    return 0.5 * z * (1.0 + np.tanh(SQRT_2_OVER_PI * (z + GELU_TANH_CUBIC * z ** 3)))


def gelu_tanh_grad(z):
    """f'(z) = (1 + tanh u)/2 + z/2 · (1 − tanh² u) · du/dz, du/dz = √(2/π)·(1 + 3·0.044715·z²)"""
    t = np.tanh(SQRT_2_OVER_PI * (z + GELU_TANH_CUBIC * z ** 3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * z * z)


def silu(z):
    """f(z) = z·σ(z) (also called swish)"""
    return z * sigmoid(z)


def silu_grad(z):
    """f'(z) = σ(z) + z·σ(z)·(1 − σ(z)) = σ(z)·(1 + z·(1 − σ(z)))"""
    s = sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def softplus(z):
    """f(z) = log(1 + e^z), and z itself above 20: torch's nn.Softplus (beta 1, threshold 20) is linear there
    (registry row softplus-threshold), where log(1 + e^z) − z < 2.1e-9. log1p(e^(−|z|)) + max(z, 0) never overflows."""
    smooth = np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)
    return np.where(z > SOFTPLUS_THRESHOLD, z, smooth).astype(z.dtype)


def softplus_grad(z):
    """f'(z) = σ(z), and 1 above the threshold"""
    return np.where(z > SOFTPLUS_THRESHOLD, 1.0, sigmoid(z)).astype(z.dtype)


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
    "gelu": (gelu, gelu_grad),
    "gelu_tanh": (gelu_tanh, gelu_tanh_grad),
    "silu": (silu, silu_grad),
    "softplus": (softplus, softplus_grad),
    "softmax": (softmax, softmax_backward),
}

ELEMENTWISE = tuple(name for name in ACTIVATIONS if name != "softmax")
