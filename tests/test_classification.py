"""Classification losses, softmax, optimizers with state, and the scenarios built for them."""

import json
import re
import warnings
from dataclasses import replace

import numpy as np
import pytest

import backproof
import reference
from backproof.scenario_file import ScenarioWarning, builtin_dir
from conftest import STEP_ATOL, STEP_RTOL, require, scenario, trace
from reference import Optimizer

# The new built-ins are checked with the old: every tensor in every pair and both dtypes (test_agreement.py),
# every pinned value in every framework (test_expected.py), training in both dtypes (test_training.py).


def test_every_generated_built_in_matches_its_recipe():
    """tools/scenarios.py regenerates every generated field (the spiral's data and weights from its seed, the
    variants from their base files) exactly; only the hand-pinned expected values are kept from disk."""
    from tools.scenarios import RECIPES, generated, text
    for recipe in RECIPES:
        document = generated(recipe)
        path = builtin_dir() / f"{document['name']}.json"
        assert path.read_text(encoding="utf-8") == text(document), f"{path.name} no longer matches {recipe.__name__}()"


def test_old_scenario_files_load_as_plain_sgd():
    """Files written before optimizers had state load unchanged: SGD at their lr, no buffers, no new names."""
    for name in ["blog-2-3-3-1", "deep-1-2-2-1", "grokking-3-4-1", "xor-2-3-1-tanh", "mixed-3-4-3-2"]:
        sc = backproof.load(name)
        assert sc.optimizer == Optimizer.of("sgd", sc.lr) and sc.optimizer.buffers() == ()
        assert sc.label_smoothing == 0.0 and sc.target_format == "rows"
        assert not [key for key in reference.run_step(sc) if key.startswith("state.")]
    sc = backproof.load("examples/sigmoid-2-3-2.json")
    assert sc.optimizer.name == "sgd"


@pytest.mark.parametrize("framework_name", ["numpy", "torch", "jax"])
def test_class_indices_and_one_hot_rows_give_the_same_step(framework_name):
    """torch's F.cross_entropy with a LongTensor and with probability rows, optax's integer-label and one-hot
    functions, the reference's one formula: one trace, to the last bits (the step tolerance)."""
    module = require(framework_name)
    indices = scenario("spiral-2-16-3-adam")
    rows = replace(indices, target_format="rows")
    a, b = module.run_step(indices), module.run_step(rows)
    for name in a:
        assert backproof.compare_arrays(name, "indices", a[name], "rows", b[name], "float64").ok, name


def test_label_smoothing_is_the_loss_of_smoothed_targets():
    sc = backproof.parse({**json.loads((builtin_dir() / "spiral-2-16-3-adam.json").read_text()),
                          "loss": {"name": "cross_entropy", "label_smoothing": 0.2}})
    smoothed = replace(sc, label_smoothing=0.0, target_format="rows", targets=0.8 * sc.targets + 0.2 / 3)
    for framework_name in ("numpy", "torch", "jax"):
        module = require(framework_name)
        a, b = module.run_step(sc), module.run_step(smoothed)
        assert abs(float(a["loss"]) - float(b["loss"])) < 1e-12, framework_name
        np.testing.assert_allclose(a["grad.layers.0.weight"], b["grad.layers.0.weight"], rtol=0, atol=1e-12)


def test_a_squashed_output_before_a_classification_loss_is_warned_about(tmp_path):
    document = json.loads((builtin_dir() / "softmax-2-3-3.json").read_text())
    document.update(loss="cross_entropy", targets=[0, 2])
    document.pop("expected")
    with pytest.warns(ScenarioWarning, match=r"layers\[1\]\.activation is softmax, but cross_entropy takes logits "
                                             r"and applies softmax itself: the output is squashed twice"):
        backproof.parse(document, "double.json")
    document["layers"][1]["activation"] = "identity"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backproof.parse(document, "logits.json")


def test_softmax_backward_is_the_jacobian_not_the_diagonal():
    from reference.activations import softmax, softmax_backward
    z = np.array([[0.3, -1.2, 2.0], [0.0, 0.0, 0.0]])
    a, da = softmax(z), np.array([[1.0, -2.0, 0.5], [0.2, 0.1, -0.3]])
    jacobians = [np.diag(row) - np.outer(row, row) for row in a]
    np.testing.assert_allclose(softmax_backward(a, da), [j.T @ g for j, g in zip(jacobians, da)],
                               rtol=STEP_RTOL, atol=STEP_ATOL)   # a matmul against a formula: rounding differs
    assert not np.allclose(softmax_backward(a, da), da * a * (1 - a))
    np.testing.assert_allclose(softmax(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])     # no overflow


