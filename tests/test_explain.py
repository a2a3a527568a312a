"""`backproof explain`: every factor of every path, checked against autodiff; every sum against grad.*."""

import json
import re

import numpy as np

import backproof
import pytest

from backproof.cli import main
from backproof.explain import ExplainError, explain
from backproof.names import PARAMETER_RE
from conftest import NUMPY_ONLY, STEP_ATOL, STEP_RTOL, require, scenario, trace

ORACLES = ("numpy",) if NUMPY_ONLY else ("torch", "jax")     # an empty list is refused, as by the CLI
BLOG = "blog-2-3-3-1"


def autodiff_factor(factor, sc):
    """The factor's value from jax.grad / jax.jacobian at the forward values torch computed."""
    require("jax")
    import jax
    import jax.numpy as jnp
    from jax_impl.network import LOSSES, activation

    t = trace("torch", sc.name, "float64")
    layer, row, unit, source = factor.layer, factor.row, factor.unit, factor.source
    spec = sc.layers[layer]
    below = sc.inputs[row] if layer == 0 else t[f"layers.{layer - 1}.a"][row]
    with jax.enable_x64(True):
        if factor.kind == "loss":
            grad = jax.grad(lambda y: LOSSES[sc.loss](y, jnp.asarray(sc.targets)))(jnp.asarray(t["output"]))
            return float(grad[row, unit])
        if factor.kind == "activation":
            return float(jax.grad(activation(spec.activation, spec.negative_slope))(t[f"layers.{layer}.z"][row, unit]))
        bias = jnp.zeros(spec.shape[0]) if spec.bias is None else jnp.asarray(spec.bias)
        if factor.kind == "weight":      # ∂z_l / ∂a_{l-1}
            return float(jax.jacobian(lambda a: jnp.asarray(spec.weight) @ a + bias)(jnp.asarray(below))[unit, source])
        if factor.kind == "input":       # ∂z_L / ∂W_L
            return float(jax.jacobian(lambda w: w @ jnp.asarray(below) + bias)(jnp.asarray(spec.weight))[unit, unit, source])
        assert factor.kind == "bias"
        return float(jax.jacobian(lambda b: jnp.asarray(spec.weight) @ jnp.asarray(below) + b)(bias)[unit, unit])


@pytest.mark.parametrize("alias, paths", [("w16", 1), ("w7", 1), pytest.param("w1", 3, marks=pytest.mark.slow)])
def test_every_factor_matches_autodiff(alias, paths):
    sc = scenario(BLOG)
    result = explain(sc, alias, ORACLES)
    assert len(result.paths) == paths == result.path_count
    for path in result.paths:
        for factor in path.factors:
            assert factor.value == pytest.approx(autodiff_factor(factor, sc), rel=STEP_RTOL, abs=STEP_ATOL), factor
        assert path.product == pytest.approx(np.prod([f.value for f in path.factors]), rel=STEP_RTOL)


def test_w16_uses_the_posts_names_and_matches_its_printed_factors():
    result = explain(scenario(BLOG), "w16", ORACLES)
    (path,) = result.paths
    assert [f.symbol for f in path.factors] == ["∂E/∂out_n9", "∂out_n9/∂net_n9", "∂net_n9/∂w16"]
    assert path.factors[-1].equals == "out_n6"
    # the post prints these three factors to 4 decimals
    assert [round(f.value, 4) for f in path.factors] == [0.7935, 0.1579, 0.0197]
    text = str(result)
    assert "∂net_n9/∂w16 = out_n6" in text and "0.7 − 0.01 × 0.00246821 = 0.69997532" in text


def test_every_parameter_sum_matches_the_gradient():
    sc = scenario(BLOG)
    grads = {name[len("grad."):]: value for name, value in trace("numpy", BLOG, "float64").items()
             if name.startswith("grad.layers.")}
    updated = trace("numpy", BLOG, "float64")
    for name, grad in grads.items():
        for index in np.ndindex(grad.shape):
            element = f"{name}[{','.join(map(str, index))}]"
            result = explain(sc, element, ORACLES)
            assert result.total == pytest.approx(grad[index], rel=STEP_RTOL, abs=STEP_ATOL), element
            for oracle, value in result.oracles.items():
                tolerance = 1e-9 if oracle == "numpy+fd" else STEP_ATOL      # torch, JAX: another rounding
                assert abs(value - result.total) <= tolerance, (element, oracle, value, result.total)
            assert result.updated == pytest.approx(updated[f"updated.{name}"][index], rel=STEP_RTOL, abs=STEP_ATOL), element


