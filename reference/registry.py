"""The layer types, declared once: their hyperparameters with torch's defaults, their parameters in torch's
layout, and the shape each one computes.

Everything else is derived from ``LAYER_TYPES``: the scenario reader's checks and messages, the
canonical names and shapes of the trace, the docs table (docs/scenario-format.md), the Hypothesis
strategies, the import and export maps. Each implementation defines ``LAYERS`` with one entry per
name here (tests/test_skeleton.py fails naming a missing one).

Layouts are torch's: inputs (n, C, H, W) for 2-D layers and (n, C, L) for 1-D ones, conv weights
(out, in/groups, kH, kW) and (out, in/groups, k), linear weights (out, in). Paddings are held per side,
one (before, after) pair per spatial axis, except conv's "same" and "valid", kept as written because
torch takes them as they are.
"""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class LayerType:
    """One layer type: what a scenario file may say about it and how it shapes its input."""

    name: str
    torch: str              # the torch module it mirrors
    jax: str                # what the JAX mirror calls
    spatial: int            # spatial axes of its input: 0 (n, features), 1 (n, C, L), 2 (n, C, H, W); -1 any
    parameters: tuple       # the parameters it holds, in state_dict order
    options: dict           # hyperparameter -> torch's default (None: required, or derived, see ``text``)
    shape: object           # (options, in_shape, weight_shape) -> the output's shape without the batch axis
    text: str               # one line for the docs table
    torch_requires: tuple = ()    # (attribute, value) a torch module must have for a scenario to hold it (import)
    flax: str = ""                # the Flax module whose params it holds (export's Dense_0, Conv_0, LayerNorm_0)
    weight_rank: int = 0          # the weight's axes; 0: spatial axes + 2, (out, in, …)
    buffers: tuple = ()           # arrays it holds that are not parameters (torch's buffer names): running statistics
    bias_required: bool = False   # torch's module always has one (a batch norm's affine shift)
    sequence: bool = False        # takes batch-first sequences (n, T, features), the same layout in torch and Flax
    gates: tuple = ()             # a recurrent cell's gates in the order torch stacks their rows
    states: tuple = ()            # its initial state, which a scenario may give (n, H) each (0s otherwise): h0, c0

    @property
    def named(self):
        """True when its parameters are more than a weight and a bias (attention's in_proj_weight, …): its ``shape``
        then takes {parameter: shape} in place of the weight's shape."""
        return not set(self.parameters) <= {"weight", "bias"}

    def output_shape(self, options, in_shape, weight_shape=None):
        """The output's shape without the batch axis, or ValueError naming the hyperparameter (or the parameter) that
        does not fit. weight_shape: the weight's shape, or for a ``named`` type {parameter: shape}."""
        return self.shape(options, tuple(in_shape), weight_shape)


