"""One step traced end to end, and whole training runs.

Training is repeated optimizer steps over the scenario's rows in file order, no shuffling.
An epoch visits every row once in batches of ``batch_size`` (1 is per-sample SGD, as
posts 001 and 003 do). An epoch's loss is the mean of its steps' losses, each measured
on the step's batch before that step's update.
"""

import numpy as np

from .network import Model, gradients
from .optim import update
from .trace import canonical_trace, state_names


def run_step(scenario):
    """One forward pass, hand-derived backward pass and optimizer step -> the canonical trace."""
    model = Model(scenario)
    x, t = np.array(scenario.inputs), scenario.targets          # (n, in), (n, out); x is a writable copy
    values = gradients(model, x, t, scenario.criterion)
    updated, state = update(model.parameters(), values.grads, {}, scenario.optimizer)
    return canonical_trace(values, {**updated, **model.buffers()}, state)


def train(scenario, epochs=None):
    """Train from the scenario's weights -> ``train.loss`` (epochs,), ``trained.*`` parameters and
    ``trained.state.*``, the optimizer's state at the end."""
    epochs, batch_size = scenario.schedule(epochs)
    model = Model(scenario)
    batches = [(np.array(scenario.inputs[s:s + batch_size]), scenario.targets[s:s + batch_size])
               for s in range(0, scenario.inputs.shape[0], batch_size)]
    step_losses, state = [], {}
    for epoch in range(epochs):
        for x, t in batches:
            values = gradients(model, x, t, scenario.criterion)
            params, state = update(model.parameters(), values.grads, state, scenario.optimizer)
            model.set_parameters(params)
            step_losses.append(values.loss)
    step_losses = np.array(step_losses, dtype=scenario.dtype).reshape(epochs, len(batches))
    result = {"train.loss": step_losses.mean(axis=1, dtype=scenario.dtype)}
    for name, value in {**model.parameters(), **model.buffers()}.items():
        result[f"trained.{name}"] = np.array(value, copy=True)
    for name, value in state_names(state).items():
        result[f"trained.{name}"] = value
    return result
