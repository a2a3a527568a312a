"""Property: for any valid small network, the three frameworks agree on the whole trace.

Hypothesis draws depth 1-5, widths 1-12, batch 1-8, any activation, any loss and any optimizer
with any of its hyperparameters, with weights (uniform, ±1.5/√fan_in), inputs (±2), targets (±1;
class indices, probability rows or values in [0, 1] for the classification losses) and biases
(±0.5) in a sane range and every relu-family pre-activation at least KINK_MARGIN away from its
kink (kinks are the subject of test_exact_kinks.py). The numpy ↔ torch properties also train
three epochs, so the optimizers' state is carried across steps (dampening, bias correction).
``test_every_loss_activation_and_optimizer`` then covers every combination deterministically.

Two properties per dtype: numpy ↔ torch, which also trains three epochs, and all three (numpy,
torch, JAX) on one step, on fewer examples. The split is for time: each new architecture costs JAX
one compile of its step (0.1-0.3 s with an optimizer chain), numpy and torch milliseconds, so the
suite fits its budget while every drawn network is still checked against autodiff. Profiles
(tests/conftest.py): "ci" (the default) runs 120 float64 and 60 float32 examples numpy ↔ torch, 8
and 4 with JAX. These were 200/100/50/25 before the classification losses and optimizers came;
each numpy ↔ torch example now also trains, and test_every_loss_activation_and_optimizer checks 20
more networks (every loss × activation × optimizer, deterministically; JAX on 5 of them, which hold
every loss, activation and optimizer), so the random draws were cut to pay for that within the 30 s
budget. ``make soak`` (``--hypothesis-profile=long``,
5,000) runs 3,000 and 1,500 numpy ↔ torch, 200 and 100 with JAX. A failing example is printed as a
scenario file that ``backproof check`` replays.
"""

import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import backproof
import reference
from backproof.check import check
from backproof.scenario_file import ScenarioWarning
from conftest import NUMPY_ONLY, require

from reference.activations import ACTIVATIONS as ACTIVATION_FUNCTIONS      # noqa: E402
from reference.losses import LOSSES as LOSS_FUNCTIONS                       # noqa: E402
from reference.registry import BOUNDS, OPTIMIZER_TYPES, Optimizer            # noqa: E402

# every name the registries hold: a new activation, loss or optimizer is drawn without editing this file
ACTIVATIONS, LOSSES, OPTIMIZERS = tuple(ACTIVATION_FUNCTIONS), tuple(LOSS_FUNCTIONS), tuple(OPTIMIZER_TYPES)
KINK_MARGIN = 1e-3

# values to draw for a hyperparameter, by name; one the table lacks draws from its default and the ends of its bounds
CHOICES = {"weight_decay": (0.0, 1e-3, 0.1), "momentum": (0.0, 0.5, 0.9), "dampening": (0.0, 0.3),
           "betas": ((0.9, 0.999), (0.5, 0.9), (0.0, 0.99)), "eps": (1e-8, 1e-3), "alpha": (0.99, 0.9, 0.5)}


def choices(key, default):
    if isinstance(default, bool):
        return (False, True)
    if key in CHOICES:
        return CHOICES[key]
    low, high = BOUNDS.get(key, (0.0, 1.0))
    return (default, low, min(high, 1.0))


def without_problems(block):
    """The block with hyperparameters put back to their defaults, one at a time, until the optimizer takes them
    together (SGD's nesterov needs momentum and no dampening)."""
    def problem(b):
        return Optimizer.of(b["name"], b["lr"], **{k: v for k, v in b.items() if k not in ("name", "lr")}).problem()
    for key in [k for k in block if k not in ("name", "lr")]:
        if not problem(block):
            break
        if not problem({k: v for k, v in block.items() if k != key}):
            block.pop(key)
    if problem(block):
        block.pop(problem(block).split(":")[0])
    return block


