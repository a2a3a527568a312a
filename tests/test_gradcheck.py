"""Finite differences in the reference: on copies, per coordinate and along random directions, ε per dtype."""


import numpy as np
import pytest

import backproof
import reference
from tools.bench import mlp
from backproof.kink_conventions import reference_with_kink_derivatives, within_a_step_of_a_kink
from backproof.compare import compare_arrays
from conftest import SMOOTH, scenario
from reference import gradcheck
from reference.network import loss_and_gradients, loss_of


def setup(name, dtype="float64"):
    sc = scenario(name, dtype)
    params = {k: np.array(v) for k, v in sc.parameters().items()}
    _, grads = loss_and_gradients(sc)
    return sc, params, grads, loss_of(sc)


def coordinate_check(grads, numeric, dtype):
    """Every parameter's comparison under the finite-difference tolerance."""
    return [compare_arrays(f"grad.{k}", "analytic", grads[k], "fd", numeric[k].astype(dtype), dtype,
                           "finite_difference") for k in grads]


def directional_check(grads, params, loss, dtype, seed=0):
    numeric, analytic = gradcheck.directional_derivatives(loss, grads, params, gradcheck.random_directions(params, 8, seed))
    return compare_arrays("directions", "analytic", analytic.astype(dtype), "fd", numeric.astype(dtype), dtype,
                          "finite_difference")


def test_finite_differences_never_touch_the_callers_arrays():
    sc, params, grads, loss = setup("blog-2-3-3-1")
    before = {k: v.copy() for k, v in params.items()}
    gradcheck.central_differences(loss, params)
    gradcheck.directional_derivatives(loss, grads, params, gradcheck.random_directions(params, 3))
    gradcheck.epsilon_sweep(loss, grads, params, count=2)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])

    calls = []

    def failing(p):
        calls.append(1)
        if len(calls) == 3:          # raises midway, with a probe perturbed
            raise RuntimeError("boom")
        return loss(p)

    with pytest.raises(RuntimeError, match="boom"):
        gradcheck.central_differences(failing, params)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_per_coordinate_differences_pass_on_correct_gradients(smooth_scenario_name, dtype):
    """With the default ε of each dtype, no built-in scenario fails spuriously, unless a step of ε can cross a
    kink: then the test asks that it be float32's step of 1e-2, over a relu-family layer, so no scenario is left out
    silently (spiral-2-16-3-adam in float32, whose 960 relu pre-activations include one at 8e-4; the CNNs' relu maps).
    Which scenarios those are is a property of their data, not of the machine: the test pins the rule, not the list."""
    sc = scenario(smooth_scenario_name, dtype)
    if within_a_step_of_a_kink(sc, gradcheck.default_delta(dtype)):
        assert dtype == "float32" and any(spec.activation in ("relu", "leaky_relu") for spec in sc.layers), \
            smooth_scenario_name
        return
    _, params, grads, loss = setup(smooth_scenario_name, dtype)
    for c in coordinate_check(grads, gradcheck.central_differences(loss, params), dtype):
        assert c.ok, c.message(smooth_scenario_name)


def test_random_directions_pass_on_correct_gradients(smooth_scenario_name, dtype):
    _, params, grads, loss = setup(smooth_scenario_name, dtype)
    c = directional_check(grads, params, loss, dtype)
    assert c.ok, c.message(smooth_scenario_name)


def test_both_checks_catch_a_relative_error_of_1e_4_in_float64(smooth_scenario_name):
    _, params, grads, loss = setup(smooth_scenario_name)
    scaled = {k: v * (1 + 1e-4) for k, v in grads.items()}
    assert not directional_check(scaled, params, loss, "float64").ok
    numeric = gradcheck.central_differences(loss, params)
    assert not all(c.ok for c in coordinate_check(scaled, numeric, "float64"))

    # one element alone, the largest, off by 1e-4 relative: per coordinate names it
    name = max(grads, key=lambda k: np.max(np.abs(grads[k])))
    index = np.unravel_index(np.argmax(np.abs(grads[name])), grads[name].shape)
    one = {k: v.copy() for k, v in grads.items()}
    one[name][index] *= 1 + 1e-4
    failed = [c for c in coordinate_check(one, numeric, "float64") if not c.ok]
    assert [(c.tensor, c.worst_index) for c in failed] == [(f"grad.{name}", tuple(int(i) for i in index))]


