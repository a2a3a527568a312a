"""The generated built-in scenarios: drawn from a stated seed, or derived from another built-in.

    python -m tools.scenarios            # rewrite them under backproof/scenarios/

Each function returns the scenario as a dict. Fields that are not generated (the pinned
``expected`` values and their errata) are kept from the file on disk; tests/test_scenarios.py
regenerates every generated field and fails when a file no longer matches its recipe, so the
``init`` block of a scenario is a claim that is checked, not a comment.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

FOLDER = Path(__file__).resolve().parent.parent / "backproof" / "scenarios"
KEPT = ("expected", "errata", "aliases", "node_names")      # written by hand, never regenerated


def torch_style_layer(rng, fan_in, fan_out, activation):
    """nn.Linear's default: weight and bias uniform in ±1/√fan_in (drawn with NumPy, weight then bias)."""
    bound = 1.0 / math.sqrt(fan_in)
    return {"weight": rng.uniform(-bound, bound, (fan_out, fan_in)).tolist(),
            "bias": rng.uniform(-bound, bound, fan_out).tolist(), "activation": activation}


def spiral():
    """CS231n's toy spiral: 3 classes of 20 points in 2-D, a 2-16-3 ReLU network, cross-entropy, Adam."""
    seed, per_class, classes, hidden, noise = 0, 20, 3, 16, 0.2
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for k in range(classes):
        radius = np.linspace(0.0, 1.0, per_class)
        angle = np.linspace(4.0 * k, 4.0 * (k + 1), per_class) + rng.standard_normal(per_class) * noise
        inputs += np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]).tolist()
        targets += [k] * per_class
    layers = [torch_style_layer(rng, 2, hidden, "relu"), torch_style_layer(rng, hidden, classes, "identity")]
    return {
        "name": "spiral-2-16-3-adam",
        "description": "A 3-class spiral (CS231n's toy data set, 20 points per class), Dense(2,16), relu, "
                       "Dense(16,3) logits; cross-entropy on class indices; Adam (lr 0.05, weight decay 5e-4, "
                       "coupled as torch's Adam), 300 full-batch epochs.",
        "source": "the spiral of CS231n's 'Putting it together: minimal neural network case study', redrawn "
                  "from the seed below; not from the posts",
        "dtype": "float64",
        "init": {
            "rng": "numpy.random.default_rng", "seed": seed,
            "data": f"for k in 0..2: r = linspace(0, 1, {per_class}); θ = linspace(4k, 4(k+1), {per_class}) + "
                    f"{noise}·standard_normal({per_class}); x = (r·sin θ, r·cos θ), class k",
            "distribution": "uniform(±1/√fan_in), nn.Linear's default, drawn after the data",
            "order": ["data noise", "layers[0].weight", "layers[0].bias", "layers[1].weight", "layers[1].bias"],
            "generator": "tools/scenarios.py: spiral()",
        },
        "layers": layers,
        "loss": "cross_entropy",
        "inputs": inputs,
        "targets": targets,
        "optimizer": {"name": "adam", "lr": 0.05, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 5e-4},
        "train": {"epochs": 300},
    }


def derived(base, name, description, **changes):
    """A copy of built-in ``base`` with ``changes`` (and no expected values, aliases or errata of its own)."""
    document = json.loads((FOLDER / f"{base}.json").read_text(encoding="utf-8"))
    for key in KEPT:
        document.pop(key, None)
    document.update(name=name, description=description,
                    source=f"derived from the built-in {base} by tools/scenarios.py", **changes)
    return document


def xor_nesterov():
    return derived("xor-2-3-1-tanh", "xor-2-3-1-tanh-nesterov",
                   "Post 003's XOR network and weights, trained with SGD with Nesterov momentum 0.9 "
                   "(lr 0.1, per-sample) for 500 epochs instead of plain SGD for 10,000.",
                   optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
                   train={"epochs": 500, "batch_size": 1})


def mixed_rmsprop():
    return derived("mixed-3-4-3-2", "mixed-3-4-3-2-rmsprop",
                   "The mixed leaky_relu/tanh/identity network trained with centered RMSprop "
                   "(lr 0.01, α 0.99, momentum 0.5, weight decay 1e-3) for 200 full-batch epochs.",
                   optimizer={"name": "rmsprop", "lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.5,
                              "centered": True, "weight_decay": 1e-3},
                   train={"epochs": 200})


