"""Every printed value of every built-in scenario, in every framework; errata must be wrong."""

import numpy as np
import pytest

from backproof.check import check_expected
from conftest import scenario, trace


def test_printed_values(scenario_name, framework):
    sc = scenario(scenario_name)
    results = check_expected(sc, {framework: trace(framework, scenario_name, "float64")})
    assert len(results) == len(sc.expected)
    bad = [f"{sc.name} {framework} {r.key} -> {r.resolved}: printed {r.printed}, computed {r.computed}, "
           f"|Δ| {r.max_abs:.3g}, atol {r.atol}" + (" (erratum NOT reproduced)" if r.erratum else "")
           for r in results if not r.ok]
    assert not bad, "\n".join(bad)


def test_blog_errata_have_the_values_the_posts_own_updates_imply(framework):
    """dE/dw17 and dE/dw18 are 0.1408 and 0.1664, as 0.8 − 0.01·g = 0.798592 and 0.9 − 0.01·g = 0.898336 imply."""
    t = trace(framework, "blog-2-3-3-1", "float64")
    grad_w17, grad_w18 = t["grad.layers.2.weight"][0, 1], t["grad.layers.2.weight"][0, 2]
    assert grad_w17 == pytest.approx(0.1408, abs=5e-5)
    assert grad_w18 == pytest.approx(0.1664, abs=5e-5)
    assert (0.8 - 0.798592) / 0.01 == pytest.approx(grad_w17, abs=1e-4)
    assert (0.9 - 0.898336) / 0.01 == pytest.approx(grad_w18, abs=1e-4)
    sc = scenario("blog-2-3-3-1")
    for key in ("grad.w17", "grad.w18"):
        assert sc.expected[key]["erratum"]


def test_blog_chain_factors_printed_by_the_post():
    """The factors of the post's chain rule: ∂E/∂out9 = 0.7935 and ∂out9/∂net9 = 0.1579."""
    from reference.activations import sigmoid_grad
    from reference.losses import half_sse_grad

    sc = scenario("blog-2-3-3-1")
    t = trace("numpy", "blog-2-3-3-1", "float64")
    assert half_sse_grad(t["output"], sc.targets)[0, 0] == pytest.approx(0.7935, abs=5e-5)
    assert sigmoid_grad(t["layers.2.z"])[0, 0] == pytest.approx(0.1579, abs=5e-5)
    # and their product is the output layer's delta, dE/db7
    assert t["layers.2.dz"][0, 0] == pytest.approx(0.7935 * 0.1579, abs=5e-5)


def test_an_erratum_that_is_actually_right_fails():
    """An erratum passes only when the computed value disagrees with the printed one."""
    import dataclasses
    sc = scenario("blog-2-3-3-1")
    t = trace("numpy", "blog-2-3-3-1", "float64")
    wrong = dict(sc.expected)
    wrong["grad.w17"] = dict(wrong["grad.w17"], value=0.1408)     # the *correct* value, flagged as an erratum
    wrong["grad.w16"] = dict(wrong["grad.w16"], value=0.0035)     # a printed value that is off
    results = {r.key: r for r in check_expected(dataclasses.replace(sc, expected=wrong), {"numpy": t})}
    assert not results["grad.w17"].ok
    assert not results["grad.w16"].ok
    assert results["grad.w18"].ok


def test_alias_resolution():
    from backproof.names import resolve, tensor_shapes
    sc = scenario("blog-2-3-3-1")
    shapes = tensor_shapes(sc)
    params = {k: v.shape for k, v in sc.parameters().items()}
    assert resolve("grad.w17", shapes, params, sc.aliases) == ("grad.layers.2.weight", (0, 1))
    assert resolve("updated.b7", shapes, params, sc.aliases) == ("updated.layers.2.bias", (0,))
    assert resolve("w4", shapes, params, sc.aliases) == ("layers.0.weight", (0, 1))
    assert resolve("layers.0.a[0,2]", shapes, params, sc.aliases) == ("layers.0.a", (0, 2))
    assert resolve("grad.layers.1.weight[2,1]", shapes, params, sc.aliases) == ("grad.layers.1.weight", (2, 1))
    # the post's wiring: n4 = relu(w2·x1 + w5·x2 + b2)
    assert sc.parameters()["layers.0.weight"][1].tolist() == [0.2, 0.5]
    assert np.asarray(sc.parameters()["layers.0.bias"])[1] == -0.4
    for bad in ("grad.w99", "layers.0.a[0,3]", "layers.0.a[0]", "w1[0,0]"):
        with pytest.raises(ValueError):
            resolve(bad, shapes, params, sc.aliases)


def test_a_trace_missing_a_tensor_is_a_miss_not_a_crash():
    sc = scenario("blog-2-3-3-1")
    broken = {k: v for k, v in trace("numpy", "blog-2-3-3-1", "float64").items() if k != "layers.0.a"}
    results = {r.key: r for r in check_expected(sc, {"numpy": broken})}
    assert not results["layers.0.a"].ok and results["layers.0.a"].computed is None
    assert results["loss"].ok


# The widely reproduced two-sigmoid worked example (2-2-2, half squared error): E_total is printed to 9 digits, more
# than float32 holds (its step is ~3e-8 at 0.3).
TWO_SIGMOID = {
    "name": "two-sigmoid-2-2-2", "loss": "half_sse", "optimizer": {"name": "sgd", "lr": 0.5},
    "inputs": [[0.05, 0.10]], "targets": [[0.01, 0.99]],
    "layers": [{"weight": [[0.15, 0.20], [0.25, 0.30]], "bias": [0.35, 0.35], "activation": "sigmoid"},
               {"weight": [[0.40, 0.45], [0.50, 0.55]], "bias": [0.60, 0.60], "activation": "sigmoid"}],
    "expected": {"loss": {"value": 0.298371109, "atol": 5e-10, "note": "E_total"},
                 "output[0,0]": {"value": 0.75136507, "atol": 5e-9, "note": "out_o1"}},
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nine_digit_printed_values_are_judged_at_the_dtypes_resolution(dtype):
    """In float64 the printed atol judges; in float32, which cannot hold 9 digits (|Δ| 2.6e-9 > atol 5e-10), the
    float32 step tolerance at the printed value does, and the table says so. A value really wrong by 3e-5 fails in
    both dtypes."""
    from backproof import check
    from backproof.render import scenario_text
    from backproof.scenario_file import parse
    import json

    document = json.loads(json.dumps(TWO_SIGMOID))
    document["dtype"] = dtype
    report = check(parse(document, "two-sigmoid.json"), ("numpy",))
    assert report.ok, scenario_text(report)
    loss = next(r for r in report.expected if r.key == "loss")
    if dtype == "float64":
        assert not loss.raised and loss.effective_atol == 5e-10 and loss.max_abs <= 5e-10
    else:
        assert loss.raised and loss.max_abs > loss.atol                  # float32 misses the 9th digit
        assert loss.effective_atol == pytest.approx(1e-5 + 1e-5 * 0.298371109)
        assert "judged at float32's resolution" in scenario_text(report)
    document["expected"]["loss"]["value"] = 0.298371109 + 3e-5
    report = check(parse(document, "two-sigmoid.json"), ("numpy",))
    assert not report.ok and [r.key for r in report.expected if not r.ok] == ["loss"]
