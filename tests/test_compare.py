"""The comparison helper: it checks shape and dtype first, and it catches errors just above tolerance."""

import numpy as np
import pytest

from backproof import TOLERANCES, compare_arrays, compare_traces, first_divergence, tensor_shapes
from conftest import DTYPES, scenario, trace


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_error_ten_times_the_tolerance_is_caught(dtype):
    atol, rtol = TOLERANCES[dtype]["step"]
    a = np.array([[0.5, -2.0, 3.0]], dtype=dtype)
    b = a.copy()
    b[0, 1] += 10 * (atol + rtol * 2.0)
    c = compare_arrays("layers.0.z", "numpy", a, "torch", b, dtype)
    assert not c.ok and c.worst_index == (0, 1)
    assert c.max_abs == pytest.approx(float(b[0, 1]) - float(a[0, 1]))
    assert compare_arrays("layers.0.z", "numpy", a, "torch", a.copy(), dtype).ok


def test_float64_catches_a_1e_9_relative_error():
    a = np.linspace(-3, 3, 12).reshape(3, 4)
    assert not compare_arrays("t", "x", a, "y", a * (1 + 1e-9), "float64").ok


def test_shape_and_dtype_are_checked_before_values():
    a = np.zeros((2, 3))
    c = compare_arrays("layers.1.a", "numpy", a, "jax", np.zeros((3, 2)), "float64")
    assert not c.ok and "shape (2, 3) vs (3, 2)" in c.problem
    c = compare_arrays("layers.1.a", "numpy", a, "jax", a.astype(np.float32), "float64")
    assert not c.ok and "dtype float64 vs float32" in c.problem


def test_nan_never_agrees_with_a_number():
    a = np.array([1.0, 2.0])
    assert not compare_arrays("loss", "numpy", a, "torch", np.array([1.0, np.nan]), "float64").ok


NONFINITE = {"finite": 1.0, "nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_kind", sorted(NONFINITE))
@pytest.mark.parametrize("b_kind", sorted(NONFINITE))
def test_non_finite_values_agree_only_with_the_same_kind_at_the_same_place(a_kind, b_kind, dtype):
    """inf never satisfies a tolerance (|inf − 1| ≤ atol + rtol·inf would hold), NaN matches only NaN."""
    a = np.array([0.5, NONFINITE[a_kind]], dtype=dtype)
    b = np.array([0.5, NONFINITE[b_kind]], dtype=dtype)
    c = compare_arrays("grad.layers.0.weight", "numpy", a, "torch", b, dtype)
    assert c.ok == (a_kind == b_kind), c
    if a_kind != b_kind:
        assert c.failing == ((1,),) and c.worst_index == (1,) and c.max_abs == float("inf")
    else:
        assert c.max_abs == 0.0


def test_an_infinite_gradient_never_agrees_with_a_finite_one():
    assert not compare_arrays("grad.x", "yours", np.array([np.inf]), "torch", np.array([1e308]), "float64").ok
    assert not compare_arrays("grad.x", "yours", np.array([1.0]), "torch", np.array([-np.inf]), "float64").ok


def test_first_divergence_is_the_earliest_tensor_in_canonical_order():
    sc = scenario("blog-2-3-3-1")
    order = list(tensor_shapes(sc))
    good = trace("numpy", "blog-2-3-3-1", "float64")
    bad = {name: value.copy() for name, value in good.items()}
    bad["grad.layers.1.bias"] += 1e-6          # where the bug enters ...
    bad["updated.layers.1.bias"] -= 1e-8       # ... and what it causes downstream
    comparisons = compare_traces({"numpy": good, "mutant": bad}, order, "float64")
    first = first_divergence(comparisons)
    assert first.tensor == "grad.layers.1.bias"
    message = first.message("blog-2-3-3-1")
    for part in ("blog-2-3-3-1", "grad.layers.1.bias", "numpy vs mutant", "max |Δ| 1e-06", "backward"):
        assert part in message, message


def test_canonical_order_is_forward_loss_backward_update():
    order = list(tensor_shapes(scenario("blog-2-3-3-1")))
    assert order[:7] == ["layers.0.z", "layers.0.a", "layers.1.z", "layers.1.a", "layers.2.z", "layers.2.a", "output"]
    assert order[7:11] == ["loss", "layers.2.dz", "layers.1.dz", "layers.0.dz"]
    assert order.index("grad.inputs") < order.index("updated.layers.0.weight")
    assert order[-1] == "updated.layers.2.bias"


def test_a_non_finite_mismatch_is_named():
    a = np.array([[1.0, 0.0]])
    b = np.array([[1.0, np.nan]])
    c = compare_arrays("grad.layers.1.weight", "torch", a, "numpy", b, "float64")
    assert not c.ok
    assert c.message() == ("grad.layers.1.weight (backward): non-finite in numpy only at grad.layers.1.weight[0,1]: "
                           "nan where torch gives 0")


def test_shared_non_finite_values_agree_and_are_said():
    a = np.array([np.inf, 2.0, np.nan])
    c = compare_arrays("layers.0.z", "numpy", a, "jax", a.copy(), "float64")
    assert c.ok and c.nonfinite == "2 non-finite value(s) the same in numpy and jax, first inf at layers.0.z[0]"
