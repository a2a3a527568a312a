"""Proof that the harness catches bugs: realistic mistakes planted in the NumPy reference.

    make mutants        # python -m tools.mutations: the table docs/evidence.md shows

Each mutant replaces one function or method of ``reference`` for the duration
of a check (nothing on disk is edited), then ``check_scenario`` runs every
built-in scenario in all three frameworks. For each scenario the mutant says
where its bug must surface, the *first* tensor in canonical order that it
corrupts, or None when the scenario cannot show it (a sigmoid bug in a network
without sigmoid). The harness passes the test when it fails exactly the
scenarios that can show the bug, at exactly that tensor, and passes the rest.
"""

import sys
from dataclasses import dataclass

import numpy as np

import reference
from reference import activations, layers, losses, optim

from backproof.check import check_scenario
from backproof.kink_conventions import exact_kinks
from backproof.scenario_file import builtin_names, load


@dataclass(frozen=True)
class Mutant:
    id: str
    bug: str
    apply: object       # apply(patch, scenario): calls patch.setattr / patch.setitem, undone afterwards
    expected: object    # expected(scenario, clean trace) -> the first corrupted tensor, or None


class Patch:
    """setattr / setitem that remember the old values; ``undo`` puts them back."""

    def __init__(self):
        self._undo = []

    def setattr(self, target, name, value):
        self._undo.append((setattr, target, name, getattr(target, name)))
        setattr(target, name, value)

    def setitem(self, mapping, key, value):
        self._undo.append((type(mapping).__setitem__, mapping, key, mapping[key]))
        mapping[key] = value

    def undo(self):
        while self._undo:
            restore, target, key, value = self._undo.pop()
            restore(target, key, value)


# --- where a bug surfaces, read off the scenario and its clean trace -----------------------

def _top_layer(scenario, keep):
    """The highest layer index i with keep(i, spec), or None (backward runs from the top down)."""
    found = [i for i, spec in enumerate(scenario.layers) if keep(i, spec)]
    return max(found) if found else None


def _dz_of_top(activation_names):
    """The dz of the topmost layer followed by one of these activations; a transformer block whose feed-forward
    applies one inside corrupts the dz beneath it (its own dz is computed above the mistake)."""
    def expected(scenario, clean):
        found = [(i, f"layers.{i}.dz") for i, spec in enumerate(scenario.layers) if spec.activation in activation_names]
        found += [(i - 1, f"layers.{i - 1}.dz") for i, spec in enumerate(scenario.layers)
                  if spec.type == "transformer_encoder_layer" and spec.hyper["feedforward_activation"] in
                  activation_names and i > 0]
        return max(found)[1] if found else None
    return expected


def _bias_grad_of_top(needs_batch):
    def expected(scenario, clean):
        if needs_batch and scenario.inputs.shape[0] < 2:
            return None
        i = _top_layer(scenario, lambda i, spec: spec.bias is not None
                       and np.any(clean[f"grad.layers.{i}.bias"] != 0))
        return None if i is None else f"grad.layers.{i}.bias"
    return expected


# --- the bugs --------------------------------------------------------------------------------

def _relu_grad_one_at_zero(patch, scenario):
    patch.setitem(activations.ACTIVATIONS, "relu", (activations.relu, lambda z: (z >= 0).astype(z.dtype)))


def _relu_kink_expected(scenario, clean):
    kinks = exact_kinks(scenario, {"numpy": clean})
    relu = [i for i in kinks if scenario.layers[i].activation == "relu"]
    return f"layers.{max(relu)}.dz" if relu else None


def _derivative_at_output(patch, scenario):
    for name in activations.ELEMENTWISE:                        # softmax's pair is a Jacobian product, not f'
        fn, fn_grad = activations.ACTIVATIONS[name]

        def at_output(z, *extra, fn=fn, fn_grad=fn_grad):
            return fn_grad(fn(z, *extra), *extra)               # bug: f'(a) with a = f(z), instead of f'(z)
        patch.setitem(activations.ACTIVATIONS, name, (fn, at_output))


def _transpose_square(self, dz):
    """dW as Xᵀ·dZ, (in, out): silent only where in = out (elsewhere update refuses the shape by name)."""
    out_features, in_features = self.weight.shape
    return self.x.T @ dz if out_features == in_features else dz.T @ self.x


def _square_weight_expected(scenario, clean):
    i = _top_layer(scenario, lambda i, spec: spec.type == "linear" and spec.shape[0] == spec.shape[1]
                   and not np.allclose(clean[f"grad.layers.{i}.weight"], clean[f"grad.layers.{i}.weight"].T))
    return None if i is None else f"grad.layers.{i}.weight"


