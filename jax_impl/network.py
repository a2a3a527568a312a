"""The Scenario's network in idiomatic JAX: pure functions, jax.value_and_grad, optax, jit and lax.scan.

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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reference.registry import conv_pads
from reference.network import frozen
from reference.scenario import IGNORE_INDEX
from reference.trace import StepValues, canonical_trace, state_names

# name -> f(z); leaky_relu's takes the negative slope as its second argument
ACTIVATIONS = {
    "identity": lambda z: z,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),     # jax.nn.gelu's default is the tanh form
    "gelu_tanh": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": lambda z: jnp.where(z > 20, z, jax.nn.softplus(z)),  # torch's threshold: z itself above 20
    "softmax": jax.nn.softmax,      # over the last axis, each row
}


def cross_entropy(y, t, label_smoothing=0.0):
    """optax's softmax cross-entropy, one value per row (a sequence's steps are rows), averaged here (optax does not
    reduce); label smoothing is a separate optax step on one-hot labels, and integer labels take their own function.
    A step labelled torch's ignore_index (-100) counts in neither the sum nor the mean (optax has no ignore_index:
    the mask is written here)."""
    y = y.reshape(-1, y.shape[-1])
    if not jnp.issubdtype(t.dtype, jnp.integer):
        return jnp.mean(optax.softmax_cross_entropy(y, optax.smooth_labels(t.reshape(y.shape), label_smoothing)))
    t = t.reshape(-1)
    counted = t != IGNORE_INDEX
    labels = jnp.where(counted, t, 0)
    if label_smoothing:
        losses = optax.softmax_cross_entropy(y, optax.smooth_labels(jax.nn.one_hot(labels, y.shape[-1], dtype=y.dtype),
                                                                    label_smoothing))
    else:
        losses = optax.softmax_cross_entropy_with_integer_labels(y, labels)
    return jnp.sum(jnp.where(counted, losses, 0.0)) / jnp.sum(counted)


# name -> L(y, t); the two classification losses take logits, optax's functions averaged with jnp.mean
LOSSES = {
    "sse": lambda y, t: jnp.sum((y - t) ** 2),
    "half_sse": lambda y, t: 0.5 * jnp.sum((y - t) ** 2),
    "mse": lambda y, t: jnp.mean((y - t) ** 2),
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": lambda y, t: jnp.mean(optax.sigmoid_binary_cross_entropy(y, t)),
}


def conv(dimensions):
    """The conv layer for lax's dimension numbers, e.g. ("NHWC", "HWIO", "NHWC"): Flax's layouts. The pads are the
    scenario's per side; torch's padding="same" is written out as its pads, not as lax's "SAME", which differs at
    an even kernel (registry row same-padding-even-kernel)."""
    def apply(layer, x, o, buffers):
        pads = conv_pads(dict(o), layer["kernel"].shape[:-2])
        z = jax.lax.conv_general_dilated(x, layer["kernel"], window_strides=o["stride"], padding=pads,
                                         rhs_dilation=o["dilation"], feature_group_count=o["groups"],
                                         dimension_numbers=dimensions)
        return z + layer["bias"] if "bias" in layer else z
    return apply


def max_pool(layer, x, o, buffers):
    """lax.reduce_window with max over each (1, kH, kW, 1) window of the NHWC input ((1, k, 1) of NWC), padding
    as −∞."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *o["kernel_size"], 1), (1, *o["stride"], 1),
                                 ((0, 0), *o["padding"], (0, 0)))


def avg_pool(layer, x, o, buffers):
    """The window sums over the count: kH·kW, or with count_include_pad false the elements inside the input."""
    window, strides, pads = (1, *o["kernel_size"], 1), (1, *o["stride"], 1), ((0, 0), *o["padding"], (0, 0))
    sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
    if o["count_include_pad"]:
        return sums / (o["kernel_size"][0] * o["kernel_size"][1])
    inside = jax.lax.reduce_window(jnp.ones((1, *x.shape[1:3], 1), x.dtype), 0.0, jax.lax.add,
                                   window, strides, pads)
    return sums / inside


def flatten(layer, x, o, buffers):
    """torch's order: channels first. The NHWC (or NWC) input goes back to NCHW before the reshape; a Flax port that
    flattens NHWC as it is must permute the next Dense kernel's rows instead (registry row flatten-order)."""
    if x.ndim > 2:
        x = jnp.moveaxis(x, -1, 1)
    return x.reshape(x.shape[0], -1)


