"""Pre-activations exactly on a kink: relu agrees everywhere; leaky_relu is a reported convention difference."""

import json

import numpy as np
import pytest

import backproof
import reference
from backproof.check import check_scenario
from backproof.cli import main
from backproof.kink_conventions import (derivative_at_zero, exact_kinks, explain_kinks,
                                       reference_with_kink_derivatives)
from backproof.compare import compare_traces
from conftest import NUMPY_ONLY, STEP_ATOL, STEP_RTOL, require, scenario, trace

LEAKY, RELU = "kink-leaky-relu-2-2-1", "kink-relu-2-2-1"
ALL = ("numpy",) if NUMPY_ONLY else ("numpy", "torch", "jax")


def test_the_kinks_are_exact_in_both_dtypes(dtype, framework):
    for name in (LEAKY, RELU):
        t = trace(framework, name, dtype)
        assert exact_kinks(scenario(name, dtype), {framework: t}) == {0: [(0, 0), (1, 0)]}
        assert np.all(t["layers.0.z"][:, 1] != 0)


def test_the_references_choice_at_the_kink():
    """relu'(0) = 0 and leaky_relu'(0) = negative_slope: the left derivative, as torch."""
    assert derivative_at_zero("numpy", "relu", 0.01, "float64") == 0.0
    assert derivative_at_zero("numpy", "leaky_relu", 0.01, "float64") == 0.01
    assert derivative_at_zero("numpy", "leaky_relu", 0.25, "float32") == 0.25
    t = trace("numpy", LEAKY, "float64")
    sc = scenario(LEAKY)
    # the kinked unit's dz is the upstream gradient times the slope, in every row
    upstream = t["layers.1.dz"] @ sc.layers[1].weight
    np.testing.assert_allclose(t["layers.0.dz"][:, 0], 0.01 * upstream[:, 0], rtol=STEP_RTOL, atol=STEP_ATOL)


def test_frameworks_derivatives_at_zero():
    require("torch")
    require("jax")
    assert derivative_at_zero("torch", "leaky_relu", 0.01, "float64") == 0.01
    assert derivative_at_zero("jax", "leaky_relu", 0.01, "float64") == 1.0
    assert derivative_at_zero("torch", "relu", 0.01, "float32") == derivative_at_zero("jax", "relu", 0.01, "float32") == 0.0


def test_relu_kink_agrees_and_says_so(dtype):
    report = check_scenario(scenario(RELU, dtype), ALL)
    assert report.ok and not report.explained
    assert all(c.ok for c in report.comparisons)
    (note,) = report.kinks
    assert note.agree and note.row == "relu-kink" and set(note.values.values()) == {0.0}
    assert "they agree (registry row relu-kink)" in note.message()


def test_leaky_relu_kink_is_a_convention_difference_not_a_failure(dtype):
    require("torch")
    require("jax")
    report = check_scenario(scenario(LEAKY, dtype), ALL)
    assert report.ok, report.first_divergence
    (note,) = report.convention_differences
    assert note.values == {"numpy": pytest.approx(0.01), "torch": pytest.approx(0.01), "jax": 1.0}
    assert note.positions == [(0, 0), (1, 0)]
    assert note.message().startswith("convention difference at layers.0.z[0,0], layers.0.z[1,0] = 0: "
                                     "leaky_relu'(0) is 0.01 in numpy and torch and 1 in jax")
    assert note.message().endswith("(registry row leaky-relu-kink)")
    failing = [c for c in report.comparisons if not c.ok]
    assert failing and all(report.is_explained(c) and "jax" in (c.a, c.b) for c in failing)
    assert {c.tensor for c in failing} >= {"layers.0.dz", "grad.layers.0.weight", "updated.layers.0.weight"}
    assert not any(c.tensor.startswith("layers.1") or c.tensor in ("output", "loss") for c in failing)

    strict = check_scenario(scenario(LEAKY, dtype), ALL, strict=True)
    assert not strict.ok
    assert strict.first_divergence.tensor == "layers.0.dz"


def test_a_real_bug_at_a_kink_is_not_excused():
    """A JAX trace that differs in anything beyond its own kink convention stays a failure."""
    require("jax")
    sc = scenario(LEAKY)
    traces = {"numpy": trace("numpy", LEAKY, "float64"), "jax": dict(trace("jax", LEAKY, "float64"))}
    traces["jax"]["updated.layers.1.bias"] = traces["jax"]["updated.layers.1.bias"] + 1e-6
    comparisons = compare_traces(traces, list(backproof.tensor_shapes(sc)), "float64")
    notes, explained = explain_kinks(sc, traces, comparisons)
    assert notes and ("layers.0.dz", "numpy", "jax") in explained
    assert not any(tensor == "updated.layers.1.bias" for tensor, _, _ in explained)
    assert [c.tensor for c in comparisons if not c.ok and (c.tensor, c.a, c.b) not in explained] == \
        ["updated.layers.1.bias"]
    # and the untouched trace is explained by the reference re-run with JAX's convention
    emulated = reference_with_kink_derivatives(sc, {0: 1.0})
    for name, value in trace("jax", LEAKY, "float64").items():
        np.testing.assert_allclose(value, emulated[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_cli_exit_codes_and_json(capsys):
    require("torch")
    require("jax")
    assert main(["check", LEAKY]) == 0
    out = capsys.readouterr().out
    assert "convention difference at layers.0.z[0,0], layers.0.z[1,0] = 0" in out and "≈ 4.826" in out
    assert main(["check", LEAKY, "--strict"]) == 1
    assert "a kink convention explains it, and --strict was given" in capsys.readouterr().out
    assert main(["check", LEAKY, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (report,) = doc["results"]
    (kink,) = report["step"]["kink_conventions"]
    assert kink["registry_row"] == "leaky-relu-kink" and kink["agree"] is False
    assert any(c["explained_by_convention"] for cs in report["step"]["comparisons"].values() for c in cs)


def test_verify_leaves_finite_differences_out_at_a_kink():
    def reference_gradients(params, inputs, targets):
        return reference.loss_and_gradients(scenario(RELU).with_parameters(params), inputs=inputs, targets=targets)[1]

    result = backproof.verify(reference_gradients, scenario(RELU), ("numpy",))
    assert result.ok and "finite_differences" not in result.oracles
    assert "within rounding of its kink" in result.notes[0] and "note: finite differences left out" in str(result)


def test_documented_kink_values_are_the_registry_rows():
    from backproof.conventions import registry
    from backproof.kink_conventions import DOCUMENTED, KINKED, documented

    labels = {"relu": {"numpy": "numpy", "torch": "torch F.relu", "jax": "jax.nn.relu"},
              "leaky_relu": {"numpy": "numpy", "torch": "torch F.leaky_relu", "jax": "jax.nn.leaky_relu"}}
    rows = {row.id: row for row in registry()}
    for activation, frameworks in DOCUMENTED.items():
        row = rows[KINKED[activation]]
        for framework in frameworks:        # the registry rows are measured at slope 0.01
            assert documented(framework, activation, 0.01) == row.values[labels[activation][framework]]