def _dense_backward(weight_grad=None, bias_grad=None, update_lr=None, reuse_input=False):
    """Dense.backward with one planted mistake, in the dense layer over rows (n, in) where a course writes it: over a
    sequence (n, T, in), inside attention and transformer blocks, the right backward runs."""
    right = layers.Dense.backward

    def backward(self, dz):
        if dz.ndim > 2:
            return right(self, dz)
        self.weight_grad = dz.T @ self.x if weight_grad is None else weight_grad(self, dz)
        if self.bias is not None:
            self.bias_grad = dz.sum(axis=0) if bias_grad is None else bias_grad(self, dz)
        if update_lr is not None:                                # bug: updates before passing dz down
            self.weight = self.weight - update_lr * self.weight_grad
        if reuse_input:                                          # bug: writes dX into the stored input
            return np.matmul(dz, self.weight, out=self.x)
        return dz @ self.weight
    return backward


def _flipped_kernel(patch, scenario):
    """Conv2d.forward with the kernel flipped in both spatial axes: a true convolution, which no framework computes
    (backward left as it is, so the forward pass shows it first)."""
    forward = layers.Conv2d.forward

    def convolution(self, x):
        weight = self.weight
        self.weight = weight[..., ::-1, ::-1] if weight.ndim == 4 else weight[..., ::-1]
        try:
            return forward(self, x)
        finally:
            self.weight = weight
    patch.setattr(layers.Conv2d, "forward", convolution)


def _first_of_type(types, tensor):
    def expected(scenario, clean):
        found = [i for i, spec in enumerate(scenario.layers) if spec.type in types]
        return tensor.format(i=found[0]) if found else None
    return expected


def _padding_ignored_in_backward(patch, scenario):
    """Conv2d.backward that crops the padded input gradient from its corner, as if there were no padding."""
    backward = layers.Conv2d.backward

    def unpadded(self, dz):
        dx = backward(self, dz)
        (top, _), (left, _) = self.pads
        if top == 0 and left == 0:
            return dx
        shifted = np.zeros_like(dx)                             # bug: the padded gradient cut at [0:H, 0:W]
        shifted[:, :, top:, left:] = dx[:, :, :dx.shape[2] - top, :dx.shape[3] - left]
        return shifted
    patch.setattr(layers.Conv2d, "backward", unpadded)


def _padded_conv_input_expected(scenario, clean):
    """The gradient below the topmost conv padded before its first row or column: that layer's input gradient, the
    dz of the layer under it (∂L/∂x for layer 0)."""
    padded = [i for i, spec in enumerate(scenario.layers) if spec.type in ("conv1d", "conv2d")
              and any(p[0] for p in layers.build(spec).pads)]
    if not padded:
        return None
    i = max(padded)
    return "grad.inputs" if i == 0 else f"layers.{i - 1}.dz"


def _layer_norm_without_variance_term(patch, scenario):
    """LayerNorm.backward as if the row's variance were a constant: dx = r·(g − mean(g)), the x̂·mean(g ⊙ x̂) term
    dropped (the mean's term kept)."""
    def backward(self, dz):
        rows = tuple(range(dz.ndim - 1))
        self.weight_grad = (dz * self.x_hat).sum(axis=rows)
        if self.bias is not None:
            self.bias_grad = dz.sum(axis=rows)
        g = dz * self.weight
        return self.r * (g - g.mean(axis=-1, keepdims=True))
    patch.setattr(layers.LayerNorm, "backward", backward)


ATTENDING = ("multi_head_attention", "transformer_encoder_layer")


def _attention_forward(scaled=True, axis=-1, future=False):
    """MultiHeadAttention.forward with one mistake: no 1/√D, the softmax over another axis, or the causal mask
    letting each step see the steps after it (and itself) instead of before (the polarity of a boolean mask
    mistaken)."""
    def forward(self, x):
        q, k, v = np.split(self.in_proj.forward(x), 3, axis=-1)
        self.q, self.k, self.v = self.heads(q), self.heads(k), self.heads(v)
        self.scale = 1.0 / float(np.sqrt(self.q.shape[-1])) if scaled else 1.0
        s = self.q @ self.k.transpose(0, 1, 3, 2) * self.scale
        if self.causal:
            s = np.where(np.tril(np.ones(s.shape[-2:], bool), k=-1) if future
                         else np.triu(np.ones(s.shape[-2:], bool), k=1), -np.inf, s)
        e = np.exp(s - s.max(axis=axis, keepdims=True))
        self.p = e / e.sum(axis=axis, keepdims=True)
        return self.out_proj.forward(self.merged(self.p @ self.v))

    return lambda patch, scenario: patch.setattr(layers.MultiHeadAttention, "forward", forward)


