"""The canonical trace: every value of one training step under its canonical name.

All three implementations end ``run_step`` with ``canonical_trace(values, updated, state)``,
so the names below are written once:

    layers.{i}.z, layers.{i}.a        forward, each (n, out_i)
    output, loss                      the last a, and the scalar loss
    layers.{i}.dz                     ∂L/∂z_i, (n, out_i)
    grad.layers.{i}.weight / .bias    ∂L/∂W_i (out_i, in_i) and ∂L/∂b_i (out_i,)
    grad.inputs                       ∂L/∂x, (n, in_0)
    state.layers.{i}.weight.{buffer}  the optimizer's state after the step, in torch's names
                                      (momentum_buffer, exp_avg, exp_avg_sq, square_avg, grad_avg)
    updated.layers.{i}.weight / .bias the parameters after one optimizer step
    updated.layers.{i}.running_mean / .running_var
                                      a batch norm's running statistics after the step's forward pass
                                      (torch's buffer names; moved only in training)
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
    input_grad: object  # ∂L/∂x, (n, in_0); None for integer inputs (an embedding's indices)


def state_names(state):
    """{parameter: {buffer: array}} -> {"state.{parameter}.{buffer}": array}. A step counter is left
    out: it is a count, the same in every framework by construction, not a value the math computes."""
    return {f"state.{name}.{buffer}": value for name, buffers in state.items()
            for buffer, value in buffers.items() if buffer != "step"}


def canonical_trace(values, updated, state):
    """StepValues (canonical names, NumPy arrays), the updated parameters and the optimizer's state
    ({parameter: {buffer: array}}) -> the canonical trace dict."""
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
    if values.input_grad is not None:                       # indices have none
        trace["grad.inputs"] = values.input_grad
    trace.update(state_names(state))
    for name, value in updated.items():
        trace[f"updated.{name}"] = value
    return trace
