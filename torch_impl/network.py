"""The Scenario's network in idiomatic PyTorch: nn.Linear, autograd and torch.optim.

The stages have the names and order of the NumPy reference (``backproof read``
prints them side by side). nn.Linear stores its weight as (out, in), the canonical
layout, so weights are copied in unchanged.
"""

import contextlib
import functools
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reference.network import frozen
from reference.registry import LAYER_TYPES
from reference.trace import StepValues, canonical_trace, state_names

# name -> the nn.Module class; leaky_relu's takes the negative slope
ACTIVATIONS = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,                # exact, with erf (approximate="none", torch's default)
    "gelu_tanh": functools.partial(nn.GELU, approximate="tanh"),   # the tanh approximation
    "silu": nn.SiLU,
    "softplus": nn.Softplus,        # beta 1, threshold 20: linear above it
    "softmax": nn.Softmax,          # over each row: nn.Softmax(dim=1)
}

# name -> L(y, t): F.mse_loss with the reduction each loss name needs; the two classification losses
# take logits, F.cross_entropy class indices (a LongTensor) or probability rows, both averaged over rows (a step
# whose class is the default ignore_index, -100, left out)
LOSSES = {
    "sse": lambda y, t: F.mse_loss(y, t, reduction="sum"),
    "half_sse": lambda y, t: 0.5 * F.mse_loss(y, t, reduction="sum"),
    "mse": lambda y, t: F.mse_loss(y, t, reduction="mean"),
    "cross_entropy": lambda y, t, label_smoothing=0.0: F.cross_entropy(     # a sequence's steps as rows
        y.reshape(-1, y.shape[-1]), t.reshape(-1) if t.dtype == torch.long else t.reshape(-1, t.shape[-1]),
        label_smoothing=label_smoothing),
    "binary_cross_entropy": lambda y, t: F.binary_cross_entropy_with_logits(y, t),
}


def conv(module):
    """(spec, dtype) -> nn.Conv1d/nn.Conv2d with the spec's hyperparameters; a padding that differs before and after
    (which nn.Conv2d cannot take) is an nn.ZeroPad1d/2d in front of a conv without padding."""
    def make(spec, dtype):
        o = spec.hyper
        out_channels, per_group, *kernel = spec.shape
        padding = o["padding"]
        if not isinstance(padding, str) and all(before == after for before, after in padding):
            padding = tuple(before for before, _ in padding)
        layer = module(per_group * o["groups"], out_channels, tuple(kernel), stride=o["stride"],
                       padding=0 if not isinstance(padding, (str, int)) and isinstance(padding[0], tuple) else padding,
                       dilation=o["dilation"], groups=o["groups"], bias=spec.bias is not None, dtype=dtype)
        if isinstance(padding, tuple) and isinstance(padding[0], tuple):            # per side: F.pad's order is
            sides = tuple(side for pair in reversed(padding) for side in pair)       # last axis first
            return nn.Sequential((nn.ZeroPad1d if len(kernel) == 1 else nn.ZeroPad2d)(sides), layer)
        return layer
    return make


class FixedDropout(nn.Module):
    """nn.Dropout in train mode, with the scenario's mask instead of a random one: x·m / (1 − p)."""

    def __init__(self, p, mask):
        super().__init__()
        self.p = p
        self.register_buffer("mask", mask)

    def forward(self, x):
        return x * self.mask / (1.0 - self.p)


def causal_mask(x):
    """The float mask torch's attention takes beside is_causal: −∞ above the diagonal (step t sees steps ≤ t)."""
    return nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=x.dtype)


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention (batch_first) called as self-attention, query = key = value = x, returning the output
    alone (its forward returns (output, weights)); causal: the upper-triangular mask torch's is_causal expects beside
    it. Its parameters keep torch's names: in_proj_weight (3E, E), in_proj_bias, out_proj.weight, out_proj.bias."""

    def __init__(self, embed_dim, num_heads, causal=False, **kwargs):
        super().__init__(embed_dim, num_heads, batch_first=True, **kwargs)
        self.causal = causal

    def forward(self, x):
        mask = causal_mask(x) if self.causal else None
        return super().forward(x, x, x, need_weights=False, attn_mask=mask, is_causal=self.causal)[0]


class EncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer (batch_first) called on x alone, with the causal mask when asked."""

    def __init__(self, *args, causal=False, **kwargs):
        super().__init__(*args, batch_first=True, **kwargs)
        self.causal = causal

    def forward(self, x):
        return super().forward(x, src_mask=causal_mask(x) if self.causal else None, is_causal=self.causal)


def encoder_layer(spec, dtype):
    """(spec, dtype) -> EncoderLayer with the spec's heads, width (linear1's rows), norm placement, activation and
    ε, dropout 0."""
    o, linear1 = spec.hyper, spec.parameter("linear1.weight")
    return EncoderLayer(linear1.shape[1], o["nhead"], dim_feedforward=linear1.shape[0], dropout=0.0,
                        activation=o["feedforward_activation"], layer_norm_eps=o["layer_norm_eps"],
                        norm_first=o["norm_first"], causal=o["causal"], dtype=dtype)


class RNN(nn.RNN):
    """nn.RNN (batch_first, one layer) from the initial state given (None: 0s), returning its output, every h_t, alone
    (its forward returns (output, h_n)). The state is (layers, n, H) to torch: one layer, so h0[None]."""

    def forward(self, x):
        return super().forward(x, None if self.h0 is None else self.h0[None])[0]


class LSTM(nn.LSTM):
    """nn.LSTM from (h0, c0) given (None: 0s), returning its output alone (its forward returns (output, (h_n, c_n)))."""

    def forward(self, x):
        state = None if self.h0 is None else (self.h0[None], self.c0[None])
        return super().forward(x, state)[0]


class GRU(nn.GRU):
    """nn.GRU from h0 given (None: 0s), returning its output alone."""

    def forward(self, x):
        return super().forward(x, None if self.h0 is None else self.h0[None])[0]


def recurrent(module):
    """(spec, dtype) -> RNN/LSTM/GRU above, batch_first, its width from weight_hh_l0, bias or none; the initial state
    a buffer (an input the optimizer does not see)."""
    def make(spec, dtype):
        extra = {"nonlinearity": spec.hyper["nonlinearity"]} if module is RNN else {}
        layer = module(spec.parameter("weight_ih_l0").shape[1], spec.parameter("weight_hh_l0").shape[1],
                       batch_first=True, bias=spec.parameter("bias_ih_l0") is not None, dtype=dtype, **extra)
        states = {key: getattr(spec, key) for key in LAYER_TYPES[spec.type].states}    # h0, an LSTM's c0
        given = next((value for value in states.values() if value is not None), None)
        for name, value in states.items():              # one given, the other 0s: torch takes an LSTM's two together
            value = np.zeros_like(given) if value is None and given is not None else value
            layer.register_buffer(name, None if value is None else torch.tensor(value, dtype=dtype), persistent=False)
        return layer
    return make


class SequencePool(nn.Module):
    """(n, T, E) -> (n, E): x[:, -1] or x.mean(dim=1)."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        return x[:, -1] if self.mode == "last" else x.mean(dim=1)


def pool(module, *options):
    """(spec, dtype) -> nn.MaxPool2d/nn.AvgPool2d; their padding is symmetric, one int per axis."""
    def make(spec, dtype):
        o = spec.hyper
        extra = {key: o[key] for key in options}
        return module(o["kernel_size"], o["stride"], tuple(before for before, _ in o["padding"]), **extra)
    return make


def batch_norm(module):
    """(spec, dtype) -> nn.BatchNorm1d/2d with the spec's eps and momentum (torch's meaning), in train mode (its
    running statistics move in every forward pass) or, with training false, in eval mode (.eval())."""
    def make(spec, dtype):
        o = spec.hyper
        return module(spec.shape[0], eps=o["eps"], momentum=o["momentum"], dtype=dtype).train(o["training"])
    return make