def _first_causal(scenario, clean):
    found = [i for i, spec in enumerate(scenario.layers) if spec.type in ATTENDING and spec.hyper["causal"]
             and scenario.inputs.shape[1] > 1]
    return f"layers.{found[0]}.z" if found else None


def _residual_gradient_dropped(patch, scenario):
    """TransformerEncoderLayer.backward with the residual sums' gradient sent through the sublayer alone (the skip
    path's identity dropped)."""
    def backward(self, dz):
        if self.norm_first:
            dy = self.norm2.backward(self.feedforward_backward(dz))
            return self.norm1.backward(self.self_attn.backward(dy))
        du = self.norm2.backward(dz)
        return self.self_attn.backward(self.norm1.backward(self.feedforward_backward(du)))
    patch.setattr(layers.TransformerEncoderLayer, "backward", backward)


def _below_the_top_block(scenario, clean):
    found = [i for i, spec in enumerate(scenario.layers) if spec.type == "transformer_encoder_layer"]
    if not found:
        return None
    return "grad.inputs" if max(found) == 0 else f"layers.{max(found) - 1}.dz"


def _lstm_gates_ifog(patch, scenario):
    """LSTM.step reading the stacked gates in a course's order i, f, o, g where torch stacks i, f, g, o."""
    def step(self, gi, gh, h, c):
        a_i, a_f, a_o, a_g = np.split(gi + gh, 4, axis=-1)                 # bug: the last two blocks swapped
        i, f, g, o = layers.sigmoid(a_i), layers.sigmoid(a_f), np.tanh(a_g), layers.sigmoid(a_o)
        c_next = f * c + i * g
        tanh_c = np.tanh(c_next)
        return o * tanh_c, c_next, (i, f, g, o, c, tanh_c)
    patch.setattr(layers.LSTM, "step", step)


def _lstm_forget_bias_missing(patch, scenario):
    """LSTM.step with the forget gate's biases left out of its pre-activation (both of torch's, b_if and b_hf)."""
    step = layers.LSTM.step

    def without_forget_bias(self, gi, gh, h, c):
        hidden, biases = self.hidden, [b for b in (self.bias_ih, self.bias_hh) if b is not None]
        forget = slice(hidden, 2 * hidden)
        gi = gi.copy()
        for bias in biases:
            gi[:, forget] -= bias[forget]
        return step(self, gi, gh, h, c)
    patch.setattr(layers.LSTM, "step", without_forget_bias)


def _first_with_forget_bias(scenario, clean):
    """The z of the first LSTM whose forget gate has a bias to lose (and a step after the first, where c_{t−1} ≠ 0)."""
    for i, spec in enumerate(scenario.layers):
        if spec.type == "lstm" and scenario.inputs.shape[1] > 1 and spec.parameter("bias_ih_l0") is not None:
            hidden = spec.parameter("weight_hh_l0").shape[1]
            forget = slice(hidden, 2 * hidden)
            if np.any(spec.parameter("bias_ih_l0")[forget] + spec.parameter("bias_hh_l0")[forget] != 0):
                return f"layers.{i}.z"
    return None


def _lstm_cell_gradient_dropped(patch, scenario):
    """LSTM.step_backward that sends nothing back through the cell state (dc ⊙ f dropped): the gradient reaches the
    earlier steps through h alone, as in a plain RNN."""
    step_backward = layers.LSTM.step_backward

    def forgetful(self, dh, dc, cache):
        da, dgh, dh_direct, _ = step_backward(self, dh, dc, cache)
        return da, dgh, dh_direct, None
    patch.setattr(layers.LSTM, "step_backward", forgetful)


def _gru_reset_before_matmul(patch, scenario):
    """GRU.step with the reset gate applied to h before the hidden matmul, W_hn·(r ⊙ h) + b_hn (the original paper's,
    Keras' reset_after=False) where torch applies it after: r ⊙ (W_hn·h + b_hn)."""
    def step(self, gi, gh, h, state):
        gi_r, gi_z, gi_n = np.split(gi, 3, axis=-1)
        gh_r, gh_z, _ = np.split(gh, 3, axis=-1)
        r, z = layers.sigmoid(gi_r + gh_r), layers.sigmoid(gi_z + gh_z)
        hidden = self.hidden
        gh_n = (r * h) @ self.weight_hh[2 * hidden:].T + (0 if self.bias_hh is None else self.bias_hh[2 * hidden:])
        n = np.tanh(gi_n + gh_n)
        return (1.0 - z) * n + z * h, None, (r, z, n, gh_n, h)     # (the forward shows it; backward as torch's)
    patch.setattr(layers.GRU, "step", step)


