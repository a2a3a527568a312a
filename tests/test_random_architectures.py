"""Property: for any valid small network, the three frameworks agree on the whole trace.

Hypothesis draws depth 1-5, widths 1-12, batch 1-8, any activation, any loss and any optimizer
with any of its hyperparameters, with weights (uniform, ±1.5/√fan_in), inputs (±2), targets (±1;
class indices, probability rows or values in [0, 1] for the classification losses) and biases
(±0.5) in a sane range and every relu-family pre-activation at least KINK_MARGIN away from its
kink (kinks are the subject of test_exact_kinks.py). The numpy ↔ torch properties also train
three epochs, so the optimizers' state is carried across steps (dampening, bias correction).
``test_every_loss_activation_and_optimizer`` then covers every combination deterministically.

Two properties per dtype: numpy ↔ torch on every example the profile asks for, and all three
(numpy, torch, JAX) on a quarter as many. The split is for time: each new architecture costs JAX
one compile of its step (tens of milliseconds), numpy and torch almost nothing, so the suite fits
its budget while every drawn network is still checked against autodiff. Profiles (tests/conftest.py):
"ci" (the default) runs 200 float64 and 100 float32 examples numpy ↔ torch, 50 and 25 with JAX;
``make soak`` (``--hypothesis-profile=long``) runs 5,000 and 2,500, and 1,250 and 625 with JAX.
A failing example is printed as a scenario file that ``backproof check`` replays.
"""

import json
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

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
LOSSES = ("sse", "half_sse", "mse", "cross_entropy", "binary_cross_entropy")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
KINK_MARGIN = 1e-3


def test_the_strategies_draw_everything_there_is():
    from reference.activations import ACTIVATIONS as KNOWN_ACTIVATIONS
    from reference.losses import LOSSES as KNOWN_LOSSES
    from reference.optim import OPTIMIZERS as KNOWN_OPTIMIZERS
    assert (set(ACTIVATIONS), set(LOSSES), set(OPTIMIZERS)) == (
        set(KNOWN_ACTIVATIONS), set(KNOWN_LOSSES), set(KNOWN_OPTIMIZERS))


@st.composite
def optimizers(draw, name=None):
    """An optimizer block with any subset of its hyperparameters given (the rest take torch's defaults)."""
    name = name or draw(st.sampled_from(OPTIMIZERS))
    block = {"name": name, "lr": draw(st.sampled_from((0.001, 0.01, 0.1)))}
    maybe = lambda key, values: block.update({key: draw(st.sampled_from(values))}) if draw(st.booleans()) else None
    maybe("weight_decay", (0.0, 1e-3, 0.1))
    if name == "sgd":
        maybe("momentum", (0.0, 0.5, 0.9))
        if block.get("momentum") and draw(st.booleans()):
            block["nesterov"] = True
        else:
            maybe("dampening", (0.0, 0.3))
    elif name in ("adam", "adamw"):
        maybe("betas", ([0.9, 0.999], [0.5, 0.9], [0.0, 0.99]))
        maybe("eps", (1e-8, 1e-3))
    else:
        maybe("alpha", (0.99, 0.9, 0.5))
        maybe("eps", (1e-8, 1e-3))
        maybe("momentum", (0.0, 0.5))
        maybe("centered", (False, True))
    return block


@st.composite
def targets_for(draw, loss, rows, width):
    """Targets the loss accepts: values in ±1, [0, 1] for binary cross-entropy, class indices or probability
    rows (normalised here, so each sums to 1 within a few ulp) for cross-entropy."""
    if loss == "binary_cross_entropy":
        return [[draw(numbers(0, 1)) for _ in range(width)] for _ in range(rows)]
    if loss != "cross_entropy":
        return [[draw(numbers(-1, 1)) for _ in range(width)] for _ in range(rows)]
    if draw(st.booleans()):
        return [draw(st.integers(0, width - 1)) for _ in range(rows)]
    weights = [[draw(numbers(0.01, 1)) for _ in range(width)] for _ in range(rows)]
    return [[w / sum(row) for w in row] for row in weights]


