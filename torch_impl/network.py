"""The Scenario's network in idiomatic PyTorch: nn.Linear, autograd and torch.optim.SGD.

The stages have the names and order of the NumPy reference (``backproof read``
prints them side by side). nn.Linear stores its weight as (out, in), the canonical
layout, so weights are copied in unchanged.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from reference.trace import StepValues, canonical_trace

# name -> the nn.Module class; leaky_relu's takes the negative slope
ACTIVATIONS = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}

# name -> L(y, t): F.mse_loss with the reduction each loss name needs
LOSSES = {
    "sse": lambda y, t: F.mse_loss(y, t, reduction="sum"),
    "half_sse": lambda y, t: 0.5 * F.mse_loss(y, t, reduction="sum"),
    "mse": lambda y, t: F.mse_loss(y, t, reduction="mean"),
}


class Model(nn.Module):
    """nn.Linear layers, each followed by its activation module, built from a Scenario."""

    def __init__(self, scenario):
        super().__init__()
        dtype = DTYPES[scenario.dtype]
        self.linears = nn.ModuleList()
        self.activations = nn.ModuleList()
        for spec in scenario.layers:
            out_features, in_features = spec.shape
            linear = nn.Linear(in_features, out_features, bias=spec.bias is not None, dtype=dtype)
            with torch.no_grad():       # torch.tensor copies: the scenario's arrays are never shared
                linear.weight.copy_(torch.tensor(spec.weight, dtype=dtype))
                if spec.bias is not None:
                    linear.bias.copy_(torch.tensor(spec.bias, dtype=dtype))
            self.linears.append(linear)
            self.activations.append(activation(spec.activation, spec.negative_slope))

    def canonical_parameters(self):
        """Canonical name -> nn.Parameter: ``layers.{i}.weight`` (out, in), ``layers.{i}.bias`` (out,)."""
        params = {}
        for i, linear in enumerate(self.linears):
            params[f"layers.{i}.weight"] = linear.weight
            if linear.bias is not None:
                params[f"layers.{i}.bias"] = linear.bias
        return params


def forward(model, x):
    """x (n, in) -> ([z_0, …], [a_0, …]); the last a is the network's output."""
    zs, acts = [], []
    a = x
    for linear, activation_module in zip(model.linears, model.activations):
        z = linear(a)                                       # z_i = a_{i-1}·W_iᵀ + b_i   (n, out_i)
        a = activation_module(z)                            # a_i = f(z_i)              (n, out_i)
        zs.append(z)
        acts.append(a)
    return zs, acts


def gradients(model, x, t, loss):
    """Forward, loss and autograd's backward pass on one batch -> StepValues.

    ``loss.backward()`` fills each parameter's ``.grad``; ``retain_grad()`` asks autograd
    to keep ∂L/∂z on the intermediate z as well, and x requires grad for ∂L/∂x.
    """
    model.zero_grad()                                       # .grad accumulates in torch unless cleared
    x = x.detach().requires_grad_(True)
    zs, acts = forward(model, x)
    for z in zs:
        z.retain_grad()
    value = LOSSES[loss](acts[-1], t)
    value.backward()
    grads = {name: param.grad for name, param in model.canonical_parameters().items()}
    return StepValues(zs, acts, value, [z.grad for z in zs], grads, x.grad)


def sgd(params, grads, lr):
    """p ← p − lr·∂L/∂p with torch.optim.SGD, in place on the nn.Parameters; returns them."""
    for name, param in params.items():
        param.grad = grads[name]
    torch.optim.SGD(params.values(), lr=lr).step()
    return params


def run_step(scenario):
    """One forward pass, autograd backward pass and torch.optim.SGD step -> the canonical trace."""
    with precision():
        model = Model(scenario)
        x, t = tensors(scenario)                            # (n, in), (n, out)
        values = gradients(model, x, t, scenario.loss)
        updated = sgd(model.canonical_parameters(), values.grads, scenario.lr)
        return canonical_trace(numpy(values), numpy(updated))


def train(scenario, epochs=None):
    """torch.optim.SGD over the rows in file order -> ``train.loss`` (epochs,) and ``trained.*``."""
    with precision():
        epochs, batch_size = scenario.schedule(epochs)
        model = Model(scenario)
        optimizer = torch.optim.SGD(model.parameters(), lr=scenario.lr)
        x_all, t_all = tensors(scenario)
        batches = [(x_all[s:s + batch_size], t_all[s:s + batch_size]) for s in range(0, len(x_all), batch_size)]
        step_losses = torch.zeros((epochs, len(batches)), dtype=x_all.dtype)
        for epoch in range(epochs):
            for step, (x, t) in enumerate(batches):
                optimizer.zero_grad()
                _, acts = forward(model, x)
                loss = LOSSES[scenario.loss](acts[-1], t)
                loss.backward()
                optimizer.step()
                step_losses[epoch, step] = loss.detach()
        result = {"train.loss": numpy(step_losses.mean(dim=1))}
        for name, param in model.canonical_parameters().items():
            result[f"trained.{name}"] = numpy(param)
        return result


# --- plumbing: dtypes, conversions, precision (not stages) --------------------------------

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def activation(name, negative_slope=0.01):
    """The activation module for a layer: ``ACTIVATIONS[name]``, with the slope for leaky_relu."""
    return ACTIVATIONS[name](negative_slope) if name == "leaky_relu" else ACTIVATIONS[name]()


def tensors(scenario):
    """The scenario's inputs and targets as tensors in its dtype (copies, never shared memory)."""
    dtype = DTYPES[scenario.dtype]
    return torch.tensor(scenario.inputs, dtype=dtype), torch.tensor(scenario.targets, dtype=dtype)


def numpy(value):
    """Tensors (alone or inside lists, dicts and StepValues) -> NumPy copies."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, StepValues):
        return StepValues(*(numpy(part) for part in value))
    if isinstance(value, dict):
        return {name: numpy(part) for name, part in value.items()}
    if isinstance(value, (list, tuple)):
        return [numpy(part) for part in value]
    return value


@contextlib.contextmanager
def precision():
    """float32 matmuls in full IEEE float32 for the duration of a run, then the user's settings back.

    On a CPU nothing uses TF32 anyway; on a GPU, "highest" and fp32_precision "ieee" keep
    cuBLAS and cuDNN from silently computing float32 products in TF32.
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