def layer_norm(layer, x, o, buffers):
    """Flax's LayerNorm over the last axis, as torch computes it: the variance as the mean of (x − mean)², Flax's
    use_fast_variance=False (its default, E[x²] − E[x]², cancels catastrophically when the mean is large: registry
    row layer-norm-variance), and torch's ε, given (Flax's default is 1e-6: registry row layer-norm-eps)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    z = (x - mean) * jax.lax.rsqrt(variance + o["eps"]) * layer["scale"]
    return z + layer["bias"] if "bias" in layer else z


def batch_norm(layer, x, o, buffers):
    """Flax's BatchNorm over the channels, the last axis of NHWC/NLC/(n, C): in training the batch's mean and biased
    variance over every other axis (use_running_average=False), in eval the running ones (use_running_average=True).
    ``running_statistics`` below moves the running ones, as Flax's mutable batch_stats collection does."""
    axes = tuple(range(x.ndim - 1))
    if o["training"]:
        mean = jnp.mean(x, axis=axes)
        variance = jnp.mean(jnp.square(x - mean), axis=axes)
    else:
        mean, variance = buffers["running_mean"], buffers["running_var"]
    z = (x - mean) * jax.lax.rsqrt(variance + o["eps"]) * layer["scale"]
    return z + layer["bias"] if "bias" in layer else z


def group_norm(layer, x, o, buffers):
    """Flax's GroupNorm over NHWC/NLC/(n, C), channels last: the channels split into num_groups groups (as torch's,
    consecutive channels), each group normalised over its channels and positions with the two-pass variance
    (use_fast_variance=False) and torch's ε, given (Flax's defaults: 32 groups, 1e-6: registry row
    group-norm-defaults)."""
    groups = o["num_groups"]
    view = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
    axes = tuple(range(1, view.ndim - 2)) + (view.ndim - 1,)            # positions and the group's channels
    mean = jnp.mean(view, axis=axes, keepdims=True)
    variance = jnp.mean(jnp.square(view - mean), axis=axes, keepdims=True)
    z = ((view - mean) * jax.lax.rsqrt(variance + o["eps"])).reshape(x.shape) * layer["scale"]
    return z + layer["bias"] if "bias" in layer else z


def embed(layer, x, o):
    """Flax's Embed, a lookup of each index's row; torch's padding_idx, which Flax's Embed lacks (registry row
    embedding-padding-idx), as a row whose gradient is stopped: it passes its value and takes no gradient."""
    table = layer["embedding"]
    if o["padding_idx"] is not None:
        row = o["padding_idx"] % table.shape[0]
        table = table.at[row].set(jax.lax.stop_gradient(table[row]))
    return jnp.take(table, x, axis=0)


def dense(layer, x):
    """Flax's Dense: x·kernel + bias over the last axis (every step of a sequence)."""
    return x @ layer["kernel"] + layer["bias"] if "bias" in layer else x @ layer["kernel"]


def attention(layer, x, o, buffers):
    """Flax's MultiHeadDotProductAttention as self-attention: q, k, v from their own (E, heads, head_dim) kernels
    (torch packs them into one in_proj_weight: registry row attention-weight-packing), softmax(q·kᵀ/√head_dim) over
    the steps each step may attend to (causal: steps ≤ t; Flax's mask polarity, True = may attend: registry row
    attention-mask-polarity), then the out kernel (heads, head_dim, E). Written out rather than
    jax.nn.dot_product_attention, which computes the softmax in float32 whatever the dtype (registry row
    attention-softmax-precision)."""
    def project(name):
        p = layer[name]
        return jnp.einsum("nte,ehd->nthd", x, p["kernel"]) + (p["bias"] if "bias" in p else 0.0)

    q, k, v = project("query"), project("key"), project("value")             # (n, T, heads, head_dim)
    logits = jnp.einsum("nthd,nshd->nhts", q, k) / jnp.sqrt(q.shape[-1]).astype(x.dtype)
    steps = x.shape[1]
    allowed = jnp.tril(jnp.ones((steps, steps), bool)) if o["causal"] else None
    weights = jax.nn.softmax(logits, axis=-1, where=allowed)                # (n, heads, T, T)
    out = jnp.einsum("nhts,nshd,hde->nte", weights, v, layer["out"]["kernel"])
    return out + layer["out"]["bias"] if "bias" in layer["out"] else out


def transformer_encoder_layer(layer, x, o, buffers):
    """torch's nn.TransformerEncoderLayer from Flax's parts (LayerNorm, attention, Dense), dropout 0: post-LN
    y = norm1(x + attn(x)), z = norm2(y + ff(y)); pre-LN (norm_first) y = x + attn(norm1(x)), z = y + ff(norm2(y))."""
    def norm(name, x):
        return layer_norm(layer[name], x, {"eps": o["layer_norm_eps"]}, buffers)

    def attend(x):
        return attention(layer["self_attn"], x, o, buffers)

    def feedforward(x):
        return dense(layer["linear2"], ACTIVATIONS[o["feedforward_activation"]](dense(layer["linear1"], x)))

    if o["norm_first"]:
        y = x + attend(norm("norm1", x))
        return y + feedforward(norm("norm2", y))
    y = norm("norm1", x + attend(x))
    return norm("norm2", y + feedforward(y))


def rnn_cell(layer, x, h, c, o):
    """Flax's SimpleCell layout: h = f(x·i + h·h), i and h each with their bias (torch's two)."""
    a = dense(layer["i"], x) + dense(layer["h"], h)
    return (jnp.tanh(a) if o["nonlinearity"] == "tanh" else jax.nn.relu(a)), c