def rmsprop_defaults():
    return derived("xor-2-3-1-tanh", "rmsprop-defaults-2-3-1",
                   "Post 003's XOR network, one RMSprop step with torch's defaults (α 0.99, eps outside the "
                   "square root). The expected block pins what optax.rmsprop's own defaults (decay 0.9, eps "
                   "inside) would give instead, as an erratum: a convention difference shown, not a failure.",
                   optimizer={"name": "rmsprop", "lr": 0.01}, train=None)


def softmax():
    """A softmax *layer* (not a loss): the Jacobian-vector product by hand."""
    return {
        "name": "softmax-2-3-3",
        "description": "Dense(2,3), tanh, Dense(3,3), softmax; mean squared error against one-hot rows; SGD "
                       "lr 0.5. softmax's backward is not elementwise: dz = a ⊙ (da − Σ da ⊙ a).",
        "source": "written for backproof; the worked values in expected were computed once by the reference "
                  "and pinned",
        "dtype": "float64",
        "layers": [
            {"weight": [[0.5, -0.3], [0.2, 0.8], [-0.6, 0.4]], "bias": [0.1, -0.2, 0.05], "activation": "tanh"},
            {"weight": [[0.7, -0.5, 0.3], [-0.2, 0.6, 0.1], [0.4, 0.3, -0.8]], "bias": [0.0, 0.1, -0.1],
             "activation": "softmax"},
        ],
        "loss": "mse",
        "inputs": [[1.0, 0.5], [-0.5, 2.0]],
        "targets": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        "optimizer": {"name": "sgd", "lr": 0.5},
    }


def torch_style(rng, shape, **fields):
    """A linear or conv layer with torch's default init: weight and bias uniform in ±1/√fan_in, fan_in = the
    weight's size over its first axis (in/groups·kH·kW for a conv), drawn weight then bias."""
    bound = 1.0 / math.sqrt(math.prod(shape[1:]))
    return {**fields, "weight": rng.uniform(-bound, bound, shape).tolist(),
            "bias": rng.uniform(-bound, bound, shape[0]).tolist()}


def init(seed, data, order, recipe):
    return {"rng": "numpy.random.default_rng", "seed": seed, "data": data,
            "distribution": "uniform(±1/√fan_in), torch's default for nn.Linear and nn.Conv2d, drawn after the data",
            "order": order, "generator": f"tools/scenarios.py: {recipe}()"}


def strokes(rng, rows, size=8, noise=0.1):
    """8×8 one-channel images of a horizontal, a vertical or a diagonal stroke at a random place, plus noise;
    the class is the stroke's direction."""
    images, labels = [], []
    for r in range(rows):
        label, at = r % 3, int(rng.integers(1, size - 1))
        image = noise * rng.standard_normal((size, size))
        if label == 0:
            image[at, :] += 1.0
        elif label == 1:
            image[:, at] += 1.0
        else:
            image[np.arange(size), np.arange(size)] += 1.0
        images.append([image.tolist()])
        labels.append(label)
    return images, labels


def cnn():
    """Two conv + pool blocks and a linear head on 8×8 images, trained with Adam."""
    seed, rows = 3, 12
    rng = np.random.default_rng(seed)
    inputs, targets = strokes(rng, rows)
    layers = [torch_style(rng, (4, 1, 3, 3), type="conv2d", padding=1, activation="relu"),
              {"type": "max_pool2d", "kernel_size": 2},
              torch_style(rng, (6, 4, 3, 3), type="conv2d", padding=1, activation="relu"),
              {"type": "avg_pool2d", "kernel_size": 2},
              {"type": "flatten"},
              torch_style(rng, (3, 24), type="linear")]
    return {
        "name": "cnn-1x8x8-strokes",
        "description": "A small CNN on 8×8 images of strokes (horizontal, vertical, diagonal): conv 4@3×3 "
                       "padding 1, relu, max-pool 2, conv 6@3×3 padding 1, relu, avg-pool 2, flatten, linear 24→3; "
                       "cross-entropy on class indices; Adam lr 0.01, 40 epochs in batches of 4.",
        "source": "written for backproof: the images drawn from the seed below",
        "dtype": "float64",
        "init": init(seed, f"{rows} images: stroke class r mod 3 at integers(1, 7), plus 0.1·standard_normal((8, 8))",
                     ["data", "layers[0].weight", "layers[0].bias", "layers[2].weight", "layers[2].bias",
                      "layers[5].weight", "layers[5].bias"], "cnn"),
        "layers": layers,
        "loss": "cross_entropy",
        "inputs": inputs,
        "targets": targets,
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 40, "batch_size": 4},
    }