def numbers(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def layer_document(draw, fan_in, fan_out, activation):
    scale = 1.5 / np.sqrt(fan_in)                           # keeps activations O(1) through five layers
    layer = {"weight": [[scale * draw(numbers(-1, 1)) for _ in range(fan_in)] for _ in range(fan_out)],
             "bias": draw(st.none() | st.lists(numbers(-0.5, 0.5), min_size=fan_out, max_size=fan_out)),
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
        "inputs": [[draw(numbers(-2, 2)) for _ in range(widths[0])] for _ in range(rows)],
        "targets": draw(targets_for(loss, rows, widths[-1])),
        "optimizer": draw(optimizers(optimizer)),
    }
    if loss == "cross_entropy" and draw(st.booleans()):
        document["loss"] = {"name": loss, "label_smoothing": draw(st.sampled_from((0.0, 0.1, 0.5)))}
    return document


def away_from_kinks(scenario):
    trace = reference.run_step(scenario)
    return all(np.min(np.abs(trace[f"layers.{i}.z"]), initial=np.inf) >= KINK_MARGIN
               for i, spec in enumerate(scenario.layers) if spec.activation in ("relu", "leaky_relu"))


def replay_note(document):
    return "replay: save the next line as drawn.json and run `backproof check drawn.json`\n" + json.dumps(document)


def check_agreement(document, frameworks=("numpy", "torch", "jax"), epochs=None):
    """One step in every framework (and ``epochs`` of training when given), compared."""
    if epochs:
        document = dict(document, train={"epochs": epochs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScenarioWarning)     # the double-squash warning is drawn on purpose
        sc = backproof.parse(document, "hypothesis-drawn")
    assume(away_from_kinks(sc))
    note(replay_note(document))
    report = check(sc, frameworks, training=bool(epochs))
    assert not report.errors, report.errors
    divergence = report.first_divergence
    assert divergence is None, divergence.message("hypothesis-drawn")
    assert len(report.traces) == len(frameworks)
    if epochs:
        bad = [d for d in report.training.drifts if not d.ok]
        assert not report.training.errors and not bad, (report.training.errors, bad)


HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
EXAMPLES = settings.default.max_examples                 # 200 in the ci profile


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=EXAMPLES)
@given(scenario_documents("float64"))
def test_numpy_and_torch_agree_on_random_float64_networks(document):
    check_agreement(document, ("numpy", "torch"), epochs=3)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(1, EXAMPLES // 2))
@given(scenario_documents("float32"))
def test_numpy_and_torch_agree_on_random_float32_networks(document):
    check_agreement(document, ("numpy", "torch"), epochs=3)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(1, EXAMPLES // 4))
@given(scenario_documents("float64"))
def test_all_three_agree_on_random_float64_networks(document):
    check_agreement(document)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(1, EXAMPLES // 8))
@given(scenario_documents("float32"))
def test_all_three_agree_on_random_float32_networks(document):
    check_agreement(document)


COMBINATIONS = [(loss, optimizer) for loss in LOSSES for optimizer in OPTIMIZERS]


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX to compare against")
@pytest.mark.parametrize("loss, optimizer", COMBINATIONS, ids=[f"{l}-{o}" for l, o in COMBINATIONS])
def test_every_loss_activation_and_optimizer(loss, optimizer):
    """Every loss × optimizer, each on a network with every activation (one layer each, a rotating order,
    logits last): the whole trace in all three frameworks and three epochs numpy ↔ torch, in float64."""
    from hypothesis import Phase
    shift = COMBINATIONS.index((loss, optimizer)) % len(ACTIVATIONS)
    order = list(ACTIVATIONS[shift:] + ACTIVATIONS[:shift])
    order.remove("identity")
    documents = scenario_documents("float64", loss, optimizer, activations=order + ["identity"])

    @settings(max_examples=1, phases=[Phase.generate], database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(documents)
    def prop(document):
        check_agreement(document)
        check_agreement(document, ("numpy", "torch"), epochs=3)

    prop()


def test_the_profile_runs_enough_examples():
    """The CI profile: 200 float64 and 100 float32 examples numpy ↔ torch, 50 and 25 with JAX."""
    counts = [test._hypothesis_internal_use_settings.max_examples for test in (
        test_numpy_and_torch_agree_on_random_float64_networks, test_numpy_and_torch_agree_on_random_float32_networks,
        test_all_three_agree_on_random_float64_networks, test_all_three_agree_on_random_float32_networks)]
    assert counts[0] >= 200 and counts[1] >= 100 and counts[2] >= 50 and counts[3] >= 25, counts


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