def test_the_rmsprop_erratum_is_what_optax_rmsprop_computes():
    """rmsprop-defaults-2-3-1 pins, as an erratum, where optax.rmsprop's own defaults move a weight; recompute it
    with the real optax from the scenario's gradients."""
    require("jax")
    import jax
    import jax.numpy as jnp
    import optax
    sc = scenario("rmsprop-defaults-2-3-1")
    pinned = sc.expected["updated.layers.0.weight[0,1]"]
    assert pinned["erratum"]
    with jax.enable_x64(True):
        params = {k: jnp.asarray(v) for k, v in sc.parameters().items()}
        grads = {k[len("grad."):]: jnp.asarray(v) for k, v in trace("numpy", "rmsprop-defaults-2-3-1", "float64").items()
                 if k.startswith("grad.layers")}
        transformation = optax.rmsprop(sc.lr)
        updates, _ = transformation.update(grads, transformation.init(params), params)
        moved = float(optax.apply_updates(params, updates)["layers.0.weight"][0, 1])
    assert abs(moved - pinned["value"]) <= pinned["atol"]
    torch_value = float(trace("torch", "rmsprop-defaults-2-3-1", "float64")["updated.layers.0.weight"][0, 1])
    assert abs(torch_value - moved) > 0.05                       # the two defaults are far apart


def test_optimizer_state_is_traced_under_torch_names():
    expected = {"spiral-2-16-3-adam": ("exp_avg", "exp_avg_sq"), "xor-2-3-1-tanh-nesterov": ("momentum_buffer",),
                "mixed-3-4-3-2-rmsprop": ("square_avg", "grad_avg", "momentum_buffer"),
                "rmsprop-defaults-2-3-1": ("square_avg",)}
    for name, buffers in expected.items():
        sc = scenario(name)
        assert sc.optimizer.buffers() == buffers
        traced = {key for key in reference.run_step(sc) if key.startswith("state.")}
        assert traced == {f"state.{p}.{b}" for p in sc.parameters() for b in buffers}


def test_adam_state_after_one_step_is_written_out():
    """m = (1 − β₁)·g and v = (1 − β₂)·g² from zero state, and the first step is lr·sign(g) (bias-corrected)."""
    sc = scenario("spiral-2-16-3-adam")
    t = trace("numpy", "spiral-2-16-3-adam", "float64")
    g = t["grad.layers.1.weight"] + 5e-4 * sc.parameters()["layers.1.weight"]           # coupled weight decay
    np.testing.assert_allclose(t["state.layers.1.weight.exp_avg"], 0.1 * g, rtol=1e-12)
    np.testing.assert_allclose(t["state.layers.1.weight.exp_avg_sq"], 0.001 * g * g, rtol=1e-12)
    step = sc.parameters()["layers.1.weight"] - t["updated.layers.1.weight"]
    np.testing.assert_allclose(step, 0.05 * g / (np.abs(g) + 1e-8), rtol=1e-9)


def test_an_optimizer_amplifying_a_gradient_within_tolerance_is_explained_not_a_bug_in_it():
    """Adam's first step is lr·g/(|g| + ε): two float32 gradients 4e-6 apart (within the step tolerance) but of
    opposite sign move a weight 2·lr apart. Fed each framework's own gradients, the reference's update reproduces
    both, so check explains it; a wrong Adam (no bias correction) fed the same gradients is not explained."""
    from backproof.check import explain_amplified
    from backproof.compare import compare_traces
    from backproof.names import tensor_shapes
    from tools.mutations import _adam_without_bias_correction

    sc = scenario("spiral-2-16-3-adam", "float32")
    sc = replace(sc, optimizer=Optimizer.of("adam", sc.lr))            # no weight decay: g itself reaches Adam
    base = reference.run_step(sc)

    def with_gradient(value, rule=reference.update):
        trace = dict(base)
        grads = {name: base[f"grad.{name}"].copy() for name in sc.parameters()}
        grads["layers.1.bias"][0] = value
        trace["grad.layers.1.bias"] = grads["layers.1.bias"]
        updated, state = rule(sc.parameters(), grads, {}, sc.optimizer)
        trace.update({f"updated.{k}": v for k, v in updated.items()})
        trace.update({f"state.{k}.{b}": v for k, buffers in state.items() for b, v in buffers.items() if b != "step"})
        return trace

    traces = {"a": with_gradient(np.float32(2e-6)), "b": with_gradient(np.float32(-2e-6))}
    comparisons = compare_traces(traces, list(tensor_shapes(sc)), "float32")
    failing = {(c.tensor, c.a, c.b) for c in comparisons if not c.ok}
    assert ("updated.layers.1.bias", "a", "b") in failing and not any(t.startswith("grad.") for t, _, _ in failing)
    assert explain_amplified(sc, traces, comparisons) == failing
    wrong = lambda *args: _adam_without_bias_correction(*args[:3], args[3])
    traces["b"] = with_gradient(np.float32(-2e-6), lambda p, g, s, o: wrong(p, g, s, o))
    comparisons = compare_traces(traces, list(tensor_shapes(sc)), "float32")
    assert not explain_amplified(sc, traces, comparisons) & {(c.tensor, c.a, c.b) for c in comparisons
                                                             if c.tensor.startswith("updated.")}