def _padding_row_trained(patch, scenario):
    """Embedding.backward that lets the padding_idx row take its gradient like any other (Flax's Embed, which has no
    padding_idx, does)."""
    def backward(self, dz):
        self.weight_grad = np.zeros_like(self.weight)
        np.add.at(self.weight_grad, self.x, dz)
        return None
    patch.setattr(layers.Embedding, "backward", backward)


def _padding_row_used(scenario, clean):
    found = [i for i, spec in enumerate(scenario.layers) if spec.type == "embedding"
             and spec.hyper["padding_idx"] is not None and i == 0
             and np.any(np.asarray(scenario.inputs) == spec.hyper["padding_idx"] % spec.weight.shape[0])]
    return f"grad.layers.{found[0]}.weight" if found else None


def _below_the_first(kind, steps=1):
    """The first tensor a backward-only bug in a ``kind`` layer corrupts (backward runs from the top: the topmost such
    layer's): the dz beneath it, or at layer 0 its own first parameter's gradient; None when the sequences have no
    more than ``steps`` steps (the bug needs a step before the last)."""
    def expected(scenario, clean):
        found = [i for i, spec in enumerate(scenario.layers) if spec.type == kind]
        if not found or scenario.inputs.ndim != 3 or scenario.inputs.shape[1] <= steps:
            return None
        i = max(found)
        return f"layers.{i - 1}.dz" if i else f"grad.layers.{i}.weight_ih_l0"
    return expected


def _layer_norm_statistics(axis, ddof):
    """LayerNorm.forward with the mean and variance over ``axis`` (0: over the batch, as batch norm) and the variance
    divided by D − ddof (1: torch.var's unbiased default, a port's `x.var(-1)`)."""
    def mutate(patch, scenario):
        def forward(self, x):
            mean = x.mean(axis=axis, keepdims=True)
            centred = x - mean
            variance = (centred * centred).sum(axis=axis, keepdims=True) / (x.shape[axis] - ddof)
            self.r = 1.0 / np.sqrt(variance + self.eps)
            self.x_hat = centred * self.r
            z = self.x_hat * self.weight
            return z if self.bias is None else z + self.bias
        patch.setattr(layers.LayerNorm, "forward", forward)
    return mutate


NORMED = ("layer_norm", "transformer_encoder_layer")        # the layers that hold a LayerNorm


def _below_the_top_layer_norm(scenario, clean):
    """The gradient under the topmost layer_norm (or transformer block, which holds two): the dz of the layer beneath
    it (∂L/∂x for layer 0)."""
    found = [i for i, spec in enumerate(scenario.layers) if spec.type in NORMED]
    if not found:
        return None
    return "grad.inputs" if max(found) == 0 else f"layers.{max(found) - 1}.dz"


def _batch_norm_backward_as_constants(patch, scenario):
    """BatchNorm.backward in training as if the batch's mean and variance were constants: dx = g·r, the two terms
    through the batch statistics dropped (what eval mode computes)."""
    backward = layers.BatchNorm.backward

    def constant_statistics(self, dz):
        training, self.training = self.training, False
        try:
            return backward(self, dz)
        finally:
            self.training = training
    patch.setattr(layers.BatchNorm, "backward", constant_statistics)


def _batch_norm_running(biased_variance=False, flax_momentum=False):
    """BatchNorm.forward whose running update uses the biased batch variance, or Flax's meaning of momentum (the
    running value's share): the normalisation is right, only the running statistics go wrong."""
    def mutate(patch, scenario):
        forward = layers.BatchNorm.forward

        def wrong_running(self, x):
            before_mean, before_var = self.running_mean, self.running_var
            z = forward(self, x)
            if self.training:
                axes = (0,) + tuple(range(2, x.ndim))
                m = 1 - self.momentum if flax_momentum else self.momentum
                variance = x.var(axis=axes, ddof=0 if biased_variance else 1)
                self.running_mean = (1 - m) * before_mean + m * x.mean(axis=axes)
                self.running_var = (1 - m) * before_var + m * variance
            return z
        patch.setattr(layers.BatchNorm, "forward", wrong_running)
    return mutate


def _top_training_batch_norm(tensor):
    """``tensor`` ("below": the dz under it) of the topmost batch norm in training, or of the first for a running
    statistic; None without one."""
    def expected(scenario, clean):
        found = [i for i, spec in enumerate(scenario.layers)
                 if spec.type.startswith("batch_norm") and spec.hyper["training"]]
        if not found:
            return None
        if tensor == "below":
            return "grad.inputs" if max(found) == 0 else f"layers.{max(found) - 1}.dz"
        return tensor.format(i=min(found))
    return expected