def lstm_cell(layer, x, h, c, o):
    """Flax's LSTMCell layout, one dense per gate on the input (ii, if, ig, io) and on the hidden state (hi … ho):
    c = f⊙c + i⊙g, h = o⊙tanh(c)."""
    gate = lambda name, f: f(dense(layer[f"i{name}"], x) + dense(layer[f"h{name}"], h))   # noqa: E731
    i, f, g, out = gate("i", jax.nn.sigmoid), gate("f", jax.nn.sigmoid), gate("g", jnp.tanh), gate("o", jax.nn.sigmoid)
    c = f * c + i * g
    return out * jnp.tanh(c), c


def gru_cell(layer, x, h, c, o):
    """Flax's GRUCell layout (ir, iz, in on the input; hr, hz, hn on the hidden state), torch's and Flax's reset gate
    alike, after the hidden matmul (registry row gru-reset-gate): n = tanh(x·in + r⊙(h·hn))."""
    r = jax.nn.sigmoid(dense(layer["ir"], x) + dense(layer["hr"], h))
    z = jax.nn.sigmoid(dense(layer["iz"], x) + dense(layer["hz"], h))
    n = jnp.tanh(dense(layer["in"], x) + r * dense(layer["hn"], h))
    return (1.0 - z) * n + z * h, c


def recurrent(cell):
    """A cell scanned over the steps with lax.scan from h_0 (and c_0) given, or 0s -> every h_t, (n, T, H)."""
    def apply(layer, x, o, buffers):
        hidden = next(iter(layer.values()))["kernel"].shape[-1]
        zeros = jnp.zeros((x.shape[0], hidden), x.dtype)

        def step(carry, x_t):
            h, c = cell(layer, x_t, *carry, o)
            return (h, c), h

        start = (buffers.get("h0", zeros), buffers.get("c0", zeros))
        _, hs = jax.lax.scan(step, start, jnp.swapaxes(x, 0, 1))          # over T: (T, n, H)
        return jnp.swapaxes(hs, 0, 1)
    return apply


def running_statistics(model, x, acts):
    """Each layer's buffers after a forward pass from x with activations ``acts``: a batch norm in training moves its
    running statistics by torch's momentum m (the batch's share; Flax's ``momentum`` is the running value's share,
    1 − m: registry row batch-norm-momentum) toward the batch's mean and *unbiased* variance (ddof=1, as torch)."""
    updated = []
    for feed, buffers, (kind, options, _, _) in zip([x] + acts[:-1], model.buffers, model.layers):
        o = dict(options)
        if "running_mean" in buffers and o["training"]:
            axes, m = tuple(range(feed.ndim - 1)), o["momentum"]
            buffers = dict(buffers, running_mean=(1 - m) * buffers["running_mean"] + m * jnp.mean(feed, axis=axes),
                           running_var=(1 - m) * buffers["running_var"] + m * jnp.var(feed, axis=axes, ddof=1))
        updated.append(buffers)
    return updated


# name -> (params, x, hyperparameters, buffers) -> z, over Flax's NHWC/NWC layouts (reference.registry.LAYER_TYPES)
LAYERS = {
    "embedding": lambda layer, x, o, buffers: embed(layer, x, o),
    "linear": lambda layer, x, o, buffers: dense(layer, x),
    "conv1d": conv(("NWC", "WIO", "NWC")),
    "conv2d": conv(("NHWC", "HWIO", "NHWC")),
    "max_pool1d": max_pool,
    "max_pool2d": max_pool,
    "avg_pool2d": avg_pool,
    "flatten": flatten,
    "dropout": lambda layer, x, o, buffers: x * buffers["mask"] / (1.0 - o["p"]),
    "layer_norm": layer_norm,
    "batch_norm1d": batch_norm,
    "batch_norm2d": batch_norm,
    "group_norm": group_norm,
    "multi_head_attention": attention,
    "transformer_encoder_layer": transformer_encoder_layer,
    "sequence_pool": lambda layer, x, o, buffers: x[:, -1] if o["mode"] == "last" else jnp.mean(x, axis=1),
    "rnn": recurrent(rnn_cell),
    "lstm": recurrent(lstm_cell),
    "gru": recurrent(gru_cell),
}


@functools.partial(jax.tree_util.register_dataclass, data_fields=["params", "buffers"], meta_fields=["layers"])
@dataclasses.dataclass(frozen=True)
class Model:
    """Flax-layout params (the pytree jax.grad differentiates), each layer's buffers (dropout's mask, NHWC; not
    differentiated) and each layer's (type, hyperparameters, activation, slope), static."""

    params: list            # [{"kernel": (in, out) or (kH, kW, in, out), "bias": (out,)}, {} for a pool, …]
    buffers: list           # [{}, {"mask": …}, {"running_mean": …, "running_var": …}, {"h0": …, "c0": …}, …]
    layers: tuple           # (("conv2d", (("stride", (1, 1)), …), "relu", 0.01), …)

    @classmethod
    def from_scenario(cls, scenario):
        """The scenario's weights as JAX arrays in its dtype (call inside ``precision``)."""
        params = jax.tree.map(lambda p: jnp.asarray(p, dtype=scenario.dtype), to_flax(scenario.layers))
        buffers = [{key: jnp.asarray(to_nhwc(value, scenario.sequence) if key == "mask" else value,
                                     dtype=scenario.dtype)
                    for key, value in spec.arrays() if key in ("mask", "running_mean", "running_var", "h0", "c0")}
                   for spec in scenario.layers]
        return cls(params, buffers, tuple((spec.type, spec.options, spec.activation, spec.negative_slope)
                                          for spec in scenario.layers))

    def replace(self, params, buffers=None):
        return Model(params, self.buffers if buffers is None else buffers, self.layers)