def conv_same_even():
    """padding="same" with an even kernel: torch pads the extra row and column after (registry row
    same-padding-even-kernel)."""
    seed = 4
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((2, 2, 5, 5)).tolist()
    layers = [torch_style(rng, (3, 2, 2, 2), type="conv2d", padding="same", activation="tanh"),
              {"type": "flatten"}, torch_style(rng, (2, 75), type="linear")]
    return {
        "name": "conv-same-even-kernel",
        "description": "conv 3@2×2 with padding \"same\" on 2×5×5 inputs, tanh, flatten, linear 75→2; mse; SGD "
                       "lr 0.1. An even kernel cannot be padded evenly: torch puts the extra row and column "
                       "after (bottom, right), as lax's \"SAME\" does at stride 1 (registry row "
                       "same-padding-even-kernel).",
        "source": "written for backproof: inputs and targets drawn from the seed below",
        "dtype": "float64",
        "init": init(seed, "inputs standard_normal((2, 2, 5, 5)), then targets standard_normal((2, 2)) last",
                     ["inputs", "layers[0].weight", "layers[0].bias", "layers[2].weight", "layers[2].bias",
                      "targets"], "conv_same_even"),
        "layers": layers,
        "loss": "mse",
        "inputs": inputs,
        "targets": rng.standard_normal((2, 2)).tolist(),
        "optimizer": {"name": "sgd", "lr": 0.1},
    }


def conv_stride2_stem():
    """ResNet's stem (conv 7×7 stride 2 padding 3, max-pool 3 stride 2 padding 1), the flax #2993 situation."""
    seed = 5
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((2, 3, 12, 12)).tolist()
    layers = [torch_style(rng, (4, 3, 7, 7), type="conv2d", stride=2, padding=3, activation="relu"),
              {"type": "max_pool2d", "kernel_size": 3, "stride": 2, "padding": 1},
              {"type": "flatten"}, torch_style(rng, (2, 36), type="linear")]
    return {
        "name": "conv-stride2-stem",
        "description": "ResNet's stem on 3×12×12 inputs: conv 4@7×7 stride 2 padding 3, relu, max-pool 3 stride 2 "
                       "padding 1, flatten, linear 36→2; binary cross-entropy; SGD lr 0.1. A Flax port that "
                       "writes padding=\"SAME\" here pads (2, 3), not torch's (3, 3), and every output moves "
                       "(flax #2993; registry row same-padding-stride-2).",
        "source": "written for backproof: inputs and targets drawn from the seed below",
        "dtype": "float64",
        "init": init(seed, "inputs standard_normal((2, 3, 12, 12)), then targets integers(0, 2, (2, 2)) last",
                     ["inputs", "layers[0].weight", "layers[0].bias", "layers[3].weight", "layers[3].bias",
                      "targets"], "conv_stride2_stem"),
        "layers": layers,
        "loss": "binary_cross_entropy",
        "inputs": inputs,
        "targets": rng.integers(0, 2, (2, 2)).astype(float).tolist(),
        "optimizer": {"name": "sgd", "lr": 0.1},
    }