# name -> (LayerSpec, dtype) -> the nn.Module (reference.registry.LAYER_TYPES declares each one)
LAYERS = {
    "embedding": lambda spec, dtype: nn.Embedding(*spec.shape, padding_idx=spec.hyper["padding_idx"], dtype=dtype),
    "linear": lambda spec, dtype: nn.Linear(spec.shape[1], spec.shape[0], bias=spec.bias is not None, dtype=dtype),
    "conv1d": conv(nn.Conv1d),
    "conv2d": conv(nn.Conv2d),
    "max_pool1d": pool(nn.MaxPool1d),
    "max_pool2d": pool(nn.MaxPool2d),
    "avg_pool2d": pool(nn.AvgPool2d, "count_include_pad"),
    "flatten": lambda spec, dtype: nn.Flatten(),
    "dropout": lambda spec, dtype: FixedDropout(spec.hyper["p"], torch.tensor(spec.mask, dtype=dtype)),
    "batch_norm1d": batch_norm(nn.BatchNorm1d),
    "batch_norm2d": batch_norm(nn.BatchNorm2d),
    "group_norm": lambda spec, dtype: nn.GroupNorm(spec.hyper["num_groups"], spec.shape[0], eps=spec.hyper["eps"],
                                                   dtype=dtype),
    "layer_norm": lambda spec, dtype: nn.LayerNorm(spec.shape[0], eps=spec.hyper["eps"], bias=spec.bias is not None,
                                                   dtype=dtype),
    "multi_head_attention": lambda spec, dtype: SelfAttention(
        spec.parameter("out_proj.weight").shape[0], spec.hyper["num_heads"], causal=spec.hyper["causal"],
        bias=spec.parameter("in_proj_bias") is not None, dtype=dtype),
    "transformer_encoder_layer": encoder_layer,
    "sequence_pool": lambda spec, dtype: SequencePool(spec.hyper["mode"]),
    "rnn": recurrent(RNN),
    "lstm": recurrent(LSTM),
    "gru": recurrent(GRU),
}


class Model(nn.Module):
    """The scenario's layers as torch modules, each followed by its activation module."""

    def __init__(self, scenario):
        super().__init__()
        dtype = DTYPES[scenario.dtype]
        self.layers = nn.ModuleList()
        self.activations = nn.ModuleList()
        self.types = [spec.type for spec in scenario.layers]
        for spec in scenario.layers:
            layer = LAYERS[spec.type](spec, dtype)
            with torch.no_grad():       # torch.tensor copies: the scenario's arrays are never shared
                for name, value in spec.parameters().items():
                    parameter(layer, name).copy_(torch.tensor(value, dtype=dtype))
                for name, value in (("running_mean", spec.running_mean), ("running_var", spec.running_var)):
                    if value is not None:       # a batch norm's buffers
                        getattr(layer, name).copy_(torch.tensor(value, dtype=dtype))
            self.layers.append(layer)
            self.activations.append(activation(spec.activation, spec.negative_slope))

    def forward(self, x):
        """``forward(model, x)`` below, so that the model can be called as torch.func.functional_call calls it."""
        return forward(self, x)

    def canonical_buffers(self):
        """Canonical name -> each batch norm's running statistics as they stand: ``layers.{i}.running_mean``, …"""
        return {f"layers.{i}.{name}": getattr(layer, name) for i, layer in enumerate(self.layers)
                for name in ("running_mean", "running_var") if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d))}

    def canonical_parameters(self):
        """Canonical name -> nn.Parameter: ``layers.{i}.weight``, ``layers.{i}.bias`` (``layers.{i}.linear1.weight``
        …: the module's own state_dict names), in torch's layout."""
        return {f"layers.{i}.{name}": parameter(layer, name) for i, (layer, kind) in enumerate(zip(self.layers,
                                                                                                 self.types))
                for name in LAYER_TYPES[kind].parameters if parameter(layer, name) is not None}


def forward(model, x):
    """x (n, in) or (n, C, H, W) -> ([z_0, …], [a_0, …]); the last a is the network's output."""
    zs, acts = [], []
    a = x
    for layer, activation_module in zip(model.layers, model.activations):
        z = layer(a)                                        # z_i = layer_i(a_{i-1}), e.g. a_{i-1}·W_iᵀ + b_i
        a = activation_module(z)                            # a_i = f(z_i)              same shape as z_i
        zs.append(z)
        acts.append(a)
    return zs, acts


def gradients(model, x, t, loss):
    """Forward, loss and autograd's backward pass on one batch -> StepValues.

    ``loss.backward()`` fills each parameter's ``.grad``; ``retain_grad()`` asks autograd
    to keep ∂L/∂z on the intermediate z as well, and x requires grad for ∂L/∂x.
    """
    model.zero_grad()                                       # .grad accumulates in torch unless cleared
    x = x.detach().requires_grad_(x.is_floating_point())      # an embedding's indices have no gradient
    zs, acts = forward(model, x)
    for z in zs:
        z.retain_grad()
    value = LOSSES[loss.name](acts[-1], t, **loss.options())
    value.backward()
    grads = {name: param.grad for name, param in model.canonical_parameters().items()}
    return StepValues(zs, acts, value, [z.grad for z in zs], grads, x.grad)


