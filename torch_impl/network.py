"""The Scenario's network in idiomatic PyTorch; every gradient comes from autograd.

Same names and order as ``reference/network.py``. nn.Linear stores its weight
as (out, in), the canonical layout, so weights are copied in unchanged.
"""

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def activation_fn(name, negative_slope=0.01):
    """torch's own function for each activation name."""
    return {
        "identity": lambda z: z,
        "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, negative_slope),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }[name]


def loss_fn(name):
    """torch's MSELoss with the reduction that matches each loss name."""
    return {
        "sse": lambda y, t: F.mse_loss(y, t, reduction="sum"),
        "half_sse": lambda y, t: 0.5 * F.mse_loss(y, t, reduction="sum"),
        "mse": lambda y, t: F.mse_loss(y, t, reduction="mean"),
    }[name]


class Network(nn.Module):
    """nn.Linear layers, each followed by its activation, built from a Scenario."""

    def __init__(self, layer_specs, dtype):
        super().__init__()
        self.linears = nn.ModuleList()
        self.activations = []
        for spec in layer_specs:
            out_features, in_features = spec.shape
            linear = nn.Linear(in_features, out_features, bias=spec.bias is not None, dtype=dtype)
            with torch.no_grad():   # torch.tensor copies: the scenario's arrays are never shared
                linear.weight.copy_(torch.tensor(spec.weight, dtype=dtype))
                if spec.bias is not None:
                    linear.bias.copy_(torch.tensor(spec.bias, dtype=dtype))
            self.linears.append(linear)
            self.activations.append(activation_fn(spec.activation, spec.negative_slope))

    def forward(self, x, retain_dz=False):
        """Returns ([z_0, …], [a_0, …]); with retain_dz each z keeps its grad so ∂L/∂z can be read."""
        zs, acts = [], []
        a = x
        for linear, activation in zip(self.linears, self.activations):
            z = linear(a)
            if retain_dz:
                z.retain_grad()
            a = activation(z)
            zs.append(z)
            acts.append(a)
        return zs, acts

    def named_canonical_parameters(self):
        """(canonical name, parameter) pairs, e.g. ("layers.0.weight", …)."""
        for i, linear in enumerate(self.linears):
            yield f"layers.{i}.weight", linear.weight
            if linear.bias is not None:
                yield f"layers.{i}.bias", linear.bias


@contextlib.contextmanager
def precision():
    """float32 matmuls in full IEEE float32 for the duration of a run, then the user's settings back.

    On this CPU nothing uses TF32 anyway; on a GPU, "highest" and fp32_precision "ieee"
    keep cuBLAS and cuDNN from silently computing float32 products in TF32.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (torch.get_float32_matmul_precision(), matmul.fp32_precision, cudnn.fp32_precision)
    torch.set_float32_matmul_precision("highest")
    matmul.fp32_precision = "ieee"
    cudnn.fp32_precision = "ieee"
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        matmul.fp32_precision, cudnn.fp32_precision = saved[1], saved[2]


def settings():
    """The precision settings in force now: (matmul precision, cuBLAS fp32_precision, cuDNN fp32_precision)."""
    return (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.fp32_precision,
            torch.backends.cudnn.fp32_precision)


def numpy(tensor):
    return tensor.detach().cpu().numpy().copy()


def run_step(scenario):
    """One forward pass, autograd backward pass and torch.optim.SGD step; the canonical trace."""
    with precision():
        return _run_step(scenario)


def _run_step(scenario):
    dtype = DTYPES[scenario.dtype]
    model = Network(scenario.layers, dtype)
    x = torch.tensor(scenario.inputs, dtype=dtype, requires_grad=True)   # (n, in)
    t = torch.tensor(scenario.targets, dtype=dtype)                      # (n, out)

    optimizer = torch.optim.SGD(model.parameters(), lr=scenario.lr)
    optimizer.zero_grad()
    zs, acts = model(x, retain_dz=True)
    loss = loss_fn(scenario.loss)(acts[-1], t)
    loss.backward()

    trace = {}
    for i, (z, a) in enumerate(zip(zs, acts)):
        trace[f"layers.{i}.z"] = numpy(z)
        trace[f"layers.{i}.a"] = numpy(a)
    trace["output"] = numpy(acts[-1])
    trace["loss"] = numpy(loss)
    for i, z in enumerate(zs):
        trace[f"layers.{i}.dz"] = numpy(z.grad)
    for name, param in model.named_canonical_parameters():
        trace[f"grad.{name}"] = numpy(param.grad)
    trace["grad.inputs"] = numpy(x.grad)

    optimizer.step()
    for name, param in model.named_canonical_parameters():
        trace[f"updated.{name}"] = numpy(param)
    return trace


def train(scenario, epochs=None):
    """SGD over the rows in file order with torch.optim.SGD; ``train.loss`` (E,) and ``trained.*``."""
    with precision():
        return _train(scenario, epochs)


def _train(scenario, epochs):
    dtype = DTYPES[scenario.dtype]
    epochs, batch_size = scenario.schedule(epochs)
    model = Network(scenario.layers, dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=scenario.lr)
    x_all = torch.tensor(scenario.inputs, dtype=dtype)
    t_all = torch.tensor(scenario.targets, dtype=dtype)
    batches = [(x_all[s:s + batch_size], t_all[s:s + batch_size]) for s in range(0, len(x_all), batch_size)]
    loss_of = loss_fn(scenario.loss)

    epoch_losses = torch.zeros(epochs, dtype=dtype)
    for epoch in range(epochs):
        step_losses = []
        for x, t in batches:
            optimizer.zero_grad()          # gradients accumulate in torch unless cleared
            _, acts = model(x)
            loss = loss_of(acts[-1], t)
            loss.backward()
            optimizer.step()
            step_losses.append(loss.detach())
        epoch_losses[epoch] = torch.stack(step_losses).mean()

    result = {"train.loss": numpy(epoch_losses)}
    for name, param in model.named_canonical_parameters():
        result[f"trained.{name}"] = numpy(param)
    return result