def test_a_step_that_rounds_away_is_not_reported_as_agreement():
    _, params, grads, loss = setup("blog-2-3-3-1", "float32")
    numeric = gradcheck.central_differences(loss, params, delta=1e-12)
    assert all(np.isnan(v).all() for v in numeric.values())
    assert gradcheck.relative_error(*gradcheck.directional_derivatives(
        loss, grads, params, gradcheck.random_directions(params, 2), 1e-12)) == float("inf")


def test_epsilon_sweep_is_v_shaped_in_float64(smooth_scenario_name):
    """Truncation error falls as ε shrinks, then round-off takes over: the minimum is inside the range."""
    _, params, grads, loss = setup(smooth_scenario_name)
    sweep = gradcheck.epsilon_sweep(loss, grads, params)
    errors = [error for _, error in sweep]
    best = int(np.argmin(errors))
    assert 0 < best < len(errors) - 1, sweep
    assert errors[0] > 100 * errors[best] and errors[-1] > 100 * errors[best], sweep
    assert gradcheck.best_delta(sweep) == sweep[best][0]
    # the right arm rises: round-off grows roughly as 1/ε over the last three decades
    assert errors[-1] > errors[-4], sweep


@pytest.mark.slow       # an ε sweep on every smooth built-in; make test-all (CI) runs it
def test_the_default_epsilon_is_near_the_bottom_of_the_measured_v():
    """The default ε of each dtype is within one decade of the best ε of every built-in sweep."""
    for dtype in ("float64", "float32"):
        for name in SMOOTH:
            _, params, grads, loss = setup(name, dtype)
            best = gradcheck.best_delta(gradcheck.epsilon_sweep(loss, grads, params, count=8))
            assert abs(np.log10(best) - np.log10(gradcheck.DEFAULT_DELTA[dtype])) <= 1, (name, dtype, best)


def test_finite_differences_straddle_an_exact_kink():
    """At z = 0 exactly the loss has only one-sided derivatives; central differences measure their mean."""
    sc, params, grads, loss = setup("kink-relu-2-2-1")
    numeric = gradcheck.central_differences(loss, params)
    # unit 0 of layer 0 sits on the kink in both rows: relu'(0) = 0 (the left derivative) gives 0 ...
    assert grads["layers.0.bias"][0] == 0 and np.all(grads["layers.0.weight"][0] == 0)
    # ... the right derivative takes relu'(0) = 1; central differences measure the mean of the two
    right = reference_with_kink_derivatives(sc, {0: 1.0})["grad.layers.0.bias"][0]
    assert right != 0
    # (to first order in ε: the curvature differs on the two sides, an O(ε) term, 4e-6 relative here)
    assert numeric["layers.0.bias"][0] == pytest.approx(right / 2, rel=1e-4)


# How long the 8-direction check of the 784-256-256-10 MLP takes is a benchmark, not a test (a timed assertion
# fails on a slower machine with the same code): `make bench` measures it in forward+backward passes beside its goal.
def test_the_benchmarks_mlp_is_the_one_its_goal_names():
    assert sum(p.size for p in mlp().parameters().values()) == 269_322


@pytest.mark.slow       # 269,322 parameters; the fast tier runs the directional check on every QUICK built-in
def test_the_random_direction_check_is_right_on_the_mlp():
    sc = mlp(batch=16)
    params = sc.parameters()
    _, grads = loss_and_gradients(sc)
    loss = loss_of(sc)
    assert directional_check(grads, params, loss, "float64").ok
    assert not directional_check({k: v * (1 + 1e-4) for k, v in grads.items()}, params, loss, "float64").ok