def _flatten_channels_last(patch, scenario):
    """Flatten in NHWC order (H, W, C), as a Flax port that flattens its NHWC maps without permuting the next kernel."""
    def forward(self, x):
        self.in_shape = x.shape
        return np.moveaxis(x, 1, -1).reshape(x.shape[0], -1) if x.ndim > 2 else x.reshape(x.shape[0], -1)

    def backward(self, dz):
        if len(self.in_shape) <= 2:
            return dz.reshape(self.in_shape)
        n, c, *rest = self.in_shape
        return np.moveaxis(dz.reshape(n, *rest, c), -1, 1)
    patch.setattr(layers.Flatten, "forward", forward)
    patch.setattr(layers.Flatten, "backward", backward)


def _flatten_expected(scenario, clean):
    """The first flatten of a map with more than one channel and more than one position (else the orders agree)."""
    shapes = [scenario.inputs.shape[1:]] + scenario.layer_shapes()
    for i, spec in enumerate(scenario.layers):
        if spec.type == "flatten" and len(shapes[i]) > 1 and shapes[i][0] > 1 and np.prod(shapes[i][1:]) > 1:
            return f"layers.{i}.z"
    return None


def _sgd_ascent(params, grads, state, o):
    new_params, state = optim.sgd(params, grads, state, o)
    return {name: 2 * params[name] - value for name, value in new_params.items()}, state    # p + lr·g


def _softmax_elementwise(a, da):
    return da * a * (1.0 - a)            # bug: only the Jacobian's diagonal, a_j·(1 − a_j)


def _cross_entropy_summed(patch, scenario):
    patch.setitem(losses.LOSSES, "cross_entropy", (
        lambda y, t, label_smoothing=0.0: losses.cross_entropy(y, t, label_smoothing) * y.shape[0],
        lambda y, t, label_smoothing=0.0: losses.cross_entropy_grad(y, t, label_smoothing) * y.shape[0]))


def _adam_without_bias_correction(params, grads, state, o, decoupled=False):
    """Adam as written, with m and v used as they are instead of m / (1 − β₁ᵗ) and v / (1 − β₂ᵗ)."""
    new_params, new_state = optim.adam(params, grads, state, o, decoupled)
    beta1, beta2 = o.betas
    fixed = {}
    for name, p in new_params.items():
        t, m, v = new_state[name]["step"], new_state[name]["exp_avg"], new_state[name]["exp_avg_sq"]
        corrected = o.lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + o.eps)
        fixed[name] = p + corrected - o.lr * m / (np.sqrt(v) + o.eps)     # the corrected step swapped out
    return fixed, new_state


def _nesterov_with_previous_buffer(params, grads, state, o):
    """Nesterov's look-ahead g + μ·b taken with the buffer from *before* this step (0 on the first)."""
    new_params, new_state = optim.sgd(params, grads, state, o)
    if not (o.momentum and o.nesterov):
        return new_params, new_state
    for name, p in params.items():
        g = grads[name] + (o.weight_decay * p if o.weight_decay else 0)
        previous = state.get(name, {}).get("momentum_buffer", np.zeros_like(p))
        new_params[name] = p - o.lr * (g + o.momentum * previous)
    return new_params, new_state


def _decay_swapped(patch, scenario):
    patch.setitem(optim.OPTIMIZERS, "adam", lambda *args: optim.adam(*args, decoupled=True))
    patch.setitem(optim.OPTIMIZERS, "adamw", lambda *args: optim.adam(*args, decoupled=False))


def _rmsprop_eps_inside(params, grads, state, o):
    """torch's RMSprop rule written out again with one change: g/√(v + ε) (optax's default placement)
    where torch divides by √v + ε."""
    new_params, new_state = {}, {}
    for name, p in params.items():
        g = grads[name] + (o.weight_decay * p if o.weight_decay else 0.0)
        s = state.get(name, {"step": 0, "square_avg": np.zeros_like(p), "grad_avg": np.zeros_like(p),
                             "momentum_buffer": np.zeros_like(p)})
        v = o.alpha * s["square_avg"] + (1.0 - o.alpha) * g * g
        kept = {"step": s["step"] + 1, "square_avg": v}
        if o.centered:
            kept["grad_avg"] = o.alpha * s["grad_avg"] + (1.0 - o.alpha) * g
            d = np.sqrt(v - kept["grad_avg"] ** 2 + o.eps)           # bug: eps inside the root
        else:
            d = np.sqrt(v + o.eps)                                     # bug: eps inside the root
        step = g / d
        if o.momentum:
            kept["momentum_buffer"] = step = o.momentum * s["momentum_buffer"] + step
        new_params[name], new_state[name] = p - o.lr * step, kept
    return new_params, new_state


def _first_update(optimizers, condition=lambda o: True, tensor="updated.{name}"):
    """expected(): ``tensor`` for the first parameter when the scenario's optimizer is one of ``optimizers``
    and ``condition`` holds, else None."""
    def expected(sc, clean):
        if sc.optimizer.name not in optimizers or not condition(sc.optimizer):
            return None
        return tensor.format(name=next(iter(sc.parameters())))
    return expected


