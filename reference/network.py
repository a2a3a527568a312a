"""The network built from a Scenario, and one training step traced end to end.

``run_step(scenario)`` is the entry point shared by the three implementations.
It returns every intermediate value under its canonical name:

    layers.{i}.z, layers.{i}.a        forward, each (n, out_i)
    output, loss                      the last a, and the scalar loss
    layers.{i}.dz                     ∂L/∂z_i, (n, out_i)
    grad.layers.{i}.weight / .bias    ∂L/∂W_i (out_i, in_i) and ∂L/∂b_i (out_i,)
    grad.inputs                       ∂L/∂x, (n, in_0)
    updated.layers.{i}.weight / .bias the parameters after one SGD step
"""

import numpy as np

from .layers import Activation, Dense
from .losses import LOSSES
from .optim import sgd


class Network:
    """A stack of (Dense, Activation) pairs built from a Scenario's layers."""

    def __init__(self, layer_specs, kinks=None):
        """kinks: None, or {layer index: derivative at z = 0} to use another framework's convention there."""
        kinks = kinks or {}
        self.dense = [Dense(spec.weight, spec.bias) for spec in layer_specs]
        self.activations = [Activation(spec.activation, spec.negative_slope, kinks.get(i))
                            for i, spec in enumerate(layer_specs)]

    def forward(self, x):
        """Returns ([z_0, …], [a_0, …]); the last a is the network's output."""
        zs, acts = [], []
        a = x
        for dense, activation in zip(self.dense, self.activations):
            z = dense.forward(a)
            a = activation.forward(z)
            zs.append(z)
            acts.append(a)
        return zs, acts

    def backward(self, d_output):
        """Takes ∂L/∂output; returns ([dz_0, …], ∂L/∂x). Parameter gradients stay on the layers."""
        dzs = [None] * len(self.dense)
        grad = d_output
        for i in reversed(range(len(self.dense))):
            dzs[i] = self.activations[i].backward(grad)     # ∂L/∂z_i
            grad = self.dense[i].backward(dzs[i])           # ∂L/∂a_{i-1}
        return dzs, grad

    def forward_backward(self, x, t, loss_name):
        """Forward, loss and backward on one batch: (zs, acts, loss, dzs, ∂L/∂x).

        The parameter gradients are left on the layers (``gradients()``).
        """
        loss_fn, loss_grad = LOSSES[loss_name]
        zs, acts = self.forward(x)
        loss = loss_fn(acts[-1], t)
        dzs, dx = self.backward(loss_grad(acts[-1], t))
        return zs, acts, loss, dzs, dx

    def parameters(self):
        params = {}
        for i, dense in enumerate(self.dense):
            params[f"layers.{i}.weight"] = dense.weight
            if dense.bias is not None:
                params[f"layers.{i}.bias"] = dense.bias
        return params

    def set_parameters(self, params):
        """Replace every weight and bias by a copy of ``params[canonical name]``."""
        for i, dense in enumerate(self.dense):
            dense.weight = np.array(params[f"layers.{i}.weight"], copy=True)
            if dense.bias is not None:
                dense.bias = np.array(params[f"layers.{i}.bias"], copy=True)

    def gradients(self):
        grads = {}
        for i, dense in enumerate(self.dense):
            grads[f"layers.{i}.weight"] = dense.weight_grad
            if dense.bias is not None:
                grads[f"layers.{i}.bias"] = dense.bias_grad
        return grads


def loss_and_gradients(scenario, params=None, inputs=None, targets=None):
    """Loss and ∂L/∂params (canonical names) on a batch.

    params, inputs, targets default to the scenario's own; pass them to evaluate
    elsewhere (a training step, a finite-difference probe). Nothing is changed.
    """
    source = scenario if params is None else scenario.with_parameters(params)
    x = np.array(scenario.inputs if inputs is None else inputs, copy=True)       # (n, in)
    t = scenario.targets if targets is None else targets                          # (n, out)
    net = Network(source.layers)
    _, _, loss, _, _ = net.forward_backward(x, t, scenario.loss)
    return loss, net.gradients()


def loss_value(scenario, params, inputs, targets):
    """The loss alone at ``params`` on a batch: the function finite differences probe."""
    net = Network(scenario.with_parameters(params).layers)
    _, acts = net.forward(np.array(inputs, copy=True))
    return LOSSES[scenario.loss][0](acts[-1], targets)


def run_step(scenario, kinks=None):
    """One forward pass, backward pass and SGD step; returns the canonical trace.

    kinks: None for the reference's own derivatives, or {layer index: derivative at z = 0}.
    """
    net = Network(scenario.layers, kinks)
    x = np.array(scenario.inputs, copy=True)                 # (n, in)
    t = scenario.targets                                     # (n, out)

    zs, acts, loss, dzs, dx = net.forward_backward(x, t, scenario.loss)
    grads = net.gradients()
    updated = sgd(net.parameters(), grads, scenario.lr)

    trace = {}
    for i, (z, a) in enumerate(zip(zs, acts)):
        trace[f"layers.{i}.z"] = z
        trace[f"layers.{i}.a"] = a
    trace["output"] = acts[-1]
    trace["loss"] = np.asarray(loss)
    for i, dz in enumerate(dzs):
        trace[f"layers.{i}.dz"] = dz
    for name, grad in grads.items():
        trace[f"grad.{name}"] = grad
    trace["grad.inputs"] = dx
    for name, value in updated.items():
        trace[f"updated.{name}"] = value
    return trace