def test_w1_single_path_erratum_is_computed():
    """Post 002 derives ∂E/∂w1 along n3 → n6 → n9 only; the true gradient sums three paths."""
    result = explain(scenario(BLOG), "w1", ORACLES)
    products = {" → ".join(p.names): p.product for p in result.paths}
    assert set(products) == {"n3 → n6 → n9", "n3 → n7 → n9", "n3 → n8 → n9"}    # n4 is not on w1's paths
    (erratum,) = result.errata
    assert erratum["id"] == "002-w1-single-path" and erratum["product"] == products["n3 → n6 → n9"]
    assert round(erratum["product"], 4) == 0.0141 and round(result.total, 4) == 0.0559
    assert result.total - erratum["product"] > 0.04
    text = str(result)
    assert "the source follows only n3 → n6 → n9, which gives 0.01412" in text and "misses 2 path(s)" in text


def test_delta_recursion_replaces_paths_when_there_are_too_many(scenario_name):
    sc = scenario(scenario_name)
    t = trace("numpy", scenario_name, "float64")
    for name in sc.parameters():
        index = (0,) * sc.parameters()[name].ndim
        element = f"{name}[{','.join(map(str, index))}]"
        kind = sc.layers[int(name.split(".")[1])].type
        if not PARAMETER_RE.match(name) or kind == "embedding":      # attention, a block, a cell, a lookup: refused
            with pytest.raises(ExplainError, match=rf"is a parameter inside an? {kind}; explain derives"):
                explain(sc, element, ("numpy",))
            continue
        full = explain(sc, element, ("numpy",), max_paths=10**6)
        short = explain(sc, element, ("numpy",), max_paths=1)
        if full.softmax_layers:           # a softmax on the way couples the paths: always the recursion
            assert full.paths == [] and "the paths are not independent" in str(full)
        elif sc.typed:                    # conv, pool, flatten: no single-weight paths, always the recursion
            assert full.paths == [] and "layer by layer" in str(full)
        else:
            assert len(full.paths) == full.path_count
        assert short.paths == [] or short.path_count <= 1
        for result in (full, short):
            assert result.total == pytest.approx(t[f"grad.{name}"][index], rel=STEP_RTOL, abs=STEP_ATOL), (element, result)
        if not short.paths:
            assert "δ recursion" in str(short) or (short.groups and "summed over the rows" in str(short))


def test_softmax_paths_are_not_independent_and_the_jacobian_is_written_out():
    """Through a softmax layer, explain uses the δ recursion with softmax's Jacobian, J = diag(a) − a·aᵀ, and
    still gives autodiff's number; the Jacobian shown is the one torch.autograd.functional.jacobian computes."""
    sc = scenario("softmax-2-3-3")
    result = explain(sc, "layers.0.weight[0,0]", ("numpy",))
    assert result.softmax_layers == [1] and result.paths == []
    label, jacobian = result.recursion[0]
    assert label.startswith("J1 = ∂a1/∂z1 (row 0)")
    a = trace("numpy", "softmax-2-3-3", "float64")["layers.1.a"][0]
    np.testing.assert_allclose(jacobian, np.diag(a) - np.outer(a, a), rtol=STEP_RTOL, atol=STEP_ATOL)
    torch = pytest.importorskip("torch")
    z = torch.tensor(trace("numpy", "softmax-2-3-3", "float64")["layers.1.z"][0])
    np.testing.assert_allclose(jacobian, torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), z).numpy(),
                               rtol=STEP_RTOL, atol=STEP_ATOL)
    assert result.total == pytest.approx(-0.0167681041, abs=5e-11)      # the value pinned in the scenario
    assert "J1ᵀ·(∂E/∂a1)" in str(result)


def test_bad_parameters_are_explain_errors():
    sc = scenario(BLOG)
    for text, message in [("w99", "'w99' is not a parameter"), ("layers.0.weight", "names a whole (3, 2) tensor"),
                          ("layers.0.weight[5,0]", "out of range"), ("layers.0.weight[a]", "is not NAME or NAME[i,j]")]:
        with pytest.raises(ExplainError, match=re.escape(message)):
            explain(sc, text, ("numpy",))


