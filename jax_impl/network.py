"""The Scenario's network in idiomatic JAX: pure functions, jax.grad, a jitted step.

Same names and order as ``reference/network.py``. Parameters are a list of
dicts in the Flax layout, ``{"kernel": (in, out), "bias": (out,)}``; the two
converters below are the one place where the canonical (out, in) layout is
transposed. float64 scenarios run under ``jax.enable_x64(True)``, a scoped
context: the user's global JAX configuration is never changed.
"""

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np


# --- layout: canonical (out, in) <-> Flax kernel (in, out) -------------------

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


# A single step of a tiny network runs once, in microseconds, so its compile time is all that
# matters: without LLVM's backend optimisation and XLA's fusion emitters it compiles about 2.6x
# faster on this CPU (12 random architectures: 4.3 s -> 1.65 s). Neither option touches numerics:
# no fast-math, and precision is pinned separately (``precision`` below). Training keeps the
# defaults, since there the compiled loop runs for many steps.
STEP_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                         "xla_cpu_use_fusion_emitters": False}

# --- the network ------------------------------------------------------------

def activation_fn(name, negative_slope=0.01):
    """JAX's own function for each activation name."""
    return {
        "identity": lambda z: z,
        "relu": jax.nn.relu,
        "leaky_relu": lambda z: jax.nn.leaky_relu(z, negative_slope),
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
    }[name]


def loss_fn(name):
    """Each loss name as a function of (outputs, targets)."""
    return {
        "sse": lambda y, t: jnp.sum((y - t) ** 2),
        "half_sse": lambda y, t: 0.5 * jnp.sum((y - t) ** 2),
        "mse": lambda y, t: jnp.mean((y - t) ** 2),
    }[name]


def forward(params, activations, x, taps=None):
    """Returns ([z_0, …], [a_0, …]).

    taps: None, or one zero array per layer, shaped like z_i, added to z_i. Their
    value changes nothing; differentiating the loss with respect to them gives
    ∂L/∂z_i straight from jax.grad.
    """
    zs, acts = [], []
    a = x
    for i, (layer, activation) in enumerate(zip(params, activations)):
        z = a @ layer["kernel"]                              # (n, out)
        if taps is not None:
            z = z + taps[i]
        if "bias" in layer:
            z = z + layer["bias"]
        a = activation(z)
        zs.append(z)
        acts.append(a)
    return zs, acts


def sgd(params, grads, lr):
    """p ← p − lr·∂L/∂p over the whole pytree; returns new params."""
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)


@functools.lru_cache(maxsize=None)
def make_step(architecture, loss_name):
    """A jitted step for one architecture: ((name, slope), …) per layer, and the loss name."""
    activations = [activation_fn(name, slope) for name, slope in architecture]
    loss_of = loss_fn(loss_name)

    def loss(params, taps, x, t):
        zs, acts = forward(params, activations, x, taps)
        return loss_of(acts[-1], t), (zs, acts)

    @functools.partial(jax.jit, compiler_options=STEP_COMPILER_OPTIONS)
    def step(params, x, t, lr):
        taps = [jnp.zeros((x.shape[0], layer["kernel"].shape[1]), x.dtype) for layer in params]
        (value, (zs, acts)), (param_grads, tap_grads, input_grads) = jax.value_and_grad(
            loss, argnums=(0, 1, 2), has_aux=True
        )(params, taps, x, t)
        return zs, acts, value, tap_grads, param_grads, input_grads, sgd(params, param_grads, lr)

    return step


@functools.lru_cache(maxsize=None)
def make_train(architecture, loss_name, epochs):
    """A jitted training run: lax.scan over epochs, and inside each over that epoch's batches."""
    activations = [activation_fn(name, slope) for name, slope in architecture]
    loss_of = loss_fn(loss_name)

    def loss(params, x, t):
        _, acts = forward(params, activations, x)
        return loss_of(acts[-1], t)

    @jax.jit
    def train(params, x_batches, t_batches, lr):
        """x_batches: (steps, batch, in); returns (trained params, epoch losses (epochs,))."""
        def step(params, batch):
            value, grads = jax.value_and_grad(loss)(params, *batch)
            return sgd(params, grads, lr), value

        def epoch(params, _):
            params, step_losses = jax.lax.scan(step, params, (x_batches, t_batches))
            return params, jnp.mean(step_losses)

        return jax.lax.scan(epoch, params, None, length=epochs)

    return train


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


