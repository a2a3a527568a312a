"""The Scenario's network in idiomatic JAX: pure functions, jax.value_and_grad, jit and lax.scan.

The stages have the names and order of the NumPy reference (``backproof read`` prints
them side by side). Parameters are a list of dicts in the Flax layout,
``{"kernel": (in, out), "bias": (out,)}``; ``to_flax``/``from_flax`` below are the one
place where the canonical (out, in) layout is transposed. float64 scenarios run under
``jax.enable_x64(True)``, a scoped context: the user's global JAX configuration is
never changed.
"""

import contextlib
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from reference.trace import StepValues, canonical_trace

# name -> f(z); leaky_relu's takes the negative slope as its second argument
ACTIVATIONS = {
    "identity": lambda z: z,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}

# name -> L(y, t)
LOSSES = {
    "sse": lambda y, t: jnp.sum((y - t) ** 2),
    "half_sse": lambda y, t: 0.5 * jnp.sum((y - t) ** 2),
    "mse": lambda y, t: jnp.mean((y - t) ** 2),
}


@functools.partial(jax.tree_util.register_dataclass, data_fields=["params"], meta_fields=["activations"])
@dataclasses.dataclass(frozen=True)
class Model:
    """Flax-layout params (the pytree jax.grad differentiates) and each layer's (activation, slope), static."""

    params: list            # [{"kernel": (in, out), "bias": (out,)}, …]
    activations: tuple      # (("relu", 0.01), …)

    @classmethod
    def from_scenario(cls, scenario):
        """The scenario's weights as JAX arrays in its dtype (call inside ``precision``)."""
        params = jax.tree.map(lambda p: jnp.asarray(p, dtype=scenario.dtype),
                              to_flax([(spec.weight, spec.bias) for spec in scenario.layers]))
        return cls(params, tuple((spec.activation, spec.negative_slope) for spec in scenario.layers))


def forward(model, x, taps=None):
    """x (n, in) -> ([z_0, …], [a_0, …]).

    taps: None, or one zero array per layer, shaped like z_i and added to it. Their value
    changes nothing; differentiating the loss with respect to them gives ∂L/∂z_i.
    """
    zs, acts = [], []
    a = x
    for i, (layer, (name, slope)) in enumerate(zip(model.params, model.activations)):
        z = a @ layer["kernel"]                             # z_i = a_{i-1}·K_i + b_i    (n, out_i)
        if "bias" in layer:
            z = z + layer["bias"]
        if taps is not None:
            z = z + taps[i]
        a = activation(name, slope)(z)                      # a_i = f(z_i)              (n, out_i)
        zs.append(z)
        acts.append(a)
    return zs, acts


def gradients(model, x, t, loss):
    """Forward, loss and jax.value_and_grad on one batch -> StepValues (grads in the Flax layout).

    One call differentiates with respect to the parameters, the zero taps (∂L/∂z_i)
    and the inputs (∂L/∂x).
    """
    def loss_of(params, taps, x):
        zs, acts = forward(Model(params, model.activations), x, taps)
        return LOSSES[loss](acts[-1], t), (zs, acts)

    taps = [jnp.zeros((x.shape[0], layer["kernel"].shape[1]), x.dtype) for layer in model.params]
    (value, (zs, acts)), (grads, dzs, dx) = jax.value_and_grad(loss_of, argnums=(0, 1, 2), has_aux=True)(
        model.params, taps, x)
    return StepValues(zs, acts, value, dzs, grads, dx)


def sgd(params, grads, lr):
    """p ← p − lr·∂L/∂p over the whole pytree; returns new params, changes nothing."""
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)


def run_step(scenario):
    """One forward pass, jax.value_and_grad backward pass and SGD step -> the canonical trace."""
    with precision(scenario.dtype):
        model = Model.from_scenario(scenario)
        x, t = arrays(scenario)                             # (n, in), (n, out)
        values, updated = step(model, x, t, scenario.loss, scenario.lr)
        values = values._replace(grads=canonical(values.grads))
        return canonical_trace(numpy(values, scenario.dtype), numpy(canonical(updated), scenario.dtype))


# One step of a tiny network runs once, in microseconds, so its compile time is all that matters: without
# LLVM's backend optimisation and XLA's fusion emitters it compiles several times faster. Neither option
# touches numerics: no fast-math, and precision is pinned separately.
STEP_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                         "xla_cpu_use_fusion_emitters": False}


@functools.partial(jax.jit, static_argnames="loss", compiler_options=STEP_COMPILER_OPTIONS)
def step(model, x, t, loss, lr):
    """gradients, then sgd, compiled into one XLA program."""
    values = gradients(model, x, t, loss)
    return values, sgd(model.params, values.grads, lr)