def _top_softmax_dz(sc, clean):
    layers_with = [i for i, spec in enumerate(sc.layers) if spec.activation == "softmax"]
    return f"layers.{max(layers_with)}.dz" if layers_with else None


def _mse_over_rows(patch, scenario):
    patch.setitem(losses.LOSSES, "mse", (lambda y, t: np.sum((y - t) ** 2) / y.shape[0],
                                         lambda y, t: 2.0 * (y - t) / y.shape[0]))


MUTANTS = (
    Mutant("relu-grad-one-at-zero", "relu'(0) = 1 (z ≥ 0 instead of z > 0)",
           _relu_grad_one_at_zero, _relu_kink_expected),
    Mutant("derivative-at-output", "activation derivative taken at the output a = f(z) instead of at z",
           _derivative_at_output, _dz_of_top({"sigmoid", "tanh", "elu", "gelu", "gelu_tanh", "silu", "softplus"})),
    Mutant("bias-grad-missing", "bias gradient missing (left at 0)",
           lambda patch, sc: patch.setattr(layers.Dense, "backward", _dense_backward(
               bias_grad=lambda self, dz: np.zeros_like(self.bias))),
           _bias_grad_of_top(needs_batch=False)),
    Mutant("bias-grad-not-summed", "bias gradient averaged over the batch instead of summed",
           lambda patch, sc: patch.setattr(layers.Dense, "backward", _dense_backward(
               bias_grad=lambda self, dz: dz.mean(axis=0))),
           _bias_grad_of_top(needs_batch=True)),
    Mutant("weight-grad-transposed", "weight gradient transposed, Xᵀ·dZ instead of dZᵀ·X, in the square "
           "layers where the shapes cannot give it away",
           lambda patch, sc: patch.setattr(layers.Dense, "backward", _dense_backward(weight_grad=_transpose_square)),
           _square_weight_expected),
    Mutant("sse-grad-without-2", "the factor 2 dropped from the sse derivative",
           lambda patch, sc: patch.setitem(losses.LOSSES, "sse", (losses.sse, lambda y, t: y - t)),
           lambda sc, clean: f"layers.{len(sc.layers) - 1}.dz" if sc.loss == "sse" else None),
    Mutant("mse-over-rows", "mse divided by n (rows) instead of n·out (elements)",
           _mse_over_rows,
           lambda sc, clean: "loss" if sc.loss == "mse" and sc.targets.shape[1] > 1 else None),
    Mutant("sigmoid-grad-s", "sigmoid' = s instead of s(1 − s)",
           lambda patch, sc: patch.setitem(activations.ACTIVATIONS, "sigmoid",
                                           (activations.sigmoid, activations.sigmoid)),
           _dz_of_top({"sigmoid"})),
    Mutant("tanh-grad-not-squared", "tanh' = 1 − tanh instead of 1 − tanh²",
           lambda patch, sc: patch.setitem(activations.ACTIVATIONS, "tanh",
                                           (activations.tanh, lambda z: 1.0 - np.tanh(z))),
           _dz_of_top({"tanh"})),
    Mutant("sgd-sign-flipped", "SGD update with the sign flipped: p + lr·g",
           lambda patch, sc: patch.setitem(optim.OPTIMIZERS, "sgd", _sgd_ascent),
           lambda sc, clean: next((f"updated.{name}" for name in sc.parameters()
                                   if np.any(clean[f"grad.{name}"] != 0)), None) if sc.optimizer.name == "sgd"
           else None),
    Mutant("backward-with-updated-weights", "dz of layer i computed with layer i+1's updated weights",
           lambda patch, sc: patch.setattr(layers.Dense, "backward", _dense_backward(update_lr=sc.lr)),
           lambda sc, clean: f"layers.{len(sc.layers) - 2}.dz" if len(sc.layers) > 1
           and sc.layers[-1].type == "linear" else None),
    Mutant("input-buffer-overwritten", "dX written into the layer's stored input (an aliased array changed "
           "in place during backward)",
           lambda patch, sc: patch.setattr(layers.Dense, "backward", _dense_backward(reuse_input=True)),
           lambda sc, clean: next((f"layers.{i - 1}.a" for i, spec in enumerate(sc.layers)
                                   if i > 0 and spec.type == "linear"), None)),
    Mutant("leaky-slope-on-positive-side", "leaky_relu' with the slope on the positive side",
           lambda patch, sc: patch.setitem(activations.ACTIVATIONS, "leaky_relu", (
               activations.leaky_relu,
               lambda z, negative_slope=0.01: np.where(z > 0, negative_slope, 1.0).astype(z.dtype))),
           _dz_of_top({"leaky_relu"})),
    Mutant("softmax-backward-elementwise", "softmax backward as if elementwise: dA ⊙ a(1 − a), the Jacobian's "
           "diagonal only",
           lambda patch, sc: patch.setitem(activations.ACTIVATIONS, "softmax", (activations.softmax,
                                                                                _softmax_elementwise)),
           _top_softmax_dz),
    Mutant("cross-entropy-not-averaged", "cross-entropy summed over the rows instead of averaged",
           _cross_entropy_summed,
           lambda sc, clean: "loss" if sc.loss == "cross_entropy" and sc.inputs.shape[0] > 1 else None),
    Mutant("adam-without-bias-correction", "Adam without bias correction: m and v used for m̂ and v̂",
           lambda patch, sc: (patch.setitem(optim.OPTIMIZERS, "adam", _adam_without_bias_correction),
                              patch.setitem(optim.OPTIMIZERS, "adamw", lambda *args: _adam_without_bias_correction(
                                  *args, decoupled=True))),
           _first_update(("adam", "adamw"))),
    Mutant("nesterov-previous-buffer", "Nesterov's look-ahead g + μ·b taken with the momentum buffer before "
           "this step's update",
           lambda patch, sc: patch.setitem(optim.OPTIMIZERS, "sgd", _nesterov_with_previous_buffer),
           _first_update(("sgd",), lambda o: o.momentum and o.nesterov)),
    Mutant("weight-decay-coupling-swapped", "Adam's L2 decay applied decoupled and AdamW's coupled (swapped)",
           _decay_swapped,
           _first_update(("adam", "adamw"), lambda o: o.weight_decay, tensor="state.{name}.exp_avg")),
    Mutant("rmsprop-eps-inside-sqrt", "RMSprop's eps inside the square root, g/√(v + ε) (optax's default), "
           "instead of g/(√v + ε)",
           lambda patch, sc: patch.setitem(optim.OPTIMIZERS, "rmsprop", _rmsprop_eps_inside),
           lambda sc, clean: _first_update(("rmsprop",), tensor="state.{name}.momentum_buffer"
                                           if getattr(sc.optimizer, "momentum", 0)
                                           else "updated.{name}")(sc, clean)),
    Mutant("conv-flipped-kernel", "convolution instead of cross-correlation: the kernel flipped in both axes",
           _flipped_kernel, _first_of_type(("conv1d", "conv2d"), "layers.{i}.z")),
    Mutant("conv-padding-ignored-in-backward", "the conv's input gradient cut from the padded one at its corner, "
           "as if there were no padding", _padding_ignored_in_backward, _padded_conv_input_expected),
    Mutant("flatten-channels-last", "flatten in (H, W, C) order, channels last, where torch's is (C, H, W)",
           _flatten_channels_last, _flatten_expected),
    Mutant("layer-norm-backward-without-variance-term", "layer norm's input gradient without the path through the "
           "row's variance (as if it were a constant)", _layer_norm_without_variance_term, _below_the_top_layer_norm),
    Mutant("layer-norm-over-the-batch", "layer norm's statistics over the batch axis instead of each row's features",
           _layer_norm_statistics(axis=0, ddof=0), _first_of_type(NORMED, "layers.{i}.z")),
    Mutant("batch-norm-backward-as-constants", "batch norm's input gradient in training without the paths through "
           "the batch's mean and variance", _batch_norm_backward_as_constants, _top_training_batch_norm("below")),
    Mutant("batch-norm-running-variance-biased", "the running variance moved toward the biased batch variance (N), "
           "where torch takes the unbiased one (N − 1)", _batch_norm_running(biased_variance=True),
           _top_training_batch_norm("updated.layers.{i}.running_var")),
    Mutant("batch-norm-momentum-flax-meaning", "momentum as the running value's share (Flax's meaning): running ← "
           "m·running + (1 − m)·batch", _batch_norm_running(flax_momentum=True),
           _top_training_batch_norm("updated.layers.{i}.running_mean")),
    Mutant("layer-norm-unbiased-variance", "layer norm's variance divided by D − 1 (torch.var's default), not D",
           _layer_norm_statistics(axis=-1, ddof=1), _first_of_type(NORMED, "layers.{i}.z")),
    Mutant("attention-without-scale", "attention logits q·kᵀ without the 1/√head_dim scale",
           _attention_forward(scaled=False), _first_of_type(ATTENDING, "layers.{i}.z")),
    Mutant("attention-softmax-over-queries", "attention's softmax over the queries (axis −2) instead of over the "
           "keys each query attends to", _attention_forward(axis=-2), _first_of_type(ATTENDING, "layers.{i}.z")),
    Mutant("attention-mask-inverted", "the causal mask's polarity inverted: step t attends to steps ≥ t, not ≤ t",
           _attention_forward(future=True), _first_causal),
    Mutant("lstm-gates-ifog", "the LSTM's stacked gates read as i, f, o, g (a course's order), not torch's i, f, g, o",
           _lstm_gates_ifog, _first_of_type(("lstm",), "layers.{i}.z")),
    Mutant("lstm-forget-bias-missing", "the LSTM's forget gate without its biases",
           _lstm_forget_bias_missing, _first_with_forget_bias),
    Mutant("lstm-cell-state-gradient-dropped", "backpropagation through time without the cell-state path: the "
           "gradient reaches earlier steps through h alone", _lstm_cell_gradient_dropped, _below_the_first("lstm")),
    Mutant("gru-reset-before-matmul", "the GRU's reset gate applied to h before the hidden matmul, not to its "
           "result", _gru_reset_before_matmul, _first_of_type(("gru",), "layers.{i}.z")),
    Mutant("embedding-padding-row-trained", "the embedding's padding_idx row given its gradient like any other row",
           _padding_row_trained, _padding_row_used),
    Mutant("residual-gradient-dropped", "a transformer block's backward without the skip paths: the residual sum's "
           "gradient sent through the sublayer only", _residual_gradient_dropped, _below_the_top_block),
)