def test_cli_text_json_and_bad_input(capsys):
    assert main(["explain", BLOG, "w1", "--frameworks", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "path 3 (n3 → n8 → n9)" in out and "erratum 002-w1-single-path" in out
    assert "beside it: numpy (hand-derived backward) 0.055904307 · finite differences" in out
    assert main(["explain", BLOG, "layers.0.weight[0,0]", "--json", "--frameworks", "numpy"]) == 0
    doc = json.loads(capsys.readouterr().out)["results"][0]["explain"]
    assert doc["symbol"] == "w1" and len(doc["paths"]) == 3 and doc["errata"][0]["path"] == ["n3", "n6", "n9"]
    assert doc["gradient"] == pytest.approx(sum(p["product"] for p in doc["paths"]))
    assert main(["explain", BLOG, "w99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: blog-2-3-3-1: 'w99' is not a parameter") and err.count("\n") == 1


def test_explain_terminates_on_a_deep_narrow_network():
    """34 layers of 4 tanh units: 4³² = 2⁶⁴ paths a row (an int64 product wraps around to 0); the δ recursion answers."""
    import time
    rng = np.random.default_rng(0)
    layers = [{"weight": rng.uniform(-1, 1, (4, 2)).tolist(), "activation": "tanh"}]
    layers += [{"weight": rng.uniform(-1, 1, (4, 4)).tolist(), "activation": "tanh"} for _ in range(32)]
    layers += [{"weight": rng.uniform(-1, 1, (1, 4)).tolist(), "activation": "identity"}]
    sc = backproof.parse({"name": "deep-narrow", "layers": layers, "loss": "mse", "inputs": [[0.5, -0.5]],
                          "targets": [[0.1]], "optimizer": {"name": "sgd", "lr": 0.1}})
    start = time.perf_counter()
    result = explain(sc, "layers.0.weight[0,0]", ("numpy",))
    assert time.perf_counter() - start < 5
    assert result.path_count == 4 ** 32 and result.paths == [] and result.recursion
    assert result.total == pytest.approx(trace_of(sc)["grad.layers.0.weight"][0, 0], rel=1e-12, abs=1e-300)


def trace_of(sc):
    import reference
    return reference.run_step(sc)


def test_a_framework_failing_inside_explain_is_reported_not_raised(monkeypatch):
    from backproof import frameworks
    monkeypatch.setattr(frameworks, "_timed", lambda fn, name: ("error", f"RuntimeError: {name} exploded", 0.0))
    result = explain(scenario(BLOG), "w1", ("torch", "jax"))
    assert set(result.errors) <= {"torch", "jax"} and "numpy" in result.oracles
    assert all("exploded" in message for message in result.errors.values())


def test_the_api_takes_a_path_a_name_or_a_scenario_and_frameworks_as_text(tmp_path):
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "examples" / "sigmoid-2-3-2.json"
    for given in (path, str(path), backproof.load(path)):
        assert backproof.check(given, "numpy").ok
    assert backproof.check("blog-2-3-3-1", "numpy").traces.keys() == {"numpy"}
    assert backproof.explain("blog-2-3-3-1", "w1", "numpy").oracles["numpy"] == pytest.approx(0.0559043, abs=1e-7)
    with pytest.raises(ValueError, match="--frameworks takes"):
        backproof.check("blog-2-3-3-1", "numpy,tensorflow")


def test_a_batch_groups_its_paths_over_the_rows():
    """spiral-2-16-3-adam, 60 rows: each chain of units is one line, its products summed over the rows (issue: one
    near-identical path per row, ~500 lines); the groups are the per-row paths, regrouped, and sum to the gradient."""
    sc = scenario("spiral-2-16-3-adam")
    element = "layers.0.weight[3,1]"
    grouped = explain(sc, element, ("numpy",))
    listed = explain(sc, element, ("numpy",), max_paths=10**6)
    assert grouped.paths == [] and len(grouped.groups) == 3 and len(str(grouped).splitlines()) < 60
    for group in grouped.groups:
        mine = [p.product for p in listed.paths if p.units == group.units]
        assert mine == group.products and len(mine) == sc.inputs.shape[0]
    assert grouped.total == pytest.approx(trace("numpy", "spiral-2-16-3-adam", "float64")["grad.layers.0.weight"][3, 1],
                                          rel=STEP_RTOL, abs=STEP_ATOL)
    assert "chain 1: layer 0 unit 3 → layer 1 unit 0" in str(grouped) and " -0 " not in str(grouped)