def window_output(size, kernel, stride, pad, dilation=1):
    """Output length of a sliding window over ``size`` padded by (before, after): torch's floor formula."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad[0] + pad[1]
    if padded < span:
        raise ValueError(f"a window of {span} does not fit in {size} (+ padding {pad[0]}, {pad[1]})")
    return (padded - span) // stride + 1


def same_padding(kernel, dilation=1):
    """torch's padding="same" (stride 1 only): dilation·(k − 1) in all, the odd one after (right or bottom)."""
    total = dilation * (kernel - 1)
    return (total // 2, total - total // 2)


def conv_pads(options, kernel):
    """A conv's padding as one (before, after) pair per spatial axis."""
    padding = options["padding"]
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    if padding == "same":
        return tuple(same_padding(k, d) for k, d in zip(kernel, options["dilation"]))
    return padding


def _conv_shape(options, in_shape, weight_shape):
    channels, *size = in_shape
    out, per_group, *kernel = weight_shape
    groups = options["groups"]
    if channels != per_group * groups:
        raise ValueError(f"weight takes {per_group} channels per group × groups {groups}, but the input has "
                         f"{channels} channels")
    if out % groups:
        raise ValueError(f"groups {groups} does not divide the {out} output channels")
    pads = conv_pads(options, kernel)
    return (out,) + tuple(window_output(n, k, s, p, d) for n, k, s, p, d
                          in zip(size, kernel, options["stride"], pads, options["dilation"]))


def _pool_shape(options, in_shape, _weight_shape):
    channels, *size = in_shape
    for k, p in zip(options["kernel_size"], options["padding"]):
        if p[0] > k // 2:
            raise ValueError(f"padding {p[0]} is more than half the kernel {k} (torch refuses it)")
    return (channels,) + tuple(window_output(n, k, s, p) for n, k, s, p
                               in zip(size, options["kernel_size"], options["stride"], options["padding"]))


def _linear_shape(_options, in_shape, weight_shape):
    """(in,) -> (out,); over a sequence, every step: (T, in) -> (T, out), as nn.Linear applies to the last axis."""
    if in_shape[-1:] != (weight_shape[1],) or len(in_shape) > 2:
        raise ValueError(f"weight has {weight_shape[1]} columns (in) but its input has shape {in_shape}")
    return in_shape[:-1] + (weight_shape[0],)


def _flatten_shape(_options, in_shape, _weight_shape):
    size = 1
    for n in in_shape:
        size *= n
    return (size,)



def _norm_shape(_options, in_shape, weight_shape):
    if in_shape[-1:] != tuple(weight_shape):
        raise ValueError(f"weight has {weight_shape[0]} entries but the input's last axis has {in_shape[-1]}")
    return in_shape


def _channel_shape(options, in_shape, weight_shape):
    """A batch norm's: the input's shape, its channels (axis 1 with the batch) matching the weight."""
    if in_shape[:1] != tuple(weight_shape):
        raise ValueError(f"weight has {weight_shape[0]} entries but the input has {in_shape[0]} channels")
    return in_shape


def _group_shape(options, in_shape, weight_shape):
    """A group norm's: the input's shape; its channels (axis 1 with the batch) match the weight and split into
    num_groups equal groups."""
    _channel_shape(options, in_shape, weight_shape)
    if in_shape[0] % options["num_groups"]:
        raise ValueError(f"num_groups {options['num_groups']} does not divide the {in_shape[0]} channels")
    return in_shape


def _expect(shapes, name, shape):
    if tuple(shapes.get(name, shape)) != shape:
        raise ValueError(f"{name}: has shape {tuple(shapes[name])}, expected {shape}")


def _attention_shape(options, in_shape, shapes, prefix=""):
    """Self-attention over a sequence (T, E): in_proj_weight (3E, E) holds q, k, v stacked (torch's packing), out_proj
    (E, E); num_heads divides E. The output is (T, E)."""
    if len(in_shape) != 2:
        raise ValueError(f"takes a batch-first sequence (n, T, E), not an input of shape (n, {in_shape})")
    _, embed = in_shape
    heads = "num_heads" if "num_heads" in options else "nhead"            # attention's name, or the block's (torch's)
    if embed % options[heads]:
        raise ValueError(f"{heads} does not divide the embedding width {embed}")
    _expect(shapes, f"{prefix}in_proj_weight", (3 * embed, embed))
    _expect(shapes, f"{prefix}in_proj_bias", (3 * embed,))
    _expect(shapes, f"{prefix}out_proj.weight", (embed, embed))
    _expect(shapes, f"{prefix}out_proj.bias", (embed,))
    if (f"{prefix}in_proj_bias" in shapes) != (f"{prefix}out_proj.bias" in shapes):
        raise ValueError(f"{prefix}in_proj_bias and {prefix}out_proj.bias: both or neither (torch's bias=)")
    return in_shape


def _encoder_shape(options, in_shape, shapes):
    """nn.TransformerEncoderLayer over (T, E): attention as above under self_attn., linear1 (F, E), linear2 (E, F),
    norm1 and norm2 (E,); F (dim_feedforward) is linear1's rows."""
    _attention_shape(options, in_shape, shapes, "self_attn.")
    embed, feedforward = in_shape[1], tuple(shapes["linear1.weight"])[0]
    _expect(shapes, "linear1.weight", (feedforward, embed))
    _expect(shapes, "linear1.bias", (feedforward,))
    _expect(shapes, "linear2.weight", (embed, feedforward))
    _expect(shapes, "linear2.bias", (embed,))
    for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"):
        _expect(shapes, name, (embed,))
    return in_shape


def _recurrent_shape(options, in_shape, shapes, gates):
    """nn.RNN / nn.LSTM / nn.GRU, one layer, batch-first: (T, F) -> (T, H); weight_ih_l0 (gates·H, F), weight_hh_l0
    (gates·H, H), the two biases (gates·H,) both or neither; gates 1, 4 (i, f, g, o) or 3 (r, z, n)."""
    if len(in_shape) != 2:
        raise ValueError(f"takes a batch-first sequence (n, T, F), not an input of shape (n, {in_shape})")
    rows = tuple(shapes["weight_ih_l0"])[0]
    if rows % gates:
        raise ValueError(f"weight_ih_l0: has {rows} rows, not a multiple of the {gates} gates")
    hidden = rows // gates
    _expect(shapes, "weight_ih_l0", (gates * hidden, in_shape[1]))
    _expect(shapes, "weight_hh_l0", (gates * hidden, hidden))
    _expect(shapes, "bias_ih_l0", (gates * hidden,))
    _expect(shapes, "bias_hh_l0", (gates * hidden,))
    if ("bias_ih_l0" in shapes) != ("bias_hh_l0" in shapes):
        raise ValueError("bias_ih_l0 and bias_hh_l0: both or neither (torch's bias=)")
    return (in_shape[0], hidden)


def _gated(gates):
    """A recurrent layer's shape function for a cell of ``gates`` gates."""
    return lambda options, in_shape, shapes: _recurrent_shape(options, in_shape, shapes, gates)


def _embedding_shape(options, in_shape, weight_shape):
    """Indices (,) or (T,) -> each one's row of the weight (num_embeddings, embedding_dim): (E,) or (T, E)."""
    if len(in_shape) > 1:
        raise ValueError(f"takes class indices (n,) or (n, T), not an input of shape (n, {in_shape})")
    padding = options["padding_idx"]
    if padding is not None and not -weight_shape[0] <= padding < weight_shape[0]:
        raise ValueError(f"padding_idx {padding} is not a row of the {weight_shape[0]} embeddings")
    return in_shape + (weight_shape[1],)


def _sequence_pool_shape(options, in_shape, _weight_shape):
    """(T, E) -> (E,): the last step or the mean over the steps."""
    if len(in_shape) != 2:
        raise ValueError(f"takes a batch-first sequence (n, T, E), not an input of shape (n, {in_shape})")
    return in_shape[1:]


def _same_shape(_options, in_shape, _weight_shape):
    """The input's shape (dropout)."""
    return in_shape


CONV_OPTIONS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
BATCH_NORM_OPTIONS = {"eps": 1e-5, "momentum": 0.1, "training": True}
RECURRENT = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
# (torch's dropout acts between stacked layers: with num_layers 1 it changes nothing, so it is not required)
RECURRENT_REQUIRES = (("batch_first", True), ("num_layers", 1), ("bidirectional", False))
ATTENTION = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
BATCH_NORM_REQUIRES = (("affine", True), ("track_running_stats", True))

LAYER_TYPES = {layer.name: layer for layer in (
    LayerType("linear", "nn.Linear", "x @ kernel + bias", 0, ("weight", "bias"), {}, _linear_shape,
              "z = x·Wᵀ + b; weight (out, in), bias (out,) or none", flax="Dense"),
    LayerType("conv1d", "nn.Conv1d", "lax.conv_general_dilated, NWC/WIO", 1, ("weight", "bias"), CONV_OPTIONS,
              _conv_shape, "cross-correlation over L; weight (out, in/groups, k)", (("padding_mode", "zeros"),),
              flax="Conv"),
    LayerType("conv2d", "nn.Conv2d", "lax.conv_general_dilated, NHWC/HWIO", 2, ("weight", "bias"), CONV_OPTIONS,
              _conv_shape, "cross-correlation over H, W; weight (out, in/groups, kH, kW)",
              (("padding_mode", "zeros"),), flax="Conv"),
    LayerType("max_pool2d", "nn.MaxPool2d", "lax.reduce_window(max), NHWC", 2, (),
              {"kernel_size": None, "stride": None, "padding": 0}, _pool_shape,
              "the largest of each window; stride defaults to kernel_size, padding counts as −∞",
              (("ceil_mode", False), ("dilation", 1), ("return_indices", False))),
    LayerType("max_pool1d", "nn.MaxPool1d", "lax.reduce_window(max), NWC", 1, (),
              {"kernel_size": None, "stride": None, "padding": 0}, _pool_shape,
              "the largest of each window over L; stride defaults to kernel_size, padding counts as −∞",
              (("ceil_mode", False), ("dilation", 1), ("return_indices", False))),
    LayerType("avg_pool2d", "nn.AvgPool2d", "lax.reduce_window(add) / count, NHWC", 2, (),
              {"kernel_size": None, "stride": None, "padding": 0, "count_include_pad": True}, _pool_shape,
              "the mean of each window; count_include_pad: padded zeros count in the divisor",
              (("ceil_mode", False), ("divisor_override", None))),
    LayerType("flatten", "nn.Flatten", "transpose to NCHW, reshape", -1, (), {}, _flatten_shape,
              "(n, C, H, W) -> (n, C·H·W) in torch's (C, H, W) order", (("start_dim", 1), ("end_dim", -1))),
    LayerType("layer_norm", "nn.LayerNorm", "(x − mean)·rsqrt(var + ε)·scale + bias, Flax's LayerNorm", -1,
              ("weight", "bias"), {"eps": 1e-5}, _norm_shape,
              "each row normalised over its last axis (biased variance), then ·weight + bias; weight and bias "
              "(features,)", (("elementwise_affine", True),), flax="LayerNorm", weight_rank=1),
    LayerType("batch_norm1d", "nn.BatchNorm1d", "(x − mean)·rsqrt(var + ε)·scale + bias over (n, L), running "
              "statistics as Flax's batch_stats", -1, ("weight", "bias"), BATCH_NORM_OPTIONS, _channel_shape,
              "(n, C) or (n, C, L): each channel normalised by the batch's mean and biased variance (training) or "
              "the running ones (eval); weight, bias, running_mean, running_var (C,)", BATCH_NORM_REQUIRES,
              flax="BatchNorm", weight_rank=1, buffers=("running_mean", "running_var"), bias_required=True),
    LayerType("batch_norm2d", "nn.BatchNorm2d", "the same over (n, H, W)", 2, ("weight", "bias"),
              BATCH_NORM_OPTIONS, _channel_shape,
              "(n, C, H, W): each channel normalised over the batch and positions; as batch_norm1d",
              BATCH_NORM_REQUIRES, flax="BatchNorm", weight_rank=1, buffers=("running_mean", "running_var"),
              bias_required=True),
    LayerType("group_norm", "nn.GroupNorm", "channels split into groups, each normalised with its positions, "
              "Flax's GroupNorm", -1, ("weight", "bias"), {"num_groups": None, "eps": 1e-5}, _group_shape,
              "(n, C, …): each sample's channels in num_groups groups, each group normalised over its channels and "
              "positions (biased variance), then ·weight + bias per channel; weight and bias (C,)",
              (("affine", True),), flax="GroupNorm", weight_rank=1, bias_required=True),
    LayerType("embedding", "nn.Embedding", "weight[x], Flax's Embed (the same (num, dim) layout)", -1, ("weight",),
              {"padding_idx": None}, _embedding_shape,
              "integer inputs (n,) or (n, T) -> weight[x], (n, E) or (n, T, E); weight (num_embeddings, embedding_dim); "
              "the padding_idx row gets no gradient",
              (("max_norm", None), ("scale_grad_by_freq", False), ("sparse", False)), flax="Embed", weight_rank=2,
              sequence=True),
    LayerType("multi_head_attention", "nn.MultiheadAttention (batch_first, self-attention)",
              "q, k, v einsums over Flax's (E, heads, head_dim) kernels, jax.nn.softmax over the keys", -1,
              ATTENTION, {"num_heads": None, "causal": False}, _attention_shape,
              "self-attention on (n, T, E): q, k, v = x·W_qᵀ, … from in_proj_weight (3E, E) (torch's packing), "
              "softmax(q·kᵀ/√head_dim) per head, then out_proj; causal: step t attends to steps ≤ t",
              (("batch_first", True), ("_qkv_same_embed_dim", True), ("bias_k", None), ("dropout", 0.0)),
              flax="MultiHeadDotProductAttention", sequence=True),
    LayerType("transformer_encoder_layer", "nn.TransformerEncoderLayer (batch_first, dropout 0)",
              "Flax's LayerNorm, attention and Dense layouts, composed as torch's", -1,
              tuple(f"self_attn.{name}" for name in ATTENTION) + ("linear1.weight", "linear1.bias", "linear2.weight",
                                                                   "linear2.bias", "norm1.weight", "norm1.bias",
                                                                   "norm2.weight", "norm2.bias"),
              {"nhead": None, "norm_first": False, "feedforward_activation": "relu", "layer_norm_eps": 1e-5,
               "causal": False}, _encoder_shape,
              "(n, T, E): x + attention, then x + linear2(f(linear1(x))), each followed by its norm (post-LN, torch's "
              "default) or with the norm first (norm_first); f relu or gelu (exact)",
              (("batch_first", True), ("dropout", 0.0)), flax="TransformerEncoderLayer", sequence=True,
              bias_required=True),
    LayerType("rnn", "nn.RNN (batch_first, one layer)", "lax.scan of Flax's SimpleCell layout (i, h)", -1, RECURRENT,
              {"nonlinearity": "tanh"}, _gated(1),
              "(n, T, F) -> (n, T, H): h_t = f(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh), f tanh or relu, h_0 given or 0",
              RECURRENT_REQUIRES, flax="SimpleCell", sequence=True, states=("h0",)),
    LayerType("lstm", "nn.LSTM (batch_first, one layer)", "lax.scan of Flax's LSTMCell layout (ii … ho)", -1,
              RECURRENT, {}, _gated(4),
              "(n, T, F) -> (n, T, H): gates i, f, g, o stacked in that order in each weight (torch's), "
              "c_t = f⊙c_{t−1} + i⊙g, h_t = o⊙tanh(c_t), h_0 and c_0 given or 0",
              RECURRENT_REQUIRES + (("proj_size", 0),), flax="LSTMCell", sequence=True, states=("h0", "c0"),
              gates=("input gate i", "forget gate f", "cell candidate g", "output gate o")),
    LayerType("gru", "nn.GRU (batch_first, one layer)", "lax.scan of Flax's GRUCell layout (ir … hn)", -1, RECURRENT,
              {}, _gated(3),
              "(n, T, F) -> (n, T, H): gates r, z, n (torch's order), n_t = tanh(W_in x + b_in + r⊙(W_hn h + b_hn)): "
              "the reset gate after the hidden matmul, h_t = (1 − z)⊙n + z⊙h_{t−1}, h_0 given or 0",
              RECURRENT_REQUIRES, flax="GRUCell", sequence=True, gates=("reset gate r", "update gate z", "candidate n"),
              states=("h0",)),
    LayerType("sequence_pool", "x[:, -1] or x.mean(dim=1)", "x[:, -1] or jnp.mean(x, axis=1)", -1, (),
              {"mode": None}, _sequence_pool_shape,
              "(n, T, E) -> (n, E): the last step (mode \"last\") or the mean over the steps (\"mean\")",
              sequence=True),
    LayerType("dropout", "nn.Dropout (mask given)", "x * mask / (1 - p)", -1, (), {"p": 0.5, "mask": None},
              _same_shape,
              "train-mode dropout with the scenario's 0/1 mask (shape of the input), scaled by 1/(1 − p)"),
)}


def parameter_names(spec_type, has_bias=True):
    """The parameters a layer of this type holds (``bias`` only if it has one)."""
    return tuple(name for name in LAYER_TYPES[spec_type].parameters if name != "bias" or has_bias)


def normalize(type_name, options):
    """A layer's hyperparameters as written (ints, lists, strings) -> (hyperparameter, value) pairs with torch's
    defaults filled in and every per-axis value a tuple; ValueError("FIELD: why") for one that does not fit. Read by the
    hyperparameter's name, whatever the layer type: a new type that reuses these names needs nothing here.
    """
    layer = LAYER_TYPES[type_name]
    values = dict(layer.options, **options)
    axes = layer.spatial if layer.spatial > 0 else 0
    if "kernel_size" in values:
        if values["kernel_size"] is None:
            raise ValueError("kernel_size: is missing")
        values["kernel_size"] = per_axis(values["kernel_size"], axes, "kernel_size", minimum=1)
        if values.get("stride") is None:
            values["stride"] = values["kernel_size"]            # a pool's stride defaults to its window
    for key in ("stride", "dilation"):
        if key in values:
            values[key] = per_axis(values[key], axes, key, minimum=1)
    if "groups" in values:
        values["groups"] = whole(values["groups"], "groups", minimum=1)
    if "num_groups" in values:
        if values["num_groups"] is None:
            raise ValueError("num_groups: is missing (torch's nn.GroupNorm has no default; Flax's is 32)")
        values["num_groups"] = whole(values["num_groups"], "num_groups", minimum=1)
    padding = values.get("padding")
    if padding is not None and "weight" in layer.parameters:               # a conv's: per side, "same" or "valid"
        if padding == "same" and values["stride"] != (1,) * axes:
            raise ValueError("padding: \"same\" needs stride 1, as torch (give the pads per side instead)")
        if padding not in ("same", "valid"):
            values["padding"] = pads(padding, axes, "padding")
    elif padding is not None:                                               # a pool's: symmetric, one int per axis
        values["padding"] = tuple((p, p) for p in per_axis(padding, axes, "padding", minimum=0))
    if "count_include_pad" in values and not isinstance(values["count_include_pad"], bool):
        raise ValueError("count_include_pad: must be true or false")
    if "eps" in values:
        eps = values["eps"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ValueError(f"eps: must be a number in (0, 1), not {eps!r}")
        values["eps"] = float(eps)
    if "momentum" in values:
        momentum = values["momentum"]
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"momentum: must be a number in [0, 1] (torch's meaning: the batch's share), not "
                             f"{momentum!r}")
        values["momentum"] = float(momentum)
    if "training" in values and not isinstance(values["training"], bool):
        raise ValueError("training: must be true (batch statistics, running ones updated) or false (running ones)")
    if "p" in values:
        p = values["p"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"p: must be a number in [0, 1), not {p!r}")
        values["p"] = float(p)
    for key in ("num_heads", "nhead"):
        if key in values:
            if values[key] is None:
                raise ValueError(f"{key}: is missing")
            values[key] = whole(values[key], key, minimum=1)
    for key in ("causal", "norm_first"):
        if key in values and not isinstance(values[key], bool):
            raise ValueError(f"{key}: must be true or false")
    if "feedforward_activation" in values and values["feedforward_activation"] not in ("relu", "gelu"):
        raise ValueError(f"feedforward_activation: must be \"relu\" or \"gelu\" (torch's two), not "
                         f"{values['feedforward_activation']!r}")
    if "nonlinearity" in values and values["nonlinearity"] not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: must be \"tanh\" or \"relu\" (torch's two), not {values['nonlinearity']!r}")
    if "mode" in values and values["mode"] not in ("last", "mean"):
        raise ValueError(f"mode: must be \"last\" or \"mean\", not {values['mode']!r}")
    if "layer_norm_eps" in values:
        eps = values["layer_norm_eps"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ValueError(f"layer_norm_eps: must be a number in (0, 1), not {eps!r}")
        values["layer_norm_eps"] = float(eps)
    padding = values.get("padding_idx")
    if padding is not None and (isinstance(padding, bool) or not isinstance(padding, int)):
        raise ValueError(f"padding_idx: must be a whole number (a row; negative counts from the end), not {padding!r}")
    values.pop("mask", None)            # an array, held on the LayerSpec
    return tuple(sorted(values.items()))


def whole(value, field, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field}: must be a whole number ≥ {minimum}, not {value!r}")
    return value


def per_axis(value, axes, field, minimum):
    """An int (every axis) or a list of one int per axis -> a tuple of ``axes`` ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != axes:
            raise ValueError(f"{field}: has {len(value)} entries for {axes} spatial axes")
        return tuple(whole(v, f"{field}", minimum) for v in value)
    return (whole(value, field, minimum),) * axes


def pads(value, axes, field):
    """An int, a list of one int per axis, or per axis [before, after] -> ((before, after), …) per axis."""
    if not isinstance(value, (list, tuple)):
        p = whole(value, field, 0)
        return ((p, p),) * axes
    if len(value) != axes:
        raise ValueError(f"{field}: has {len(value)} entries for {axes} spatial axes "
                         f"(an int, \"same\", \"valid\", or per axis an int or [before, after])")
    result = []
    for item in value:
        if isinstance(item, (list, tuple)):
            if len(item) != 2:
                raise ValueError(f"{field}: a per-side entry is [before, after], not {list(item)!r}")
            result.append((whole(item[0], field, 0), whole(item[1], field, 0)))
        else:
            p = whole(item, field, 0)
            result.append((p, p))
    return tuple(result)


# what each hyperparameter means, for the docs table (docs/scenario-format.md, generated from this file)
OPTION_TEXT = {
    "stride": "an int or one per spatial axis, ≥ 1; a pool's defaults to its kernel_size",
    "padding": "conv: an int, one per axis, per axis `[before, after]` (torch has no per-side padding: its mirror "
               "puts an nn.ZeroPad2d in front), `\"valid\"` (none) or `\"same\"` (stride 1 only; with an even "
               "kernel the extra row and column go after, torch's rule); pool: an int or one per axis, at most half "
               "the kernel, padded with −∞ (max) or 0 (avg)",
    "dilation": "an int or one per spatial axis, ≥ 1: the kernel's taps are this far apart",
    "groups": "a whole number dividing the input and output channels; the weight's second axis is in/groups",
    "kernel_size": "required: an int or one per spatial axis",
    "count_include_pad": "avg_pool2d: true (torch's default) divides every window by kH·kW, padding included; false "
                         "by the elements inside the input",
    "eps": "the norms': ε in (0, 1) added to the variance under the root (torch's 1e-5; Flax's LayerNorm and "
           "GroupNorm default to 1e-6, its BatchNorm to 1e-5)",
    "momentum": "batch norm: in [0, 1], torch's meaning: running ← (1 − momentum)·running + momentum·batch (Flax's "
                "momentum 0.99 is the running value's share: torch's 0.1); the running variance takes the unbiased "
                "batch variance",
    "training": "batch norm: true (torch's default, a fresh module's train mode) normalises with the batch's statistics "
                "and updates the running ones; false (.eval()) normalises with the running ones",
    "num_groups": "group_norm: required, a whole number dividing the channels (torch has no default, Flax's is 32)",
    "running_mean": "required: a batch norm's running mean, one per channel (C,); moved in training, used in eval",
    "running_var": "required: a batch norm's running variance ≥ 0 (C,) (a fresh torch module's: 1s; its mean's: 0s)",
    "num_heads": "multi_head_attention: required, a whole number dividing the embedding width E",
    "nhead": "transformer_encoder_layer: required, the attention's heads, dividing E (torch's name)",
    "causal": "attention: false (every step attends to every step) or true (step t to steps ≤ t: torch's "
              "is_causal with its upper-triangular mask, Flax's nn.make_causal_mask)",
    "norm_first": "transformer_encoder_layer: false (torch's default, post-LN: x = norm(x + sublayer(x))) or true "
                  "(pre-LN: x = x + sublayer(norm(x)))",
    "feedforward_activation": "transformer_encoder_layer: \"relu\" (torch's default) or \"gelu\" (exact): torch's "
                              "`activation` argument (a layer's own `activation` is the one applied after it)",
    "layer_norm_eps": "transformer_encoder_layer: ε of both norms, in (0, 1) (torch's 1e-5)",
    "padding_idx": "embedding: none (torch's default) or the row (negative counts from the end) whose gradient is "
                   "always 0, the padding token's: its value stays as given",
    "nonlinearity": "rnn: \"tanh\" (torch's default) or \"relu\"",
    "weight_ih_l0": "rnn, lstm, gru: required, (gates·H, F), the gates stacked as torch stacks them (lstm i, f, g, o; "
                    "gru r, z, n)",
    "weight_hh_l0": "rnn, lstm, gru: required, (gates·H, H)",
    "bias_ih_l0": "rnn, lstm, gru: (gates·H,), with bias_hh_l0, or neither (bias=False); torch adds the two, Flax "
                  "keeps one per gate",
    "bias_hh_l0": "rnn, lstm, gru: (gates·H,)",
    "h0": "rnn, lstm, gru: the initial hidden state, (n, H), one row per input row; 0s when not given (torch's and "
          "Flax's default); a given state is an input, not a parameter: it gets no gradient",
    "c0": "lstm: the initial cell state, (n, H); 0s when not given",
    "mode": "sequence_pool: required, \"last\" (torch's x[:, -1]) or \"mean\" (x.mean(dim=1))",
    "in_proj_weight": "attention: required, (3E, E), the query, key and value weights stacked in that order "
                      "(torch's packing; Flax keeps three (E, heads, head_dim) kernels)",
    "in_proj_bias": "attention: (3E,), with out_proj.bias, or neither (bias=False)",
    "out_proj.weight": "attention: required, (E, E)",
    "out_proj.bias": "attention: (E,)",
    **{f"self_attn.{name}": f"transformer_encoder_layer: required, its attention's `{name}`, as above"
       for name in ATTENTION},
    "linear1.weight": "transformer_encoder_layer: required, (F, E): the feed-forward block's first layer; its rows F "
                      "are torch's dim_feedforward",
    "linear1.bias": "transformer_encoder_layer: required, (F,)",
    "linear2.weight": "transformer_encoder_layer: required, (E, F)",
    "linear2.bias": "transformer_encoder_layer: required, (E,)",
    "norm1.weight": "transformer_encoder_layer: required, (E,): the norm around the attention",
    "norm1.bias": "transformer_encoder_layer: required, (E,)",
    "norm2.weight": "transformer_encoder_layer: required, (E,): the norm around the feed-forward block",
    "norm2.bias": "transformer_encoder_layer: required, (E,)",
    "p": "dropout's probability in [0, 1): the kept units are scaled by 1/(1 − p)",
    "mask": "required: 0s and 1s shaped like the layer's input, (n, …) (1 keeps a unit); a scenario with a dropout "
            "layer cannot have a train block",
}


# --- optimizers: one dataclass each, with torch.optim's defaults --------------------------------------------

@dataclass(frozen=True)
class Optimizer:
    """An optimizer and its hyperparameters, with torch.optim's semantics and defaults (hashable, for jax.jit).

    Each optimizer is a subclass naming its fields; ``Optimizer.of(name, lr, **given)`` builds one. ``BOUNDS``:
    a hyperparameter's allowed interval (default [0, ∞)); ``TEXT``: what each means, for the docs table.
    """

    name = ""               # class attributes, not fields: the registry key and the torch class
    torch = ""
    lr: float = 0.01

    @classmethod
    def of(cls, name, lr, **given):
        """``name`` with torch's defaults for every field not in ``given``."""
        kind = OPTIMIZER_TYPES[name]
        if "betas" in given:
            given["betas"] = tuple(float(b) for b in given["betas"])
        return kind(lr=float(lr), **given)

    @classmethod
    def defaults(cls):
        """{hyperparameter: torch's default} beyond lr."""
        return {f.name: f.default for f in fields(cls) if f.name != "lr"}

    def hyperparameters(self):
        """lr and every other field -> its value (for reports and the scenario file)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def buffers(self):
        """The state each parameter carries, in torch's names (the canonical ones), in a fixed order."""
        return ()

    def problem(self):
        """'' or "FIELD: why" when the hyperparameters do not go together (as torch refuses them)."""
        return ""


@dataclass(frozen=True)
class SGD(Optimizer):
    name, torch = "sgd", "torch.optim.SGD"
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def buffers(self):
        return ("momentum_buffer",) if self.momentum else ()

    def problem(self):
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            return "nesterov: needs momentum > 0 and dampening 0 (as torch.optim.SGD requires)"
        return ""


@dataclass(frozen=True)
class Adam(Optimizer):
    name, torch = "adam", "torch.optim.Adam"
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def buffers(self):
        return ("exp_avg", "exp_avg_sq")


@dataclass(frozen=True)
class AdamW(Adam):
    name, torch = "adamw", "torch.optim.AdamW"
    weight_decay: float = 1e-2              # torch's AdamW default, not 0


@dataclass(frozen=True)
class RMSprop(Optimizer):
    name, torch = "rmsprop", "torch.optim.RMSprop"
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False

    def buffers(self):
        return ("square_avg",) + (("grad_avg",) if self.centered else ()) + (("momentum_buffer",) if self.momentum
                                                                               else ())


@dataclass(frozen=True)
class Adagrad(Optimizer):
    name, torch = "adagrad", "torch.optim.Adagrad"
    lr_decay: float = 0.0
    weight_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10

    def buffers(self):
        return ("sum",)


OPTIMIZER_TYPES = {kind.name: kind for kind in (SGD, Adam, AdamW, RMSprop, Adagrad)}

# a hyperparameter's interval when it is not [0, ∞); betas are each in [0, 1)
BOUNDS = {"dampening": (0.0, 1.0), "alpha": (0.0, 1.0)}

OPTIMIZER_TEXT = {
    "lr": "the learning rate, > 0 (required)",
    "momentum": "μ ≥ 0",
    "dampening": "τ in [0, 1]; b ← μ·b + (1 − τ)·g after the first step",
    "nesterov": "true or false; needs momentum > 0 and dampening 0, as torch does",
    "weight_decay": "λ ≥ 0 (**1e-2 for `adamw`**, torch's). `sgd`, `adam`, `rmsprop` and `adagrad` add λ·p to the "
                    "gradient (coupled, an L2 term); `adamw` multiplies p by (1 − lr·λ) apart from the Adam step "
                    "(decoupled)",
    "betas": "[β₁, β₂], each in [0, 1)",
    "eps": "ε ≥ 0; RMSprop adds it *outside* the square root, as torch",
    "alpha": "the smoothing constant α in [0, 1] (optax's `decay` default is 0.9)",
    "centered": "true to divide by √(v − ḡ²) + ε, the variance",
    "lr_decay": "η ≥ 0: step t uses lr / (1 + (t − 1)·η)",
    "initial_accumulator_value": "where Adagrad's sum of squares starts, ≥ 0 (optax's default is 0.1, torch's 0)",
}