@dataclass
class Outcome:
    mutant: Mutant
    scenario: str
    expected: "str | None"
    reported: "str | None"      # the first divergence's tensor, or None if the check passed
    check_ok: bool

    @property
    def correct(self):
        """Failed at the expected tensor, or passed where the bug cannot show."""
        return self.check_ok if self.expected is None else (not self.check_ok and self.reported == self.expected)


_AUTODIFF = {}


def autodiff_traces(name, frameworks):
    """{framework: trace} of the built-in ``name`` for the frameworks other than numpy, computed once per process: a
    mutant patches only the reference, so torch's and JAX's traces are the same under every one."""
    from backproof.frameworks import Skipped, implementation
    found = {}
    for framework in frameworks:
        if framework == "numpy":
            continue
        if (name, framework) not in _AUTODIFF:
            module = implementation(framework)
            _AUTODIFF[name, framework] = None if isinstance(module, Skipped) else module.run_step(load(name))
        if _AUTODIFF[name, framework] is not None:
            found[framework] = _AUTODIFF[name, framework]
    return found


def run(mutant, names=None, frameworks=("numpy", "torch", "jax")):
    """[Outcome] of ``mutant`` over the built-in scenarios (float64); the reference is restored after each."""
    outcomes = []
    for name in names or builtin_names():
        sc = load(name)
        clean = reference.run_step(sc)
        expected = mutant.expected(sc, clean)
        known = autodiff_traces(name, frameworks)
        patch = Patch()
        try:
            mutant.apply(patch, sc)
            report = check_scenario(sc, [fw for fw in frameworks if fw == "numpy" or fw in known], known=known)
        finally:
            patch.undo()
        divergence = report.first_divergence
        outcomes.append(Outcome(mutant, name, expected, None if divergence is None else divergence.tensor, report.ok))
    return outcomes