def tagger_document(targets, loss="cross_entropy"):
    """A GRU read at every step by a linear head (a tagger): 3 rows of 5 steps, 3 classes."""
    rng = np.random.default_rng(3)
    gates = lambda *shape: (0.5 * rng.standard_normal(shape)).tolist()      # noqa: E731
    return {"name": "gru-tagger", "dtype": "float64", "loss": loss, "optimizer": {"name": "sgd", "lr": 0.1},
            "inputs": rng.standard_normal((3, 5, 2)).tolist(), "targets": targets,
            "layers": [{"type": "gru", "weight_ih_l0": gates(12, 2), "weight_hh_l0": gates(12, 4),
                        "bias_ih_l0": gates(12), "bias_hh_l0": gates(12)},
                       {"type": "linear", "weight": gates(3, 4), "bias": gates(3)}]}


TAGS = [[0, 1, 2, -100, 1], [2, 2, -100, -100, 0], [1, 0, 0, 1, 2]]


@pytest.mark.parametrize("label_smoothing", [0.0, pytest.param(0.1, marks=pytest.mark.slow)])   # make test-all: smoothed
def test_a_per_step_cross_entropy_leaves_the_ignored_steps_out_in_every_framework(label_smoothing):
    """A head at every step and one class index per step, torch's ignore_index −100 marking the padded ones: the three
    frameworks agree on the loss (the mean over the 12 counted steps) and on every gradient, and an ignored step's
    ∂L/∂z is exactly 0 (label smoothing included: it smooths the counted steps only)."""
    require("torch")
    require("jax")
    document = tagger_document(TAGS, {"name": "cross_entropy", "label_smoothing": label_smoothing})
    sc = backproof.parse(document)
    assert sc.target_format == "indices" and sc.class_indices().tolist() == TAGS
    report = backproof.check(sc)
    assert report.ok and report.coverage == "compared", report.verdict
    dz = report.traces["numpy"]["layers.1.dz"]
    ignored = np.array(TAGS) == -100
    assert np.all(dz[ignored] == 0) and np.all(np.abs(dz[~ignored]).sum(axis=-1) > 0)
    counted = [row[t] for row in TAGS for t in range(5) if row[t] != -100]
    import torch
    logits = torch.tensor(report.traces["numpy"]["output"]).reshape(-1, 3)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(TAGS).reshape(-1), label_smoothing=label_smoothing)
    assert len(counted) == 12 and abs(float(report.traces["jax"]["loss"]) - float(expected)) < 1e-12


@pytest.mark.parametrize("targets, message", [
    ([[0, 1, 2, 1, 1], [2, 2, 0, 0]], "targets must be 3 rows of 5 class indices, one per step"),
    ([[0, 1, 3, 1, 1]] * 3, "targets[0][2] is class 3, out of range: the last layer has 3 outputs (classes 0 to 2, "
                            "or -100 to leave the step out)"),
    ([[-100] * 5] * 3, "targets has every step -100 (ignored): the loss would average over no step"),
    ([[0.5, 0.5, 0.0]] * 3, "targets has shape (3, 3); the output is (n, T, out) = (3, 5, 3), or give (3, 5) class "
                            "indices")])
def test_per_step_targets_that_do_not_fit_are_named(targets, message):
    with pytest.raises(backproof.ScenarioError, match=re.escape(message)):
        backproof.parse(tagger_document(targets))


@pytest.mark.parametrize("inputs, message", [
    ([[0, 1.5], [2, 3]], "inputs[0][1] must be an index (a whole number) into layers[0]'s embeddings, not a number"),
    ([[0, 1], [2, 7]], "inputs[1][1] is 7, not a row of layers[0]'s 5 embeddings (0 to 4)"),
    ([[0, 1], [2]], "inputs[1] must hold 2 indices like the first row")])
def test_an_embeddings_indices_that_do_not_fit_are_named(inputs, message):
    document = {"name": "tokens", "loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1}, "inputs": inputs,
                "targets": [[0.0], [1.0]],
                "layers": [{"type": "embedding", "weight": np.ones((5, 2)).tolist()},
                           {"type": "sequence_pool", "mode": "mean"}, {"type": "linear", "weight": [[1.0, 1.0]]}]}
    with pytest.raises(backproof.ScenarioError, match=re.escape(message)):
        backproof.parse(document)