@st.composite
def optimizers(draw, name=None):
    """An optimizer block with any subset of its hyperparameters given (the rest take torch's defaults), read off
    the optimizer's dataclass in reference/registry.py."""
    name = name or draw(st.sampled_from(OPTIMIZERS))
    block = {"name": name, "lr": draw(st.sampled_from((0.001, 0.01, 0.1)))}
    for key, default in OPTIMIZER_TYPES[name].defaults().items():
        if draw(st.booleans()):
            value = draw(st.sampled_from(choices(key, default)))
            block[key] = list(value) if isinstance(value, tuple) else value
    return without_problems(block)


def test_the_strategies_draw_every_hyperparameter():
    """Every hyperparameter of every optimizer has something to draw besides its default."""
    for name, kind in OPTIMIZER_TYPES.items():
        for key, default in kind.defaults().items():
            assert any(value != default for value in choices(key, default)), (name, key)


@st.composite
def targets_for(draw, loss, rows, width):
    """Targets the loss accepts: values in ±1, [0, 1] for binary cross-entropy, class indices or probability
    rows (normalised here, so each sums to 1 within a few ulp) for cross-entropy."""
    if loss == "binary_cross_entropy":
        return numbers(draw, 0, 1, (rows, width))
    if loss != "cross_entropy":
        return numbers(draw, -1, 1, (rows, width))
    if draw(st.booleans()):
        return [draw(st.integers(0, width - 1)) for _ in range(rows)]
    weights = np.array(numbers(draw, 0.01, 1, (rows, width), specials=False))
    return (weights / weights.sum(axis=1, keepdims=True)).tolist()