def train(scenario, epochs=None):
    """SGD over the rows in file order, one jitted lax.scan -> ``train.loss`` (epochs,) and ``trained.*``."""
    with precision(scenario.dtype):
        epochs, batch_size = scenario.schedule(epochs)
        model = Model.from_scenario(scenario)
        x, t = arrays(scenario)
        steps = x.shape[0] // batch_size
        x_batches, t_batches = x.reshape(steps, batch_size, -1), t.reshape(steps, batch_size, -1)
        params, losses = train_scan(model, x_batches, t_batches, scenario.loss, scenario.lr, epochs)
        result = {"train.loss": numpy(losses, scenario.dtype)}
        for name, value in canonical(params).items():
            result[f"trained.{name}"] = numpy(value, scenario.dtype)
        return result


@functools.partial(jax.jit, static_argnames=("loss", "epochs"))
def train_scan(model, x_batches, t_batches, loss, lr, epochs):
    """lax.scan over epochs, and inside each over that epoch's batches -> (params, epoch losses)."""
    def train_step(params, batch):
        x, t = batch
        values = gradients(Model(params, model.activations), x, t, loss)
        return sgd(params, values.grads, lr), values.loss

    def epoch(params, _):
        params, step_losses = jax.lax.scan(train_step, params, (x_batches, t_batches))
        return params, jnp.mean(step_losses)

    return jax.lax.scan(epoch, model.params, None, length=epochs)


# --- plumbing: layout, conversions, precision (not stages) --------------------------------

def activation(name, negative_slope=0.01):
    """``ACTIVATIONS[name]`` as a function of z, with the slope bound for leaky_relu."""
    if name == "leaky_relu":
        return functools.partial(ACTIVATIONS[name], negative_slope=negative_slope)
    return ACTIVATIONS[name]


def to_flax(layers):
    """Canonical layer params -> Flax params.

    layers: a list of (weight (out, in), bias (out,) or None) pairs.
    Returns a list of {"kernel": (in, out)[, "bias": (out,)]} dicts of NumPy arrays.
    """
    params = []
    for weight, bias in layers:
        out_features, in_features = weight.shape
        layer = {"kernel": np.array(weight, copy=True).T}
        assert layer["kernel"].shape == (in_features, out_features)
        if bias is not None:
            assert np.shape(bias) == (out_features,), (np.shape(bias), out_features)
            layer["bias"] = np.array(bias, copy=True)
        params.append(layer)
    return params


def from_flax(params):
    """Flax params -> a list of canonical (weight (out, in), bias or None) pairs, as NumPy arrays."""
    layers = []
    for layer in params:
        kernel = np.asarray(layer["kernel"])
        in_features, out_features = kernel.shape
        weight = kernel.T.copy()
        assert weight.shape == (out_features, in_features)
        bias = None
        if "bias" in layer:
            bias = np.array(layer["bias"], copy=True)
            assert bias.shape == (out_features,), (bias.shape, out_features)
        layers.append((weight, bias))
    return layers


def canonical(params):
    """Flax params -> {canonical name: array}: ``layers.{i}.weight`` (out, in), ``layers.{i}.bias``."""
    named = {}
    for i, (weight, bias) in enumerate(from_flax(params)):
        named[f"layers.{i}.weight"] = weight
        if bias is not None:
            named[f"layers.{i}.bias"] = bias
    return named


def arrays(scenario):
    """The scenario's inputs and targets as JAX arrays in its dtype (call inside ``precision``)."""
    return jnp.asarray(scenario.inputs, dtype=scenario.dtype), jnp.asarray(scenario.targets, dtype=scenario.dtype)


def numpy(value, dtype):
    """JAX arrays (alone or inside lists, dicts and StepValues) -> NumPy copies, asserting the dtype."""
    if isinstance(value, StepValues):
        return StepValues(*(numpy(part, dtype) for part in value))
    if isinstance(value, dict):
        return {name: numpy(part, dtype) for name, part in value.items()}
    if isinstance(value, (list, tuple)):
        return [numpy(part, dtype) for part in value]
    result = np.array(value, copy=True)
    assert result.dtype == np.dtype(dtype), f"JAX computed in {result.dtype}, expected {dtype}"
    return result


@contextlib.contextmanager
def precision(dtype):
    """The context every run computes in, scoped (the user's global JAX config is never changed):

    - x64 only for float64 (``jax.enable_x64(True)``);
    - matmuls at the highest precision (``jax.default_matmul_precision("highest")``), so
      that on a GPU or TPU float32 dots are not silently done in TF32 or bfloat16 passes.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.default_matmul_precision("highest"))
        if dtype == "float64":
            stack.enter_context(jax.enable_x64(True))
        yield


def lowered_step(scenario):
    """The StableHLO text of the step exactly as ``run_step`` compiles it: its dots show the precision."""
    with precision(scenario.dtype):
        x, t = arrays(scenario)
        return step.lower(Model.from_scenario(scenario), x, t, scenario.loss, scenario.lr).as_text()