def forward(model, x, taps=None):
    """x (n, in) or NHWC (n, H, W, C) -> ([z_0, …], [a_0, …]).

    taps: None, or one zero array per layer, shaped like z_i and added to it. Their value
    changes nothing; differentiating the loss with respect to them gives ∂L/∂z_i.
    """
    zs, acts = [], []
    a = x
    for i, (layer, buffers, (kind, options, name, slope)) in enumerate(zip(model.params, model.buffers,
                                                                          model.layers)):
        z = LAYERS[kind](layer, a, dict(options), buffers)  # z_i = layer_i(a_{i-1}), e.g. a_{i-1}·K_i + b_i
        if taps is not None:
            z = z + taps[i]
        a = activation(name, slope)(z)                      # a_i = f(z_i)              same shape as z_i
        zs.append(z)
        acts.append(a)
    return zs, acts


def gradients(model, x, t, loss):
    """Forward, loss and jax.value_and_grad on one batch -> StepValues (grads in the Flax layout).

    One call differentiates with respect to the parameters, the zero taps (∂L/∂z_i)
    and the inputs (∂L/∂x).
    """
    def loss_of(params, taps, x):
        zs, acts = forward(model.replace(params), x, taps)
        return LOSSES[loss.name](acts[-1], t, **loss.options()), (zs, acts)

    taps = [jnp.zeros(z.shape, z.dtype) for z in jax.eval_shape(forward, model, x)[0]]
    indices = jnp.issubdtype(x.dtype, jnp.integer)          # an embedding's: no gradient
    (value, (zs, acts)), (grads, dzs, *dx) = jax.value_and_grad(loss_of, argnums=(0, 1) if indices else (0, 1, 2),
                                                               has_aux=True)(model.params, taps, x)
    return StepValues(zs, acts, value, dzs, grads, dx[0] if dx else None)


def sgd(o):
    """torch's SGD in optax: L2 decay added to the gradient, then the momentum trace, then −lr.
    optax.trace starts its buffer at 0, so its first step gives g, as torch's; torch's dampening τ
    (b ← μ·b + (1 − τ)·g after the first step) has no optax counterpart: ``dampened_trace`` below."""
    momentum = (dampened_trace(o.momentum, o.dampening) if o.dampening
                else optax.trace(decay=o.momentum, nesterov=o.nesterov))
    return optax.chain(coupled_decay(o), momentum if o.momentum else optax.identity(), optax.scale(-o.lr))


def rmsprop(o):
    """torch's RMSprop in optax: eps *outside* the square root (optax's default puts it inside), the
    decay rate α given explicitly (optax's default is 0.9, torch's 0.99), momentum as a trace before −lr."""
    scale = optax.scale_by_stddev if o.centered else optax.scale_by_rms
    return optax.chain(coupled_decay(o), scale(decay=o.alpha, eps=o.eps, initial_scale=0.0, eps_in_sqrt=False),
                       optax.trace(decay=o.momentum) if o.momentum else optax.identity(), optax.scale(-o.lr))


def adagrad(o):
    """torch's Adagrad in optax terms: optax.scale_by_rss puts eps inside the root and starts the sum at 0.1, so the
    sum of squares is written here (``sum_of_squares``, torch's g/(√s + ε)), then −lr/(1 + (t − 1)·lr_decay)."""
    def init(params):
        return optax.ScaleByRssState(jax.tree.map(lambda p: jnp.full_like(p, o.initial_accumulator_value), params))

    def update_fn(updates, state, params=None):
        total = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
        return (jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + o.eps), updates, total),
                optax.ScaleByRssState(total))

    return optax.chain(coupled_decay(o), optax.GradientTransformation(init, update_fn),
                       optax.scale_by_schedule(lambda count: -o.lr / (1.0 + count * o.lr_decay)))


# name -> the optax GradientTransformation for the scenario's Optimizer, every hyperparameter explicit
OPTIMIZERS = {
    "sgd": sgd,
    # Adam's weight decay is an L2 term (coupled): added to the gradient *before* the moments
    "adam": lambda o: optax.chain(coupled_decay(o),
                                  optax.scale_by_adam(b1=o.betas[0], b2=o.betas[1], eps=o.eps, eps_root=0.0),
                                  optax.scale(-o.lr)),
    # AdamW's is decoupled: −lr·λ·p beside the Adam step (optax.adamw's default λ is 1e-4, torch's 1e-2)
    "adamw": lambda o: optax.adamw(learning_rate=o.lr, b1=o.betas[0], b2=o.betas[1], eps=o.eps, eps_root=0.0,
                                   weight_decay=o.weight_decay),
    "rmsprop": rmsprop,
    "adagrad": adagrad,
}


