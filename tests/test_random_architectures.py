"""Property: for any valid small network, the three frameworks agree on the whole trace.

Hypothesis draws depth 1-5, widths 1-12, batch 1-8, any activation and any loss, with
weights (uniform, ±1.5/√fan_in), inputs (±2), targets (±1) and biases (±0.5) in a sane range and every relu-family pre-activation at least
KINK_MARGIN away from its kink (kinks are the subject of test_exact_kinks.py).

Two properties per dtype: numpy ↔ torch on every example the profile asks for, and all three
(numpy, torch, JAX) on a quarter as many. The split is for time: each new architecture costs JAX
one compile of its step (tens of milliseconds), numpy and torch almost nothing, so the suite fits
its budget while every drawn network is still checked against autodiff. Profiles (tests/conftest.py):
"ci" (the default) runs 200 float64 and 100 float32 examples numpy ↔ torch, 50 and 25 with JAX;
``make soak`` (``--hypothesis-profile=long``) runs 5,000 and 2,500, and 1,250 and 625 with JAX.
A failing example is printed as a scenario file that ``backproof check`` replays.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import backproof
import reference
from backproof.check import check_scenario
from conftest import NUMPY_ONLY, require

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")
LOSSES = ("sse", "half_sse", "mse")
KINK_MARGIN = 1e-3


def numbers(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def scenario_documents(draw, dtype):
    """A scenario as the JSON document a user would write; Hypothesis draws and shrinks every number."""
    depth = draw(st.integers(1, 5))
    widths = [draw(st.integers(1, 12)) for _ in range(depth + 1)]
    rows = draw(st.integers(1, 8))
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        scale = 1.5 / np.sqrt(fan_in)                       # keeps activations O(1) through five layers
        layer = {"weight": [[scale * draw(numbers(-1, 1)) for _ in range(fan_in)] for _ in range(fan_out)],
                 "bias": draw(st.none() | st.lists(numbers(-0.5, 0.5), min_size=fan_out, max_size=fan_out)),
                 "activation": draw(st.sampled_from(ACTIVATIONS))}
        if layer["activation"] == "leaky_relu":
            layer["negative_slope"] = draw(st.sampled_from((0.01, 0.1, 0.2)))
        layers.append(layer)
    return {
        "name": "hypothesis-drawn",
        "dtype": dtype,
        "layers": layers,
        "loss": draw(st.sampled_from(LOSSES)),
        "inputs": [[draw(numbers(-2, 2)) for _ in range(widths[0])] for _ in range(rows)],
        "targets": [[draw(numbers(-1, 1)) for _ in range(widths[-1])] for _ in range(rows)],
        "optimizer": {"name": "sgd", "lr": draw(st.sampled_from((0.01, 0.1, 0.5)))},
    }


def away_from_kinks(scenario):
    trace = reference.run_step(scenario)
    return all(np.min(np.abs(trace[f"layers.{i}.z"]), initial=np.inf) >= KINK_MARGIN
               for i, spec in enumerate(scenario.layers) if spec.activation in ("relu", "leaky_relu"))


def replay_note(document):
    return "replay: save the next line as drawn.json and run `backproof check drawn.json`\n" + json.dumps(document)


def check_agreement(document, frameworks=("numpy", "torch", "jax")):
    sc = backproof.parse(document, "hypothesis-drawn")
    assume(away_from_kinks(sc))
    note(replay_note(document))
    report = check_scenario(sc, frameworks)
    assert not report.errors, report.errors
    divergence = report.first_divergence
    assert divergence is None, divergence.message("hypothesis-drawn")
    assert len(report.traces) == len(frameworks)


HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
EXAMPLES = settings.default.max_examples                 # 200 in the ci profile


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=EXAMPLES)
@given(scenario_documents("float64"))
def test_numpy_and_torch_agree_on_random_float64_networks(document):
    check_agreement(document, ("numpy", "torch"))


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch to compare against")
@settings(suppress_health_check=HEALTH, max_examples=max(1, EXAMPLES // 2))
@given(scenario_documents("float32"))
def test_numpy_and_torch_agree_on_random_float32_networks(document):
    check_agreement(document, ("numpy", "torch"))


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