def conv1d_dropout():
    """conv1d with dilation and per-side padding, then train-mode dropout with a given mask."""
    seed = 6
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((3, 2, 10)).tolist()
    layers = [torch_style(rng, (4, 2, 3), type="conv1d", padding=[[2, 1]], dilation=2, activation="sigmoid"),
              {"type": "dropout", "p": 0.25, "mask": (rng.random((3, 4, 9)) > 0.25).astype(float).tolist()},
              {"type": "flatten"}, torch_style(rng, (2, 36), type="linear")]
    return {
        "name": "conv1d-dropout",
        "description": "conv1d 4@3 dilation 2 padding [2, 1] (more before than after) on 2×10 sequences, sigmoid, "
                       "dropout p 0.25 with a given mask (kept units scaled by 1/(1 − p)), flatten, linear 36→2; "
                       "half_sse; SGD lr 0.05.",
        "source": "written for backproof: inputs, mask and targets drawn from the seed below",
        "dtype": "float64",
        "init": init(seed, "inputs standard_normal((3, 2, 10)); mask random((3, 4, 9)) > 0.25 after layers[0]; "
                           "targets standard_normal((3, 2)) last",
                     ["inputs", "layers[0].weight", "layers[0].bias", "layers[1].mask", "layers[3].weight",
                      "layers[3].bias", "targets"], "conv1d_dropout"),
        "layers": layers,
        "loss": "half_sse",
        "inputs": inputs,
        "targets": rng.standard_normal((3, 2)).tolist(),
        "optimizer": {"name": "sgd", "lr": 0.05},
    }


def layernorm_gelu():
    """Linear, then LayerNorm and GELU (the transformer MLP's pieces), twice, then a linear head: a few hundred Adam
    steps on three classes of points."""
    seed = 7
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((12, 4))
    targets = (inputs[:, 0] + inputs[:, 1] * inputs[:, 2] > 0).astype(int) + (inputs[:, 3] > 0.8).astype(int)
    norm = lambda activation: {"type": "layer_norm", "activation": activation,           # noqa: E731
                               "weight": (1 + 0.1 * rng.standard_normal(6)).tolist(),
                               "bias": (0.1 * rng.standard_normal(6)).tolist()}
    layers = [torch_style(rng, (6, 4), type="linear"), norm("gelu"), torch_style(rng, (6, 6), type="linear"),
              norm("silu"), torch_style(rng, (3, 6), type="linear")]
    return {
        "name": "layernorm-gelu-4-6-3",
        "description": "linear 4→6, layer_norm (eps 1e-5) then exact GELU, linear 6→6, layer_norm then SiLU, linear "
                       "6→3; cross_entropy on class indices; Adam lr 0.01, 200 epochs of full batches.",
        "source": "written for backproof: inputs drawn from the seed below, classes from a fixed rule",
        "dtype": "float64",
        "init": init(seed, "inputs standard_normal((12, 4)); classes: [x0 + x1·x2 > 0] + [x3 > 0.8]; each "
                           "layer_norm weight 1 + 0.1·standard_normal(6), bias 0.1·standard_normal(6)",
                     ["inputs", "layers[0].weight", "layers[0].bias", "layers[1].weight", "layers[1].bias",
                      "layers[2].weight", "layers[2].bias", "layers[3].weight", "layers[3].bias", "layers[4].weight",
                      "layers[4].bias"], "layernorm_gelu"),
        "layers": layers,
        "loss": "cross_entropy",
        "inputs": inputs.tolist(),
        "targets": targets.tolist(),
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 200},
    }


def batchnorm_mlp():
    """Two BatchNorm1d layers in training mode under mini-batches, so that the running statistics move every step
    and are compared at the end of the run, as torch keeps them."""
    seed = 8
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((16, 3)) * np.array([1.0, 3.0, 0.5]) + np.array([0.5, -2.0, 1.0])
    targets = np.stack([np.sin(inputs[:, 0]) + 0.1 * inputs[:, 1], inputs[:, 2] * inputs[:, 0]], axis=1)
    norm = lambda activation: {"type": "batch_norm1d", "momentum": 0.1, "activation": activation,   # noqa: E731
                               "weight": np.ones(8).tolist(), "bias": np.zeros(8).tolist(),
                               "running_mean": np.zeros(8).tolist(), "running_var": np.ones(8).tolist()}
    layers = [torch_style(rng, (8, 3), type="linear"), norm("relu"), torch_style(rng, (8, 8), type="linear"),
              norm("silu"), torch_style(rng, (2, 8), type="linear")]
    for i in (0, 2):            # a bias before a batch norm in training has gradient 0 (the norm removes the mean):
        layers[i]["bias"] = None            # its value would move by rounding alone, amplified by momentum
    return {
        "name": "batchnorm-mlp-3-8-2",
        "description": "linear 3→8 without bias, batch_norm1d (training, momentum 0.1, torch's fresh weight 1, bias 0, running "
                       "mean 0, variance 1) then relu, linear 8→8 without bias, batch_norm1d then SiLU, linear 8→2; mse; SGD lr 0.02 "
                       "momentum 0.9; 20 epochs of 4 mini-batches of 4 rows: the running statistics move every step.",
        "source": "written for backproof: inputs drawn from the seed below, targets from a fixed rule",
        "dtype": "float64",
        "init": init(seed, "inputs standard_normal((16, 3))·(1, 3, 0.5) + (0.5, −2, 1); targets (sin x0 + 0.1·x1, "
                           "x2·x0); the batch norms as a fresh nn.BatchNorm1d(8)",
                     ["inputs", "layers[0].weight", "layers[0].bias (drawn, then dropped)", "layers[2].weight",
                      "layers[2].bias (drawn, then dropped)", "layers[4].weight", "layers[4].bias"], "batchnorm_mlp"),
        "layers": layers,
        "loss": "mse",
        "inputs": inputs.tolist(),
        "targets": targets.tolist(),
        "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9},
        "train": {"epochs": 20, "batch_size": 4},
    }