def update(params, grads, state, optimizer):
    """One optax step -> (new params, new optimizer state); changes nothing. state None: a fresh one."""
    transformation = OPTIMIZERS[optimizer.name](optimizer)
    if state is None:
        state = transformation.init(params)
    updates, state = transformation.update(grads, state, params)
    return optax.apply_updates(params, updates), state


def run_step(scenario):
    """One forward pass, jax.value_and_grad backward pass and optax step -> the canonical trace."""
    with precision(scenario.dtype):
        model = Model.from_scenario(scenario)
        x, t = arrays(scenario)                             # (n, in), (n, out) or (n,) class indices
        values, updated, state, buffers = step(model, x, t, scenario.criterion, scenario.optimizer)
        return canonical_trace(numpy(canonical_values(values, scenario.sequence), scenario.dtype),
                               numpy({**canonical(updated), **canonical_buffers(buffers)}, scenario.dtype),
                               numpy(optimizer_state(state), scenario.dtype))


@functools.partial(jax.jit, static_argnames=("loss", "optimizer"))
def step(model, x, t, loss, optimizer):
    """gradients, then update, compiled into one XLA program; the batch norms' running statistics moved."""
    values = gradients(model, x, t, loss)
    return (values,) + update(model.params, values.grads, None, optimizer) + (
        running_statistics(model, x, values.activations),)


def train(scenario, epochs=None):
    """optax over the rows in file order, one jitted lax.scan -> ``train.loss`` (epochs,), ``trained.*``
    and the optimizer's state."""
    with precision(scenario.dtype):
        epochs, batch_size = scenario.schedule(epochs)
        model = Model.from_scenario(scenario)
        x, t = arrays(scenario)
        steps = x.shape[0] // batch_size
        x_batches, t_batches = x.reshape(steps, batch_size, *x.shape[1:]), t.reshape(steps, batch_size, *t.shape[1:])
        (params, state, buffers), losses = compiled_train_scan(scenario)(model, x_batches, t_batches,
                                                                         scenario.criterion, scenario.optimizer, epochs)
        result = {"train.loss": numpy(losses, scenario.dtype)}
        for name, value in {**canonical(params), **canonical_buffers(buffers)}.items():
            result[f"trained.{name}"] = numpy(value, scenario.dtype)
        for name, value in state_names(optimizer_state(state)).items():
            result[f"trained.{name}"] = numpy(value, scenario.dtype)
        return result


def train_scan(model, x_batches, t_batches, loss, optimizer, epochs):
    """lax.scan over epochs, and inside each over that epoch's batches -> ((params, state), epoch losses)."""
    def train_step(carry, batch):
        params, state, buffers = carry
        x, t = batch
        values = gradients(model.replace(params, buffers), x, t, loss)
        buffers = running_statistics(model.replace(params, buffers), x, values.activations)
        return update(params, values.grads, state, optimizer) + (buffers,), values.loss

    def epoch(carry, _):
        carry, step_losses = jax.lax.scan(train_step, carry, (x_batches, t_batches))
        return carry, jnp.mean(step_losses)

    state = OPTIMIZERS[optimizer.name](optimizer).init(model.params)
    return jax.lax.scan(epoch, (model.params, state, model.buffers), None, length=epochs)


# --- plumbing: layout, conversions, precision (not stages) --------------------------------

# One step of a tiny network runs once, in microseconds, so its compile time is all that matters: without
# LLVM's backend optimisation and XLA's fusion emitters, and with the module compiled in one piece rather
# than split for parallel code generation, it compiles several times faster. None of these options touches
# numerics: no fast-math, and precision is pinned separately. ``step`` above is jitted again with them, here,
# so that the stage reads as plain jax.jit: run_step and lowered_step call this one.
STEP_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                         "xla_cpu_use_fusion_emitters": False, "xla_cpu_parallel_codegen_split_count": 1}
step = jax.jit(step.__wrapped__, static_argnames=("loss", "optimizer"), compiler_options=STEP_COMPILER_OPTIONS)

TRAIN_STATIC = ("loss", "optimizer", "epochs")
TRAIN_SCAN = {"optimized": jax.jit(train_scan, static_argnames=TRAIN_STATIC),
              "quick": jax.jit(train_scan, static_argnames=TRAIN_STATIC, compiler_options=STEP_COMPILER_OPTIONS)}
QUICK_COMPILE_BELOW = 1_000_000      # parameters × rows: below it compiling is what a training run spends


def compiled_train_scan(scenario):
    """``train_scan`` jitted for this scenario's size: a small network compiles in half the time without
    LLVM's optimisation passes and runs a few milliseconds slower; a large one keeps them. Neither option
    is fast-math: both compute IEEE float32/float64, within the training tolerance of the others."""
    size = sum(value.size for value in scenario.parameters().values()) * scenario.inputs.shape[0]
    return TRAIN_SCAN["quick" if size < QUICK_COMPILE_BELOW else "optimized"]