_OUTCOMES = {}


def outcomes(mutant, names=None):
    """run(mutant) over every built-in scenario (or ``names``), computed once per process (the tests and `make docs`
    share it); a subset already computed as part of every built-in is read from that run."""
    if names is not None and mutant.id in _OUTCOMES:
        return [o for o in _OUTCOMES[mutant.id] if o.scenario in names]
    key = mutant.id if names is None else (mutant.id, tuple(names))
    if key not in _OUTCOMES:
        _OUTCOMES[key] = run(mutant, names)
    return _OUTCOMES[key]


def table():
    """The README's table: each bug, where the harness first saw it, and whether that is right."""
    lines = ["| bug | scenarios that fail | first divergence reported | caught where expected |",
             "|---|---|---|---|"]
    caught = 0
    for mutant in MUTANTS:
        found = outcomes(mutant)
        failing = [o for o in found if not o.check_ok]
        reported = sorted({f"`{o.reported}`" for o in failing if o.reported})
        ok = bool(failing) and all(o.correct for o in found)
        caught += ok
        lines.append(f"| {mutant.bug} | {', '.join(o.scenario for o in failing) or 'none'} | "
                     f"{', '.join(reported) or '-'} | {'yes' if ok else 'NO'} |")
    lines.append(f"\nmutation score: {caught} of {len(MUTANTS)} ({100 * caught // len(MUTANTS)}%)")
    return lines


if __name__ == "__main__":
    print("\n".join(table()))
    sys.exit(0)