# name -> (parameters, o) -> the torch.optim optimizer, every hyperparameter passed explicitly
OPTIMIZERS = {
    "sgd": lambda params, o: torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, dampening=o.dampening,
                                             nesterov=o.nesterov, weight_decay=o.weight_decay),
    "adam": lambda params, o: torch.optim.Adam(params, lr=o.lr, betas=o.betas, eps=o.eps,
                                               weight_decay=o.weight_decay),
    "adamw": lambda params, o: torch.optim.AdamW(params, lr=o.lr, betas=o.betas, eps=o.eps,
                                                 weight_decay=o.weight_decay),
    "rmsprop": lambda params, o: torch.optim.RMSprop(params, lr=o.lr, alpha=o.alpha, eps=o.eps,
                                                     weight_decay=o.weight_decay, momentum=o.momentum,
                                                     centered=o.centered),
    "adagrad": lambda params, o: torch.optim.Adagrad(params, lr=o.lr, lr_decay=o.lr_decay, weight_decay=o.weight_decay,
                                                     initial_accumulator_value=o.initial_accumulator_value, eps=o.eps),
}


def update(params, grads, state, optimizer):
    """One ``optimizer.step()``, in place on the nn.Parameters -> (params, state).

    state: the torch.optim optimizer, which keeps its buffers between steps (None: a new one).
    """
    if state is None:
        state = OPTIMIZERS[optimizer.name](list(params.values()), optimizer)
    for name, param in params.items():
        param.grad = grads[name]
    state.step()
    return params, state


def run_step(scenario):
    """One forward pass, autograd backward pass and torch.optim step -> the canonical trace."""
    with precision():
        model = Model(scenario)
        x, t = tensors(scenario)                            # (n, in), (n, out) or (n,) class indices
        values = gradients(model, x, t, scenario.criterion)
        updated, state = update(model.canonical_parameters(), values.grads, None, scenario.optimizer)
        return canonical_trace(numpy(values), numpy({**updated, **model.canonical_buffers()}),
                               optimizer_state(state, updated))


def train(scenario, epochs=None):
    """torch.optim over the rows in file order -> ``train.loss`` (epochs,), ``trained.*`` and its state."""
    with precision():
        epochs, batch_size = scenario.schedule(epochs)
        model = Model(scenario)
        params = model.canonical_parameters()
        optimizer = OPTIMIZERS[scenario.optimizer.name](list(params.values()), scenario.optimizer)
        x_all, t_all = tensors(scenario)
        batches = [(x_all[s:s + batch_size], t_all[s:s + batch_size]) for s in range(0, len(x_all), batch_size)]
        step_losses = torch.zeros((epochs, len(batches)), dtype=DTYPES[scenario.dtype])
        for epoch in range(epochs):
            for step, (x, t) in enumerate(batches):
                optimizer.zero_grad()
                _, acts = forward(model, x)
                loss = LOSSES[scenario.loss](acts[-1], t, **scenario.criterion.options())
                loss.backward()
                optimizer.step()
                step_losses[epoch, step] = loss.detach()
        result = {"train.loss": numpy(step_losses.mean(dim=1))}
        for name, param in {**params, **model.canonical_buffers()}.items():
            result[f"trained.{name}"] = numpy(param)
        for name, value in state_names(optimizer_state(optimizer, params)).items():
            result[f"trained.{name}"] = value
        return result


# --- plumbing: dtypes, conversions, precision (not stages) --------------------------------

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def parameter(layer, name):
    """The layer's parameter ``name`` (weight, bias, linear1.weight …; inside an nn.Sequential of padding and conv,
    the conv's), or None."""
    if isinstance(layer, nn.Sequential):
        layer = layer[-1]
    try:
        return layer.get_parameter(name)
    except AttributeError:
        return None


def activation(name, negative_slope=0.01):
    """The activation module for a layer: ``ACTIVATIONS[name]``, with the slope for leaky_relu and the
    row axis for softmax."""
    if name == "leaky_relu":
        return ACTIVATIONS[name](negative_slope)
    return ACTIVATIONS[name](dim=1) if name == "softmax" else ACTIVATIONS[name]()


