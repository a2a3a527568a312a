"""The canonical trace: every value of one training step under its canonical name.

All three implementations end ``run_step`` with ``canonical_trace(values, updated)``,
so the names below are written once:

    layers.{i}.z, layers.{i}.a        forward, each (n, out_i)
    output, loss                      the last a, and the scalar loss
    layers.{i}.dz                     ∂L/∂z_i, (n, out_i)
    grad.layers.{i}.weight / .bias    ∂L/∂W_i (out_i, in_i) and ∂L/∂b_i (out_i,)
    grad.inputs                       ∂L/∂x, (n, in_0)
    updated.layers.{i}.weight / .bias the parameters after one SGD step
"""

from typing import NamedTuple

import numpy as np


class StepValues(NamedTuple):
    """What ``gradients(model, x, t, loss)`` returns in every implementation."""

    zs: list            # pre-activations z_i, each (n, out_i)
    activations: list   # a_i = f(z_i), each (n, out_i); the last is the output
    loss: object        # the scalar loss
    dzs: list           # ∂L/∂z_i, each (n, out_i)
    grads: dict         # ∂L/∂p under canonical names (the JAX mirror keeps the Flax layout until converted)
    input_grad: object  # ∂L/∂x, (n, in_0)


def canonical_trace(values, updated):
    """StepValues (canonical names, NumPy arrays) and the updated parameters -> the canonical trace dict."""
    trace = {}
    for i, (z, a) in enumerate(zip(values.zs, values.activations)):
        trace[f"layers.{i}.z"] = z
        trace[f"layers.{i}.a"] = a
    trace["output"] = values.activations[-1]
    trace["loss"] = np.asarray(values.loss)
    for i, dz in enumerate(values.dzs):
        trace[f"layers.{i}.dz"] = dz
    for name, grad in values.grads.items():
        trace[f"grad.{name}"] = grad
    trace["grad.inputs"] = values.input_grad
    for name, value in updated.items():
        trace[f"updated.{name}"] = value
    return trace