def transformer_block():
    """An embedding and a pre-LN transformer block (2 heads, GELU) on short token sequences: is the first token the
    last one? The answer needs attention from one step to another, and trains visibly in a couple of hundred SGD
    steps. Every sequence starts with token 0, the padding_idx: its row is looked up and never trained."""
    seed, steps, vocabulary, embed, feedforward = 9, 4, 3, 4, 8
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocabulary + 1, (12, steps))  # 1, 2, 3; 0 is the padding token
    tokens[::2, -1] = tokens[::2, 0]                        # half the rows repeat their first token at the end
    targets = (tokens[:, 0] == tokens[:, -1]).astype(int)
    tokens = np.concatenate([np.zeros((12, 1), int), tokens], axis=1)     # (12, 5): the padding token first
    xavier = math.sqrt(6.0 / (embed + 3 * embed))           # nn.MultiheadAttention: xavier_uniform_ on (3E, E)
    block = {"type": "transformer_encoder_layer", "nhead": 2, "norm_first": True, "feedforward_activation": "gelu",
             "causal": True,
             "self_attn.in_proj_weight": rng.uniform(-xavier, xavier, (3 * embed, embed)).tolist(),
             "self_attn.in_proj_bias": np.zeros(3 * embed).tolist(),
             "self_attn.out_proj.weight": torch_style(rng, (embed, embed))["weight"],
             "self_attn.out_proj.bias": np.zeros(embed).tolist()}
    for name, shape in (("linear1", (feedforward, embed)), ("linear2", (embed, feedforward))):
        linear = torch_style(rng, shape)
        block.update({f"{name}.weight": linear["weight"], f"{name}.bias": linear["bias"]})
    for name in ("norm1", "norm2"):
        block.update({f"{name}.weight": np.ones(embed).tolist(), f"{name}.bias": np.zeros(embed).tolist()})
    table = rng.standard_normal((vocabulary + 1, embed))   # nn.Embedding's init: standard normal, its padding row 0
    table[0] = 0.0
    layers = [{"type": "embedding", "weight": table.tolist(), "padding_idx": 0}, block,
              {"type": "sequence_pool", "mode": "last"}, torch_style(rng, (2, embed), type="linear")]
    return {
        "name": "transformer-prenorm-2-heads",
        "description": "12 sequences of a padding token then 4 tokens of 3, embedding 4→4 (padding_idx 0), "
                       "transformer_encoder_layer (pre-LN, 2 heads, causal, exact GELU, feed-forward 8, torch's fresh "
                       "init), the last step, linear 4→2; cross_entropy: is the first token the last one? SGD lr 0.1 "
                       "momentum 0.9, 150 epochs of full batches.",
        "source": "written for backproof: tokens drawn from the seed below, half the rows made to repeat",
        "dtype": "float64",
        "init": init(seed, "tokens integers(1, 4, (12, 4)), every other row's last token set to its first, then the "
                           "padding token 0 before each row; attention as nn.MultiheadAttention's fresh init "
                           "(in_proj xavier_uniform, biases 0), norms weight 1 and bias 0; the embedding "
                           "standard_normal((4, 4)) with its padding row 0, as nn.Embedding's",
                     ["inputs", "layers[1].self_attn.in_proj_weight", "layers[1].self_attn.out_proj.weight",
                      "layers[1].linear1.weight", "layers[1].linear1.bias", "layers[1].linear2.weight",
                      "layers[1].linear2.bias", "layers[0].weight", "layers[3].weight", "layers[3].bias"],
                     "transformer_block"),
        "layers": layers,
        "loss": "cross_entropy",
        "inputs": tokens.tolist(),
        "targets": targets.tolist(),
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "train": {"epochs": 150},
    }