def tensors(scenario):
    """The scenario's inputs and targets as tensors in its dtype (copies, never shared memory); class
    targets as the LongTensor of indices F.cross_entropy takes."""
    dtype = DTYPES[scenario.dtype]
    if scenario.target_format == "indices":
        targets = torch.tensor(scenario.class_indices(), dtype=torch.long)
    else:
        targets = torch.tensor(scenario.targets, dtype=dtype)
    inputs = torch.tensor(scenario.inputs, dtype=torch.long if scenario.indexed else dtype)   # indices: a LongTensor
    return inputs, targets


def optimizer_state(optimizer, params):
    """torch.optim's per-parameter state -> {canonical name: {buffer: NumPy copy}}, step counts left out."""
    state = {}
    for name, param in params.items():
        buffers = optimizer.state.get(param, {})
        kept = {buffer: numpy(value) for buffer, value in buffers.items() if buffer != "step"}
        if kept:
            state[name] = kept
    return state


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
        with same_padding_quietly():
            yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        matmul.fp32_precision, cudnn.fp32_precision = saved[1], saved[2]


@contextlib.contextmanager
def same_padding_quietly():
    """torch's UserWarning that padding="same" at an even kernel pads a copy of the input, silenced: that padding is
    what the scenario asks for, not news (registry row same-padding-even-kernel)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same' with even kernel", category=UserWarning)
        yield


def settings():
    """The precision settings in force now: (matmul precision, cuBLAS fp32_precision, cuDNN fp32_precision)."""
    return (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.fp32_precision,
            torch.backends.cudnn.fp32_precision)



def loss_function(scenario):
    """(f, params): the scenario's loss as a function of its parameters, f(*params) -> loss, the model applied with
    torch.func.functional_call, and the parameters as float64 leaf tensors: what torch.autograd.gradcheck
    differentiates (torch's own autodiff against its own finite differences)."""
    sc = scenario.with_dtype("float64")
    model = Model(sc)
    canonical = model.canonical_parameters()
    module_names = {id(param): name for name, param in model.named_parameters()}
    names = [module_names[id(param)] for param in canonical.values()]
    x, t = tensors(sc)

    held = {names.index(module_names[id(canonical[name])]): (row, canonical[name].detach().clone())
            for name, row in frozen(sc).items()}          # an embedding's padding row: held, its gradient 0 by definition

    def hold(k, value):
        row, anchor = held[k]
        return torch.cat([value[:row], anchor[row:row + 1], value[row + 1:]])

    def f(*values):
        values = [hold(k, value) if k in held else value for k, value in enumerate(values)]
        with same_padding_quietly():
            _, acts = torch.func.functional_call(model, dict(zip(names, values)), (x,))  # Model.forward is ``forward``
        return LOSSES[sc.loss](acts[-1], t, **sc.criterion.options())

    return f, [param.detach().clone().requires_grad_(True) for param in canonical.values()]


def derivative_at_zero(activation_name, negative_slope, dtype):
    """d activation / dz at z = 0 by autograd, through the mirror's own activation module: torch's convention."""
    x = torch.zeros((), dtype=DTYPES[dtype], requires_grad=True)
    activation(activation_name, negative_slope)(x).backward()
    return float(x.grad)


def sequential(scenario):
    """(the nn.Sequential equivalent to the scenario's network, {canonical name: its state_dict key}): each layer the
    module ``LAYERS`` builds (per-side padding is an nn.ZeroPad before the conv), then its activation module (none
    for identity), the scenario's weights copied in. What ``backproof export --to torch`` loads into."""
    modules, keys = [], {}
    for i, spec in enumerate(scenario.layers):
        layer = LAYERS[spec.type](spec, DTYPES[scenario.dtype])
        modules += list(layer) if isinstance(layer, nn.Sequential) else [layer]
        with torch.no_grad():
            for kind, value in spec.parameters().items():
                modules[-1].get_parameter(kind).copy_(torch.tensor(value))
                keys[f"layers.{i}.{kind}"] = f"{len(modules) - 1}.{kind}"
            for kind in ("running_mean", "running_var"):
                if getattr(spec, kind) is not None:
                    modules[-1].get_buffer(kind).copy_(torch.tensor(getattr(spec, kind)))
                    keys[f"layers.{i}.{kind}"] = f"{len(modules) - 1}.{kind}"
        if spec.mask is not None:                           # FixedDropout holds its mask as a buffer
            keys[f"layers.{i}.mask"] = f"{len(modules) - 1}.mask"
        if spec.activation != "identity":
            modules.append(activation(spec.activation, spec.negative_slope))
    return nn.Sequential(*modules), keys