def numpy(array, dtype):
    result = np.array(array, copy=True)
    assert result.dtype == np.dtype(dtype), f"JAX computed in {result.dtype}, expected {dtype}"
    return result


def load_params(scenario):
    """The scenario's parameters as Flax-layout JAX arrays in its dtype (call inside ``precision``)."""
    return jax.tree.map(
        lambda p: jnp.asarray(p, dtype=scenario.dtype),
        to_flax([(spec.weight, spec.bias) for spec in scenario.layers]),
    )


def train(scenario, epochs=None):
    """SGD over the rows in file order, jitted and scanned; ``train.loss`` (E,) and ``trained.*``."""
    dtype = scenario.dtype
    epochs, batch_size = scenario.schedule(epochs)
    n = scenario.inputs.shape[0]
    architecture = tuple((spec.activation, spec.negative_slope) for spec in scenario.layers)
    with precision(dtype):
        x = jnp.asarray(scenario.inputs, dtype=dtype).reshape(n // batch_size, batch_size, -1)
        t = jnp.asarray(scenario.targets, dtype=dtype).reshape(n // batch_size, batch_size, -1)
        trained, losses = make_train(architecture, scenario.loss, epochs)(
            load_params(scenario), x, t, jnp.asarray(scenario.lr, dtype=dtype))
        result = {"train.loss": numpy(losses, dtype)}
        for name, weight, bias in _canonical(trained):
            result[f"trained.{name}.weight"] = numpy(weight, dtype)
            if bias is not None:
                result[f"trained.{name}.bias"] = numpy(bias, dtype)
    return result


def _step_and_arguments(scenario):
    """The jitted step for the scenario and its arguments (call inside ``precision``)."""
    dtype = scenario.dtype
    architecture = tuple((spec.activation, spec.negative_slope) for spec in scenario.layers)
    params = load_params(scenario)
    x = jnp.asarray(scenario.inputs, dtype=dtype)      # (n, in)
    t = jnp.asarray(scenario.targets, dtype=dtype)     # (n, out)
    lr = jnp.asarray(scenario.lr, dtype=dtype)
    return make_step(architecture, scenario.loss), (params, x, t, lr)


def lowered_step(scenario):
    """The StableHLO text of the step exactly as ``run_step`` compiles it: its dots show the precision."""
    with precision(scenario.dtype):
        step, arguments = _step_and_arguments(scenario)
        return step.lower(*arguments).as_text()


def run_step(scenario):
    """One forward pass, jax.grad backward pass and SGD step; the canonical trace."""
    dtype = scenario.dtype
    with precision(dtype):
        step, arguments = _step_and_arguments(scenario)
        zs, acts, loss, dzs, grads, dx, updated = step(*arguments)

        trace = {}
        for i, (z, a) in enumerate(zip(zs, acts)):
            trace[f"layers.{i}.z"] = numpy(z, dtype)
            trace[f"layers.{i}.a"] = numpy(a, dtype)
        trace["output"] = numpy(acts[-1], dtype)
        trace["loss"] = numpy(loss, dtype)
        for i, dz in enumerate(dzs):
            trace[f"layers.{i}.dz"] = numpy(dz, dtype)
        for (name, weight, bias) in _canonical(grads):
            trace[f"grad.{name}.weight"] = numpy(weight, dtype)
            if bias is not None:
                trace[f"grad.{name}.bias"] = numpy(bias, dtype)
        trace["grad.inputs"] = numpy(dx, dtype)
        for (name, weight, bias) in _canonical(updated):
            trace[f"updated.{name}.weight"] = numpy(weight, dtype)
            if bias is not None:
                trace[f"updated.{name}.bias"] = numpy(bias, dtype)
    return trace


def _canonical(params):
    """(``layers.i``, weight (out, in), bias or None) for each layer of Flax params."""
    for i, (weight, bias) in enumerate(from_flax(params)):
        yield f"layers.{i}", weight, bias