def numbers(draw, low, high, shape, specials=True):
    """An array of ``shape`` uniform in [low, high] as nested lists, from a seed Hypothesis draws (and shrinks), with
    some entries set to 0 or to a bound when Hypothesis asks: drawing each float through Hypothesis took more
    than half of these properties' time; the structure (depth, widths, activations, loss, optimizer,
    hyperparameters, which entries are special) is still drawn and shrunk element by element."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    values = rng.uniform(low, high, shape)
    special = draw(st.sampled_from((None, 0.0, low, high))) if specials else None
    if special is not None:
        values[rng.random(shape) < 0.25] = special
    return values.tolist()


def layer_document(draw, fan_in, fan_out, activation):
    scale = 1.5 / np.sqrt(fan_in)                           # keeps activations O(1) through five layers
    layer = {"weight": (scale * np.array(numbers(draw, -1, 1, (fan_out, fan_in)))).tolist(),
             "bias": numbers(draw, -0.5, 0.5, fan_out) if draw(st.booleans()) else None,
             "activation": activation}
    if activation == "leaky_relu":
        layer["negative_slope"] = draw(st.sampled_from((0.01, 0.1, 0.2)))
    return layer


@st.composite
def scenario_documents(draw, dtype, loss=None, optimizer=None, activations=None):
    """A scenario as the JSON document a user would write; Hypothesis draws and shrinks every number.

    loss, optimizer: fixed instead of drawn; activations: the layers' activations, in order (fixes the depth).
    """
    loss = loss or draw(st.sampled_from(LOSSES))
    activations = activations or [draw(st.sampled_from(ACTIVATIONS)) for _ in range(draw(st.integers(1, 5)))]
    if loss in ("cross_entropy", "binary_cross_entropy") and draw(st.integers(0, 3)):
        activations = [*activations[:-1], "identity"]      # mostly logits, as they should be; sometimes not
    widths = [draw(st.integers(1, 12)) for _ in range(len(activations) + 1)]
    rows = draw(st.integers(1, 8))
    layers = [layer_document(draw, fan_in, fan_out, activation)
              for fan_in, fan_out, activation in zip(widths[:-1], widths[1:], activations)]
    document = {
        "name": "hypothesis-drawn",
        "dtype": dtype,
        "layers": layers,
        "loss": loss,
        "inputs": numbers(draw, -2, 2, (rows, widths[0])),
        "targets": draw(targets_for(loss, rows, widths[-1])),
        "optimizer": draw(optimizers(optimizer)),
    }
    if loss == "cross_entropy" and draw(st.booleans()):
        document["loss"] = {"name": loss, "label_smoothing": draw(st.sampled_from((0.0, 0.1, 0.5)))}
    return document


NORM_SPREAD = 0.1


def away_from_kinks(scenario):
    """Every relu-family pre-activation at least KINK_MARGIN from its kink, and every row a layer_norm normalises (every
    channel a batch norm in training normalises) spread by at least NORM_SPREAD (standard deviation): a norm divides
    by it, so rows whose features nearly
    coincide amplify each framework's rounding (in float32, past the step tolerance), as a kink turns it into a
    different branch. Known limitation: the tolerance does not scale with that conditioning."""
    trace = reference.run_step(scenario)
    feeds = [scenario.inputs] + [trace[f"layers.{i}.a"] for i in range(len(scenario.layers))]
    return all(np.min(np.abs(trace[f"layers.{i}.z"]), initial=np.inf) >= KINK_MARGIN
               for i, spec in enumerate(scenario.layers) if spec.activation in ("relu", "leaky_relu")) and \
        all(np.min(np.std(feeds[i], axis=-1), initial=np.inf) >= NORM_SPREAD
            for i, spec in enumerate(scenario.layers) if spec.type == "layer_norm") and \
        all(np.min(np.std(feeds[i], axis=(0,) + tuple(range(2, feeds[i].ndim))), initial=np.inf) >= NORM_SPREAD
            for i, spec in enumerate(scenario.layers) if spec.type.startswith("batch_norm") and spec.hyper["training"]) \
        and all(np.min(np.std(feeds[i].reshape(feeds[i].shape[0], spec.hyper["num_groups"], -1), axis=-1),
                       initial=np.inf) >= NORM_SPREAD for i, spec in enumerate(scenario.layers) if spec.type == "group_norm")


def replay_note(document):
    return "replay: save the next line as drawn.json and run `backproof check drawn.json`\n" + json.dumps(document)


def check_agreement(document, frameworks=("numpy", "torch", "jax"), epochs=None, drawn=True):
    """One step in every framework (and ``epochs`` of training when given), compared. drawn: a Hypothesis
    example, rejected when it lies near a kink (a fixed document must be checked for that by its caller)."""
    if epochs:
        document = dict(document, train={"epochs": epochs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScenarioWarning)     # the double-squash warning is drawn on purpose
        sc = backproof.parse(document, "hypothesis-drawn")
    if drawn:
        assume(away_from_kinks(sc))
        note(replay_note(document))
    report = check(sc, frameworks, training=bool(epochs))
    assert not report.errors, report.errors
    divergence = report.first_divergence
    assert divergence is None, divergence.message("hypothesis-drawn")
    assert len(report.traces) == len(frameworks)
    if epochs:
        bad = [d for d in report.training.drifts if not (d.ok or d.explained)]   # the noise floor may explain
        assert not report.training.errors and not bad, (report.training.errors, bad)


HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
EXAMPLES = settings.default.max_examples                 # 200 in the ci profile
COUNTS = {"torch64": EXAMPLES * 3 // 5, "torch32": EXAMPLES * 3 // 10, "jax64": max(1, EXAMPLES // 25),
          "jax32": max(1, EXAMPLES // 50)}


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=COUNTS["torch64"])
@given(scenario_documents("float64"))
def test_numpy_and_torch_agree_on_random_float64_networks(document):
    check_agreement(document, ("numpy", "torch"), epochs=3)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=COUNTS["torch32"])
@given(scenario_documents("float32"))
def test_numpy_and_torch_agree_on_random_float32_networks(document):
    check_agreement(document, ("numpy", "torch"), epochs=3)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@settings(suppress_health_check=HEALTH, max_examples=COUNTS["jax64"])
@given(scenario_documents("float64"))
def test_all_three_agree_on_random_float64_networks(document):
    check_agreement(document)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@settings(suppress_health_check=HEALTH, max_examples=COUNTS["jax32"])
@given(scenario_documents("float32"))
def test_all_three_agree_on_random_float32_networks(document):
    check_agreement(document)


COMBINATIONS = [(loss, optimizer) for loss in LOSSES for optimizer in OPTIMIZERS]


def combination_document(loss, optimizer, attempt=0):
    """A deterministic network for one (loss, optimizer): every activation once, in an order that rotates with
    the combination, logits last; every hyperparameter given and away from its default; a seeded draw (the
    first seed k, k + 20, k + 40, … whose relu-family pre-activations all keep KINK_MARGIN from the kink)."""
    k = COMBINATIONS.index((loss, optimizer))
    rng = np.random.default_rng(k + len(COMBINATIONS) * attempt)
    order = [a for a in ACTIVATIONS[k % len(ACTIVATIONS):] + ACTIVATIONS[:k % len(ACTIVATIONS)] if a != "identity"]
    widths, rows = [3 + k % 2 for k in range(len(order) + 2)], 4        # one layer per activation, then logits
    layers = [{"weight": (rng.uniform(-1.5, 1.5, (fan_out, fan_in)) / np.sqrt(fan_in)).tolist(),
               "bias": rng.uniform(-0.5, 0.5, fan_out).tolist(), "activation": activation}
              for fan_in, fan_out, activation in zip(widths[:-1], widths[1:], order + ["identity"])]
    targets = {"cross_entropy": [int(c) for c in rng.integers(0, widths[-1], rows)],
               "binary_cross_entropy": rng.uniform(0, 1, (rows, widths[-1])).tolist()}.get(
                   loss, rng.uniform(-1, 1, (rows, widths[-1])).tolist())
    away = {key: bool(k % 2 == 0) if isinstance(default, bool)
            else next(v for v in choices(key, default) if v != default)
            for key, default in OPTIMIZER_TYPES[optimizer].defaults().items()}      # every one away from its default
    hyper = without_problems({"name": optimizer, "lr": 0.05, **{key: list(v) if isinstance(v, tuple) else v
                                                                for key, v in away.items()}})
    document = {"name": f"{loss}-{optimizer}", "layers": layers,
                "loss": {"name": loss, "label_smoothing": 0.1} if loss == "cross_entropy" else loss,
                "inputs": rng.uniform(-2, 2, (rows, widths[0])).tolist(), "targets": targets,
                "optimizer": hyper}
    if away_from_kinks(backproof.parse(document, document["name"])):
        return document
    return combination_document(loss, optimizer, attempt + 1)


# JAX runs one step of the combinations on this diagonal, which holds every loss and every optimizer (and every
# network holds every activation): its loss and optimizer code paths are independent of each other, and each
# JAX network costs a compile (~0.3 s) where numpy and torch cost milliseconds. numpy ↔ torch run all twenty.
JAX_DIAGONAL = {(loss, OPTIMIZERS[k % len(OPTIMIZERS)]) for k, loss in enumerate(LOSSES)}


def test_the_jax_diagonal_holds_every_loss_and_every_optimizer():
    assert {loss for loss, _ in JAX_DIAGONAL} == set(LOSSES) and {o for _, o in JAX_DIAGONAL} == set(OPTIMIZERS)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@pytest.mark.parametrize("loss, optimizer", COMBINATIONS, ids=[f"{l}-{o}" for l, o in COMBINATIONS])
def test_every_loss_activation_and_optimizer(loss, optimizer):
    """Every loss × optimizer, each on a network with every activation: one step, the whole trace, numpy ↔ torch
    (and JAX on JAX_DIAGONAL), then three epochs numpy ↔ torch (the optimizer's state carried across steps),
    in float64."""
    document = combination_document(loss, optimizer)
    frameworks = ("numpy", "torch", "jax") if (loss, optimizer) in JAX_DIAGONAL else ("numpy", "torch")
    check_agreement(document, frameworks, drawn=False)
    check_agreement(document, ("numpy", "torch"), epochs=3, drawn=False)


# --- networks of typed layers: conv, pooling, flatten, dropout ----------------------------------------------

def draw_layer(draw, kind, channels):
    """A layer of ``kind`` drawn from what reference/registry.py declares of it: a weight (out, in/groups, kernel…)
    when it holds one, and every hyperparameter by its name (kernel_size, stride, padding, dilation, groups,
    count_include_pad). A type added to the registry with these hyperparameters is drawn with no edit here."""
    from reference.registry import LAYER_TYPES
    layer_type = LAYER_TYPES[kind]
    axes = layer_type.spatial
    ints = lambda low, high: [draw(st.integers(low, high)) for _ in range(axes)]       # noqa: E731
    layer = {"type": kind}
    options = layer_type.options
    if "groups" in options:
        layer["groups"] = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
    if "kernel_size" in options:
        layer["kernel_size"] = ints(1, 3)
    if "stride" in options:
        layer["stride"] = ints(1, 2)
    if "dilation" in options:
        layer["dilation"] = ints(1, 2)
    if layer_type.weight_rank == 1:             # a norm: weight and bias per channel, running statistics
        layer.update(norm_document(draw, kind, channels))
    elif "weight" in layer_type.parameters:
        kernel, groups = ints(1, 3), layer.get("groups", 1)
        out = groups * draw(st.integers(1, 2))
        fan_in = channels // groups * int(np.prod(kernel))
        layer["weight"] = (1.5 / np.sqrt(fan_in) * np.array(numbers(draw, -1, 1, (out, channels // groups, *kernel)))
                           ).tolist()
        layer["bias"] = numbers(draw, -0.5, 0.5, out) if draw(st.booleans()) else None
        if "padding" in options:
            layer["padding"] = draw(st.one_of(
                st.integers(0, 1), st.just("valid"),
                st.lists(st.lists(st.integers(0, 2), min_size=2, max_size=2), min_size=axes, max_size=axes),
                *([st.just("same")] if set(layer.get("stride", [1])) == {1} else [])))
    elif "padding" in options:
        layer["padding"] = [draw(st.integers(0, k // 2)) for k in layer.get("kernel_size", [1] * axes)]
    if "count_include_pad" in options:
        layer["count_include_pad"] = draw(st.booleans())
    return layer


def feature_types(spatial):
    """The layer types over (n, C, …) maps of ``spatial`` axes, from the registry."""
    from reference.registry import LAYER_TYPES
    return tuple(name for name, layer in LAYER_TYPES.items() if layer.spatial == spatial)


def test_the_typed_strategy_draws_every_layer_type():
    from reference.registry import LAYER_TYPES
    drawn = set(feature_types(1) + feature_types(2)) | {"batch_norm1d", "dropout", "flatten", "group_norm",
                                                        "layer_norm", "linear"} | set(SEQUENCE_TYPES)
    assert drawn == set(LAYER_TYPES)


# --- sequence networks: attention, transformer blocks, pooling over the steps --------------------------------

SEQUENCE_TYPES = ("embedding", "multi_head_attention", "transformer_encoder_layer", "sequence_pool", "rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def attention_document(draw, embed, prefix="", bias=True):
    """Attention's parameters over width E, in torch's packing, scaled by 1/√E so the softmax is not saturated."""
    scale = 1.0 / np.sqrt(embed)
    layer = {f"{prefix}in_proj_weight": (scale * np.array(numbers(draw, -1, 1, (3 * embed, embed)))).tolist(),
             f"{prefix}out_proj.weight": (scale * np.array(numbers(draw, -1, 1, (embed, embed)))).tolist()}
    if bias:
        layer.update({f"{prefix}in_proj_bias": numbers(draw, -0.3, 0.3, 3 * embed),
                      f"{prefix}out_proj.bias": numbers(draw, -0.3, 0.3, embed)})
    return layer


@st.composite
def sequence_documents(draw, dtype):
    """A sequence network: token indices through an embedding (padding_idx none, first or last) or a linear layer
    applied at every step (n, T, F) -> (n, T, E), then one or two attention layers,
    transformer blocks (heads, norm placement, causal mask, feed-forward activation and width drawn) or recurrent cells
    (rnn tanh or relu, lstm, gru; biases or none; the initial state given or 0s), the steps pooled (last or mean), a
    linear head; any loss and optimizer."""
    rows, steps, features = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    # E ≥ 2: a LayerNorm over one feature outputs its bias whatever comes in, so everything before it would train on
    # gradients that are rounding noise (0 exactly in exact arithmetic), which Adam scales up to a drift
    heads = draw(st.integers(1, 2))
    depth = draw(st.integers(2 if heads == 1 else 1, 2))
    embed = heads * depth
    tokens = draw(st.booleans())             # token indices through an embedding, or features through a linear layer
    if tokens:
        vocabulary = draw(st.integers(2, 5))
        layers = [{"type": "embedding", "weight": numbers(draw, -1, 1, (vocabulary, embed)),
                   "padding_idx": draw(st.sampled_from((None, 0, -1)))}]
        inputs = [[draw(st.integers(0, vocabulary - 1)) for _ in range(steps)] for _ in range(rows)]
    else:
        layers = [{"type": "linear", **layer_document(draw, features, embed, "identity")}]
        inputs = numbers(draw, -2, 2, (rows, steps, features))
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(("attention", "block", "rnn", "lstm", "gru")))
        if kind in GATES:                   # a recurrent cell keeps the width: E in, E out
            bound, gates = 1.0 / np.sqrt(embed), GATES[kind]
            cell = {"type": kind, "weight_ih_l0": (bound * np.array(numbers(draw, -1, 1, (gates * embed, embed)))).tolist(),
                    "weight_hh_l0": (bound * np.array(numbers(draw, -1, 1, (gates * embed, embed)))).tolist()}
            if draw(st.booleans()):
                cell.update(bias_ih_l0=numbers(draw, -0.5, 0.5, gates * embed),
                            bias_hh_l0=numbers(draw, -0.5, 0.5, gates * embed))
            if kind == "rnn":
                cell["nonlinearity"] = draw(st.sampled_from(("tanh", "relu")))
            if draw(st.booleans()):             # an initial state given (0s otherwise)
                cell.update({key: numbers(draw, -1, 1, (rows, embed)) for key in ("h0", "c0")[:2 if kind == "lstm"
                                                                                                else 1]})
            layers.append(cell)
            continue
        if kind == "attention":
            layers.append({"type": "multi_head_attention", "num_heads": heads, "causal": draw(st.booleans()),
                           **attention_document(draw, embed, bias=draw(st.booleans())),
                           "activation": draw(st.sampled_from(("identity", "tanh", "gelu")))})
            continue
        width = draw(st.integers(1, 4))
        layers.append({"type": "transformer_encoder_layer", "nhead": heads, "causal": draw(st.booleans()),
                       "norm_first": draw(st.booleans()),
                       "feedforward_activation": draw(st.sampled_from(("relu", "gelu"))),
                       **attention_document(draw, embed, "self_attn."),
                       **{f"linear1.{k}": v for k, v in layer_document(draw, embed, width, "identity").items()
                          if k in ("weight", "bias")},
                       **{f"linear2.{k}": v for k, v in layer_document(draw, width, embed, "identity").items()
                          if k in ("weight", "bias")},
                       **{f"norm{i}.{k}": v for i in (1, 2) for k, v in
                          (("weight", numbers(draw, 0.5, 1.5, embed)), ("bias", numbers(draw, -0.5, 0.5, embed)))}})
        for key in ("linear1.bias", "linear2.bias"):
            if layers[-1].get(key) is None:
                layers[-1][key] = numbers(draw, -0.5, 0.5, len(layers[-1][key.replace("bias", "weight")]))
    layers.append({"type": "sequence_pool", "mode": draw(st.sampled_from(("last", "mean")))})
    loss, width = draw(st.sampled_from(LOSSES)), draw(st.integers(1, 3))
    layers.append({"type": "linear", **layer_document(draw, embed, width, "identity")})
    return {"name": "hypothesis-drawn-sequence", "dtype": dtype, "layers": layers, "loss": loss,
            "inputs": inputs, "targets": draw(targets_for(loss, rows, width)),
            "optimizer": draw(optimizers())}


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(2, EXAMPLES // 10))
@given(sequence_documents("float64"))
def test_numpy_and_torch_agree_on_random_sequence_networks(document):
    """One step, and two epochs unless attention meets an adaptive optimizer: attention's key bias has no gradient
    in exact arithmetic (the softmax over the keys is unchanged by adding q·b_k to each), so each framework's is
    rounding noise, which Adam, RMSprop and Adagrad divide by its own size into steps of up to lr: the trained key
    biases then differ by noise scaled up, a property of the model (as a bias before a batch norm: batchnorm-mlp drops
    it), which the step check's optimizer-amplification explanation covers and the trajectory check does not (registry
    row attention-key-bias-gradient)."""
    attends = any(layer["type"] in ("multi_head_attention", "transformer_encoder_layer") and
                  any(key.endswith("in_proj_bias") for key in layer) for layer in document["layers"])
    check_agreement(document, ("numpy", "torch"), epochs=None if attends and document["optimizer"]["name"] != "sgd"
                    else 2)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(1, EXAMPLES // 40))
@given(sequence_documents("float32"))
def test_all_three_agree_on_random_sequence_networks(document):
    check_agreement(document)


def norm_document(draw, kind, features, training=None):
    """A layer_norm or batch norm's fields over ``features`` channels, drawn: weight, bias or none, eps, and for a
    batch norm its running statistics, momentum and mode (``training``, when given, decides the mode)."""
    from reference.registry import LAYER_TYPES
    layer = {"type": kind, "eps": draw(st.sampled_from((1e-5, 1e-6, 0.1))),
             "weight": numbers(draw, 0.5, 1.5, features),
             "bias": numbers(draw, -0.5, 0.5, features)
             if LAYER_TYPES[kind].bias_required or draw(st.booleans()) else None}
    if LAYER_TYPES[kind].buffers:
        layer.update(running_mean=numbers(draw, -1, 1, features), running_var=numbers(draw, 0.5, 2, features),
                     momentum=draw(st.sampled_from((0.1, 0.5, 1.0))),
                     training=draw(st.booleans()) if training is None else training)
    return layer


@st.composite
def typed_documents(draw, dtype):
    """A network of typed layers: 1-3 feature layers (conv1d over (n, C, L), or conv2d and pools over (n, C, H, W)),
    any activations, sometimes a dropout with a drawn mask, then flatten and a linear head; any loss and optimizer.
    A drawn stack whose shapes do not fit (a window larger than its padded input) is rejected."""
    from reference.registry import LAYER_TYPES, normalize
    spatial = draw(st.sampled_from((1, 2)))
    rows, channels = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    size = [draw(st.integers(3, 7)) for _ in range(spatial)]
    kinds = [draw(st.sampled_from(feature_types(spatial))) for _ in range(draw(st.integers(1, 3)))]
    layers, shape = [], (channels, *size)
    for kind in kinds:
        layer = draw_layer(draw, kind, shape[0])
        layer["activation"] = draw(st.sampled_from(("identity", "relu", "leaky_relu", "sigmoid", "tanh")))
        options = {key: value for key, value in layer.items() if key in LAYER_TYPES[kind].options}
        try:
            shape = LAYER_TYPES[kind].output_shape(dict(normalize(kind, options)), shape,
                                                   np.shape(layer["weight"]) if "weight" in layer else None)
        except ValueError:
            assume(False)
        layers.append(layer)
    dropout = draw(st.booleans())
    if dropout:
        mask = (np.array(numbers(draw, 0, 1, (rows, *shape), specials=False)) > 0.3).astype(float)
        layers.append({"type": "dropout", "p": 0.3, "mask": mask.tolist()})
    loss = draw(st.sampled_from(LOSSES))
    width = draw(st.integers(1, 4))
    features = int(np.prod(shape))
    layers.append({"type": "flatten"})
    norm = draw(st.sampled_from((None, "layer_norm", "batch_norm1d", "group_norm")))
    if norm:                            # a norm over the flattened features (a batch norm in training needs 2 rows)
        layers.append({**norm_document(draw, norm, features, training=False if rows < 2 else None),
                       "activation": draw(st.sampled_from(("identity", "gelu", "silu", "tanh")))})
        if norm == "group_norm":
            layers[-1]["num_groups"] = draw(st.sampled_from([g for g in range(1, features + 1) if features % g == 0]))
    layers.append({"type": "linear", **layer_document(draw, features, width, "identity")})
    document = {"name": "hypothesis-drawn-typed", "dtype": dtype, "layers": layers, "loss": loss,
                "inputs": numbers(draw, -2, 2, (rows, channels, *size)), "targets": draw(targets_for(loss, rows, width)),
                "optimizer": draw(optimizers())}
    return document, not dropout


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(2, EXAMPLES // 10))
@given(typed_documents("float64"))
def test_numpy_and_torch_agree_on_random_typed_networks(drawn):
    document, trainable = drawn
    check_agreement(document, ("numpy", "torch"), epochs=2 if trainable else None)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(1, EXAMPLES // 40))
@given(typed_documents("float32"))
def test_all_three_agree_on_random_typed_networks(drawn):
    check_agreement(drawn[0])


def test_the_profile_runs_enough_examples():
    """The ci profile (make test-all, CI): 120 float64 and 60 float32 examples numpy ↔ torch (with training), 8 and
    4 with JAX; the fast profile (make test) 18, 9, 1 and 1 (at least one of each, so every property runs)."""
    counts = [test._hypothesis_internal_use_settings.max_examples for test in (
        test_numpy_and_torch_agree_on_random_float64_networks, test_numpy_and_torch_agree_on_random_float32_networks,
        test_all_three_agree_on_random_float64_networks, test_all_three_agree_on_random_float32_networks)]
    floor = {"fast": (18, 9, 1, 1)}.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), (120, 60, 8, 4))
    assert all(count >= least for count, least in zip(counts, floor)), counts


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
def test_a_failing_example_is_printed_as_a_replayable_scenario(tmp_path, capsys):
    """Plant tanh' = 1 - tanh; the property fails and its note is a file that `backproof check` replays."""
    from hypothesis import Phase

    from backproof.cli import main
    from tools.mutations import MUTANTS, Patch

    mutant = next(m for m in MUTANTS if m.id == "tanh-grad-not-squared")
    documents = scenario_documents("float64").filter(
        lambda d: any(layer["activation"] == "tanh" for layer in d["layers"]))

    @settings(max_examples=20, phases=[Phase.generate], database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(documents)
    def prop(document):
        check_agreement(document)

    patch = Patch()
    try:
        mutant.apply(patch, None)
        with pytest.raises(AssertionError) as info:
            prop()
        notes = "\n".join(getattr(info.value, "__notes__", []))
        line = notes.split("`backproof check drawn.json`\n", 1)[1].splitlines()[0]
        path = tmp_path / "drawn.json"
        path.write_text(line)
        assert main(["check", str(path)]) == 1                 # still broken: the replay fails too
    finally:
        patch.undo()
    assert main(["check", str(path)]) == 0                     # fixed: the same file passes
    assert path.read_text() == line
    capsys.readouterr()
