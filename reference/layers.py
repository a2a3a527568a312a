"""Layers with a forward pass and a hand-derived backward pass.

Batch convention: x has shape (n, in), one example per row, and

    forward:   z  = x·Wᵀ + b                    (n, out)
    backward:  dW = dZᵀ·X                       (out, in)
               db = Σ_rows dZ                   (out,)
               dX = dZ·W                        (n, in)

``backward`` returns the gradient with respect to the layer's input and keeps
the parameter gradients on the layer (``weight_grad``, ``bias_grad``). It never
changes a weight: updating is the optimizer's job (``reference.optim``).
"""

import numpy as np

from .activations import ACTIVATIONS


class Layer:
    """A function of its input with a backward pass: ``backward(∂L/∂out) -> ∂L/∂in``."""

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError


class Dense(Layer):
    """z = x·Wᵀ + b, with W of shape (out, in) and b of shape (out,) or None.

    The weights are copied in, so the caller's arrays are never changed (copy=False
    uses them as they are, for a probe that only runs forward).
    """

    def __init__(self, weight, bias=None, copy=True):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.weight = keep(weight)                                          # (out, in)
        self.bias = None if bias is None else keep(bias)                    # (out,)
        self.weight_grad = None
        self.bias_grad = None

    def forward(self, x):
        self.x = x                                                          # (n, in), kept for backward
        z = x @ self.weight.T                                               # (n, out)
        if self.bias is not None:
            z = z + self.bias
        return z

    def backward(self, dz):
        self.weight_grad = dz.T @ self.x                                    # dW = dZᵀ·X   (out, in)
        if self.bias is not None:
            self.bias_grad = dz.sum(axis=0)                                 # db = Σ dZ    (out,)
        return dz @ self.weight                                             # dX = dZ·W    (n, in)


class Activation(Layer):
    """a = f(z) elementwise; backward: ∂L/∂z = ∂L/∂a ⊙ f'(z). softmax is row-wise: its backward is
    the vector-Jacobian product dz = a ⊙ (da − Σ da ⊙ a), see activations.softmax_backward.

    name: one of ``reference.activations.ACTIVATIONS``; negative_slope is
    passed to leaky_relu and ignored by the others. at_zero: None keeps the
    reference's derivative at z = 0 (see activations.py); a number replaces it,
    to reproduce another framework's kink convention.
    """

    def __init__(self, name, negative_slope=0.01, at_zero=None):
        self.name = name
        self.negative_slope = negative_slope
        self.at_zero = at_zero
        self.fn, self.fn_grad = ACTIVATIONS[name]
        self.extra = (negative_slope,) if name == "leaky_relu" else ()     # f's arguments after z

    def forward(self, z):
        self.z = z                                                          # (n, out), kept for backward
        self.a = self.fn(z, *self.extra)                                    # kept for softmax's backward
        return self.a

    def derivative(self, z):
        """f'(z) elementwise, with ``at_zero`` in place of the reference's value where z is exactly 0."""
        if self.name == "softmax":
            raise ValueError("softmax has no elementwise derivative: its Jacobian couples the units of a row")
        slope = self.fn_grad(z, *self.extra)
        if self.at_zero is not None:
            slope = np.where(z == 0, self.at_zero, slope).astype(slope.dtype)
        return slope

    def backward(self, da):
        if self.name == "softmax":
            return self.fn_grad(self.a, da)                                 # dZ = A ⊙ (dA − Σ dA ⊙ A)
        slope = self.fn_grad(self.z, *self.extra) if self.at_zero is None else self.derivative(self.z)
        if self.name != "relu":
            return da * slope                                               # dZ = dA ⊙ f'(Z)
        # relu: a unit that is off passes nothing back, not even an inf or a NaN (inf·0 would be NaN);
        # torch's and JAX's relu select instead of multiplying (registry row relu-backward-non-finite)
        with np.errstate(invalid="ignore"):
            return np.where(slope == 0, np.zeros_like(da), da * slope)
