"""Training: repeated SGD steps over the scenario's rows in file order, no shuffling.

An epoch visits every row once in batches of ``batch_size`` (1 is per-sample
SGD, as posts 001 and 003 do). An epoch's loss is the mean of its steps'
losses, each measured on the step's batch before that step's update.
"""

import numpy as np

from .gradcheck import central_differences
from .network import Network, loss_value
from .optim import sgd


def batches(n, batch_size):
    """Row slices of each step of one epoch, in file order."""
    return [slice(start, start + batch_size) for start in range(0, n, batch_size)]


def train(scenario, epochs=None, gradients="analytic", delta=1e-4):
    """Train from the scenario's weights; returns ``train.loss`` (E,) and ``trained.*`` parameters.

    gradients: "analytic" (the hand-derived backward pass) or "finite_difference"
    (central differences with step ``delta`` on copies of the weights, as post 001's first run).
    """
    epochs, batch_size = scenario.schedule(epochs)
    net = Network(scenario.layers)                     # copies the scenario's weights
    epoch_losses = np.zeros(epochs, dtype=scenario.dtype)
    for epoch in range(epochs):
        step_losses = []
        for rows in batches(scenario.inputs.shape[0], batch_size):
            x, t = np.array(scenario.inputs[rows]), scenario.targets[rows]
            if gradients == "analytic":
                loss = net.forward_backward(x, t, scenario.loss)[2]
                grads = net.gradients()
            elif gradients == "finite_difference":
                params = net.parameters()
                loss = loss_value(scenario, params, x, t)
                grads = central_differences(lambda p: loss_value(scenario, p, x, t), params, delta)
            else:
                raise ValueError(f"gradients must be 'analytic' or 'finite_difference', not {gradients!r}")
            net.set_parameters(sgd(net.parameters(), grads, scenario.lr))
            step_losses.append(loss)
        epoch_losses[epoch] = np.mean(np.array(step_losses, dtype=scenario.dtype))
    result = {"train.loss": epoch_losses}
    for name, value in net.parameters().items():
        result[f"trained.{name}"] = np.array(value, copy=True)
    return result