def coupled_decay(o):
    """g ← g + λ·p, as torch adds it: only when λ ≠ 0 (0·p would turn an inf weight into a NaN)."""
    return optax.add_decayed_weights(o.weight_decay) if o.weight_decay else optax.identity()


class DampenedTraceState(NamedTuple):
    count: jax.Array        # steps taken
    trace: optax.Updates    # the momentum buffer


def dampened_trace(momentum, dampening):
    """torch's momentum with dampening τ as an optax transformation: b ← g on the first step, then
    μ·b + (1 − τ)·g. (optax.trace has no dampening: it is b ← μ·b + g from b = 0.)"""
    def init(params):
        return DampenedTraceState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        first = state.count == 0
        trace = jax.tree.map(lambda g, b: jnp.where(first, g, momentum * b + (1.0 - dampening) * g),
                             updates, state.trace)
        return trace, DampenedTraceState(state.count + 1, trace)

    return optax.GradientTransformation(init, update_fn)


# optax's state fields -> torch's buffer names (the canonical ones)
STATE_NAMES = {("ScaleByAdamState", "mu"): "exp_avg", ("ScaleByAdamState", "nu"): "exp_avg_sq",
               ("TraceState", "trace"): "momentum_buffer", ("DampenedTraceState", "trace"): "momentum_buffer",
               ("ScaleByRmsState", "nu"): "square_avg", ("ScaleByRssState", "sum_of_squares"): "sum",
               ("ScaleByRStdDevState", "mu"): "grad_avg", ("ScaleByRStdDevState", "nu"): "square_avg"}