def recurrent_count():
    """An LSTM, then a GRU over its outputs, counting the ones in a short bit sequence, read at the last step:
    backpropagation through time through both cells over 6 steps, trained with Adam in a couple of hundred steps."""
    seed, steps = 10, 6
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (16, steps))

    def cell(kind, gates, features, hidden):                # torch's init: every weight and bias uniform(±1/√H)
        bound = 1.0 / math.sqrt(hidden)
        return {"type": kind, **{name: rng.uniform(-bound, bound, shape).tolist() for name, shape in (
            ("weight_ih_l0", (gates * hidden, features)), ("weight_hh_l0", (gates * hidden, hidden)),
            ("bias_ih_l0", (gates * hidden,)), ("bias_hh_l0", (gates * hidden,)))}}

    return {
        "name": "lstm-gru-count-bits",
        "description": "16 sequences of 6 bits, one feature per step; lstm (hidden 4) then gru (hidden 3) over its "
                       "outputs, both with torch's init, read at the last step by a linear head 3→1; mse against the "
                       "count of ones over 6; Adam lr 0.05, 200 epochs of full batches.",
        "source": "written for backproof: bits drawn from the seed below",
        "dtype": "float64",
        "init": init(seed, "bits integers(0, 2, (16, 6)); targets the count of ones / 6; each cell's weights and "
                           "biases uniform(±1/√H), nn.LSTM's and nn.GRU's default",
                     ["inputs", "layers[0] (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0)",
                      "layers[1] (the same)", "layers[3].weight", "layers[3].bias"], "recurrent_count"),
        "layers": [cell("lstm", 4, 1, 4), cell("gru", 3, 4, 3), {"type": "sequence_pool", "mode": "last"},
                   torch_style(rng, (1, 3), type="linear")],
        "loss": "mse",
        "inputs": bits[:, :, None].astype(float).tolist(),
        "targets": (bits.sum(axis=1, keepdims=True) / steps).tolist(),
        "optimizer": {"name": "adam", "lr": 0.05},
        "train": {"epochs": 200},
    }


RECIPES = (spiral, xor_nesterov, mixed_rmsprop, rmsprop_defaults, softmax, cnn, conv_same_even, conv_stride2_stem,
           conv1d_dropout, layernorm_gelu, batchnorm_mlp, transformer_block, recurrent_count)


def generated(recipe):
    """The recipe's document, with the hand-written fields of the file on disk kept (in the recipe's order)."""
    document = {key: value for key, value in recipe().items() if value is not None}
    path = FOLDER / f"{document['name']}.json"
    if path.exists():
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        document.update({key: on_disk[key] for key in KEPT if key in on_disk})
    return document


def text(document, indent=0):
    """The file's text: two-space indent, a list of numbers (or of lists of numbers) on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(document, dict):
        items = [f"{inner}{json.dumps(key)}: {text(value, indent + 1)}" for key, value in document.items()]
        body = "{\n" + ",\n".join(items) + f"\n{pad}}}"
        return body + ("\n" if indent == 0 else "")
    if isinstance(document, list) and all(not isinstance(item, dict) for item in document):
        return json.dumps(document, ensure_ascii=False)
    if isinstance(document, list):
        return "[\n" + ",\n".join(f"{inner}{text(item, indent + 1)}" for item in document) + f"\n{pad}]"
    return json.dumps(document, ensure_ascii=False)


if __name__ == "__main__":
    for recipe in RECIPES:
        document = generated(recipe)
        (FOLDER / f"{document['name']}.json").write_text(text(document), encoding="utf-8")
        print(f"wrote backproof/scenarios/{document['name']}.json")
    sys.exit(0)