def optimizer_state(state):
    """An optax state (any nesting of chains) -> {canonical parameter: {buffer: array}} in torch's names."""
    found = {}

    def visit(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for field in node._fields:
                buffer = STATE_NAMES.get((type(node).__name__, field))
                if buffer is None:
                    visit(getattr(node, field))
                    continue
                for name, value in canonical(getattr(node, field)).items():
                    found.setdefault(name, {})[buffer] = value
        elif isinstance(node, (tuple, list)):
            for item in node:
                visit(item)

    visit(state)
    return found


def activation(name, negative_slope=0.01):
    """``ACTIVATIONS[name]`` as a function of z, with the slope bound for leaky_relu."""
    if name == "leaky_relu":
        return functools.partial(ACTIVATIONS[name], negative_slope=negative_slope)
    return ACTIVATIONS[name]


# torch's weight layout -> Flax's kernel layout, by the weight's rank: the one place where layouts are converted
TO_FLAX_KERNEL = {1: (0,),              # a norm's (features,): Flax's "scale"          nn.LayerNorm -> nn.LayerNorm
                  2: (1, 0),            # (out, in) -> (in, out)                      nn.Linear -> nn.Dense
                  3: (2, 1, 0),         # (out, in, k) -> (k, in, out)                nn.Conv1d -> nn.Conv
                  4: (2, 3, 1, 0)}      # (out, in, kH, kW) -> (kH, kW, in, out)      nn.Conv2d -> nn.Conv (HWIO)


def to_flax(layers):
    """Canonical layer params -> Flax params.

    layers: LayerSpecs, or (weight or None, bias or None) pairs in torch's layout.
    Returns per layer a dict of NumPy arrays as the Flax module holds them: {"kernel": …[, "bias": (out,)]} (a
    norm's "scale"), attention's {"query", "key", "value": {"kernel": (E, heads, head_dim), "bias": (heads,
    head_dim)}, "out": {"kernel": (heads, head_dim, E), "bias": (E,)}}, a transformer block's {"self_attn", "linear1",
    "linear2", "norm1", "norm2"}; {} for a layer without parameters.
    """
    params = []
    for layer in layers:
        if isinstance(layer, tuple):
            params.append(dense_to_flax(*layer))
            continue
        named, o = layer.parameters(), layer.hyper
        if layer.type == "multi_head_attention":
            params.append(attention_to_flax(named, o["num_heads"]))
        elif layer.type == "transformer_encoder_layer":
            params.append({"self_attn": attention_to_flax({name.removeprefix("self_attn."): value for name, value
                                                           in named.items() if name.startswith("self_attn.")},
                                                          o["nhead"]),
                           **{child: dense_to_flax(named[f"{child}.weight"], named.get(f"{child}.bias"))
                              for child in ("linear1", "linear2", "norm1", "norm2")}})
        elif layer.type in GATES:
            params.append(recurrent_to_flax(named, GATES[layer.type]))
        elif layer.type == "embedding":                 # Flax's Embed keeps torch's (num, dim): no transpose
            params.append({"embedding": np.array(layer.weight, copy=True)})
        else:
            params.append(dense_to_flax(layer.weight, layer.bias))
    return params


# a recurrent cell's gates in torch's stacking order -> Flax's dense names on the input and on the hidden state
GATES = {"rnn": (("i",), ("h",)), "lstm": (("ii", "if", "ig", "io"), ("hi", "hf", "hg", "ho")),
         "gru": (("ir", "iz", "in"), ("hr", "hz", "hn"))}


def recurrent_to_flax(named, gates):
    """torch's stacked weight_ih_l0 (gates·H, F), weight_hh_l0 and biases -> one dense per gate, Flax's names, each
    {"kernel": (in, H), "bias": (H,)}. Flax's own cells hold one bias per gate (LSTMCell on the hidden side, GRUCell on
    the input side but for n): the mirror keeps torch's two, so that each has its gradient; export adds them
    (to_flax_cell; registry row lstm-gate-order)."""
    params = {}
    for side, names in zip(("ih", "hh"), gates):
        weights = np.split(np.asarray(named[f"weight_{side}_l0"]), len(names))
        biases = np.split(np.asarray(named[f"bias_{side}_l0"]), len(names)) if f"bias_{side}_l0" in named else None
        for k, name in enumerate(names):
            params[name] = {"kernel": weights[k].T.copy(), **({"bias": biases[k].copy()} if biases else {})}
    return params


# where Flax's own cells keep a gate's one bias: the mirror's two (torch's b_ih and b_hh) are added into it
FLAX_CELL_BIAS = {"rnn": {"i": ("i", "h")}, "lstm": {f"h{g}": (f"i{g}", f"h{g}") for g in "ifgo"},
                  "gru": {"ir": ("ir", "hr"), "iz": ("iz", "hz"), "in": ("in",), "hn": ("hn",)}}


def to_flax_cell(layer, kind):
    """The mirror's recurrent params -> what Flax's SimpleCell, LSTMCell or GRUCell holds: every kernel as it is, and
    one bias per gate where Flax has it, the sum of torch's two (the GRU's n gate keeps both: b_in on the input side,
    b_hn inside the reset). Lossy: torch's split of each sum is not recoverable (registry row lstm-gate-order)."""
    cell = {name: {"kernel": part["kernel"]} for name, part in layer.items()}
    if all("bias" in part for part in layer.values()):
        for name, parts in FLAX_CELL_BIAS[kind].items():
            cell[name]["bias"] = sum(np.asarray(layer[part]["bias"]) for part in parts)
    return cell


def recurrent_from_flax(layer, gates):
    """One dense per gate -> torch's stacked weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0."""
    named = {}
    for side, names in zip(("ih", "hh"), gates):
        named[f"weight_{side}_l0"] = np.concatenate([np.asarray(layer[name]["kernel"]).T for name in names])
        if "bias" in layer[names[0]]:
            named[f"bias_{side}_l0"] = np.concatenate([np.asarray(layer[name]["bias"]) for name in names])
    return named


def dense_to_flax(weight, bias):
    """A weight and bias in torch's layout -> {"kernel" (or a norm's "scale"): …, "bias": …}."""
    layer = {}
    if weight is not None:
        key = "scale" if np.ndim(weight) == 1 else "kernel"
        layer[key] = np.array(weight, copy=True).transpose(TO_FLAX_KERNEL[np.ndim(weight)])
    if bias is not None:
        assert weight is not None and np.shape(bias) == (np.shape(weight)[0],), (np.shape(bias), np.shape(weight))
        layer["bias"] = np.array(bias, copy=True)
    return layer


def attention_to_flax(named, heads):
    """torch's packed in_proj_weight (3E, E) = [W_q; W_k; W_v] and out_proj (E, E) -> Flax's query, key, value
    kernels (E, heads, head_dim) (W_qᵀ with its columns split per head) and out kernel (heads, head_dim, E)."""
    embed = named["out_proj.weight"].shape[0]
    params = {}
    for part, weight in zip(("query", "key", "value"), np.split(np.asarray(named["in_proj_weight"]), 3)):
        params[part] = {"kernel": weight.T.reshape(embed, heads, embed // heads).copy()}
    if "in_proj_bias" in named:
        for part, bias in zip(("query", "key", "value"), np.split(np.asarray(named["in_proj_bias"]), 3)):
            params[part]["bias"] = bias.reshape(heads, embed // heads).copy()
    params["out"] = {"kernel": np.asarray(named["out_proj.weight"]).T.reshape(heads, embed // heads, embed).copy()}
    if "out_proj.bias" in named:
        params["out"]["bias"] = np.array(named["out_proj.bias"], copy=True)
    return params


def attention_from_flax(layer):
    """Flax's query, key, value and out -> torch's {in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias}."""
    kernels = [np.asarray(layer[part]["kernel"]) for part in ("query", "key", "value")]
    named = {"in_proj_weight": np.concatenate([k.reshape(k.shape[0], -1).T for k in kernels])}
    if "bias" in layer["query"]:
        named["in_proj_bias"] = np.concatenate([np.asarray(layer[part]["bias"]).reshape(-1)
                                                for part in ("query", "key", "value")])
    out = np.asarray(layer["out"]["kernel"])
    named["out_proj.weight"] = out.reshape(-1, out.shape[-1]).T.copy()
    if "bias" in layer["out"]:
        named["out_proj.bias"] = np.array(layer["out"]["bias"], copy=True)
    return named


def from_flax(params):
    """Flax params -> per layer {torch's name: array} in torch's layout (NumPy)."""
    layers = []
    for layer in params:
        gates = next((gates for gates in GATES.values() if gates[0][0] in layer), None)
        if "embedding" in layer:
            layers.append({"weight": np.array(layer["embedding"], copy=True)})
        elif "query" in layer:
            layers.append(attention_from_flax(layer))
        elif gates:
            layers.append(recurrent_from_flax(layer, gates))
        elif "self_attn" in layer:
            named = {f"self_attn.{name}": value for name, value in attention_from_flax(layer["self_attn"]).items()}
            for child in ("linear1", "linear2", "norm1", "norm2"):
                named.update({f"{child}.{name}": value for name, value in dense_from_flax(layer[child]).items()})
            layers.append(named)
        else:
            layers.append(dense_from_flax(layer))
    return layers


def dense_from_flax(layer):
    """{"kernel" or "scale", "bias"} -> {"weight", "bias"} in torch's layout."""
    named = {}
    if "kernel" in layer or "scale" in layer:
        kernel = np.asarray(layer.get("kernel", layer.get("scale")))
        named["weight"] = kernel.transpose(np.argsort(TO_FLAX_KERNEL[kernel.ndim])).copy()
    if "bias" in layer:
        named["bias"] = np.array(layer["bias"], copy=True)
        assert "weight" in named and named["bias"].shape == (named["weight"].shape[0],), (named["bias"].shape,)
    return named


def canonical(params):
    """Flax params -> {canonical name: array}: ``layers.{i}.weight`` in torch's layout, ``layers.{i}.bias``,
    ``layers.{i}.self_attn.in_proj_weight`` …"""
    return {f"layers.{i}.{name}": value for i, layer in enumerate(from_flax(params)) for name, value in layer.items()}


def canonical_buffers(buffers):
    """Each layer's buffers -> {canonical name: array} of the batch norms' running statistics (the dropout masks are
    inputs, not state)."""
    return {f"layers.{i}.{key}": value for i, layer in enumerate(buffers) for key, value in layer.items()
            if key in ("running_mean", "running_var")}


def to_nhwc(x, sequence=False):
    """torch's NCHW (or NCL) -> Flax's NHWC (or NLC); (n, features) and a batch-first sequence (n, T, E) as they
    are (the same in both)."""
    return x if np.ndim(x) <= 2 or sequence else np.moveaxis(x, 1, -1)


def to_nchw(x, sequence=False):
    """Flax's NHWC (or NLC) -> torch's NCHW (or NCL), the canonical layout of every traced value."""
    return x if np.ndim(x) <= 2 or sequence else np.moveaxis(np.asarray(x), -1, 1)


def canonical_values(values, sequence=False):
    """StepValues computed over NHWC -> the same values in torch's layouts: NCHW activations, canonical params."""
    back = functools.partial(to_nchw, sequence=sequence)
    return values._replace(zs=[back(z) for z in values.zs], activations=[back(a) for a in values.activations],
                           dzs=[back(dz) for dz in values.dzs], grads=canonical(values.grads),
                           input_grad=None if values.input_grad is None else back(values.input_grad))


def arrays(scenario):
    """The scenario's inputs (NHWC for images) and targets as JAX arrays in its dtype (call inside ``precision``);
    class targets as the integer labels optax's integer-label cross-entropy takes."""
    if scenario.target_format == "indices":
        targets = jnp.asarray(scenario.class_indices(), dtype=jnp.int32)
    else:
        targets = jnp.asarray(scenario.targets, dtype=scenario.dtype)
    if scenario.indexed:                                    # an embedding's indices: integers, as Flax's Embed takes
        return jnp.asarray(scenario.inputs, dtype=jnp.int32), targets
    return jnp.asarray(to_nhwc(scenario.inputs, scenario.sequence), dtype=scenario.dtype), targets


def numpy(value, dtype):
    """JAX arrays (alone or inside lists, dicts and StepValues) -> NumPy copies, asserting the dtype."""
    if value is None:                                       # an embedding's inputs have no gradient
        return None
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
        return step.lower(Model.from_scenario(scenario), x, t, scenario.criterion, scenario.optimizer).as_text()


def loss_function(scenario):
    """(f, params): the scenario's loss as a function of its Flax-layout params, f(params) -> loss, from the
    same forward and LOSSES: what jax.test_util.check_grads differentiates. Call inside ``precision``."""
    model = Model.from_scenario(scenario)
    x, t = arrays(scenario)
    frozen_rows = {int(name.split(".")[1]): row for name, row in frozen(scenario).items()}

    def f(params):
        params = [dict(layer, embedding=layer["embedding"].at[frozen_rows[i]].set(model.params[i]["embedding"][
            frozen_rows[i]])) if i in frozen_rows else layer for i, layer in enumerate(params)]   # held: 0 by definition
        _, acts = forward(model.replace(params), x)
        return LOSSES[scenario.loss](acts[-1], t, **scenario.criterion.options())

    return f, model.params


def derivative_at_zero(activation_name, negative_slope, dtype):
    """d activation / dz at z = 0 by jax.grad, through the mirror's own activation: JAX's convention."""
    with precision(dtype):
        return float(jax.grad(activation(activation_name, negative_slope))(np.zeros((), dtype=dtype)))
