"""Verdicts that hold on every machine: the perturbation `make test-portable` uses, and the verdicts under it."""

import numpy as np
import pytest

import backproof
from backproof import perturb
from backproof.compare import compare_traces
from backproof.names import tensor_shapes
from conftest import DTYPES, scenario, trace


def test_perturbed_moves_each_float_by_at_most_k_ulps_and_keeps_shape_dtype_and_everything_else():
    rng = np.random.default_rng(0)
    value = {"a": np.linspace(-3, 3, 50), "b": [np.float32(1.5) * np.ones((2, 3), np.float32)],
             "n": np.arange(4), "f": 1.25, "z": np.array(0.5)}
    out = perturb.perturbed(value, 4, rng)
    assert out["n"] is value["n"] and out["f"] == 1.25                    # integers and Python floats untouched
    assert isinstance(out["z"], np.ndarray) and out["z"].shape == ()        # a 0-d array stays an array
    for before, after in ((value["a"], out["a"]), (value["b"][0], out["b"][0])):
        assert after.dtype == before.dtype and after.shape == before.shape
        ulps = np.abs(after - before) / np.spacing(np.abs(before).astype(before.dtype))
        assert 0 < ulps.max() <= 4 * 2, ulps.max()          # k·ε·|x| is at most 2k ulps of x (ε ≥ ulp(x)/|x| ≥ ε/2)
    again = perturb.perturbed(value, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(again["a"], out["a"])                     # seeded: the same every run


def test_the_setting_is_read_strictly(monkeypatch):
    monkeypatch.delenv(perturb.VARIABLE, raising=False)
    assert perturb.setting() is None
    monkeypatch.setenv(perturb.VARIABLE, "torch:4")
    assert perturb.setting() == ("torch", 4)
    monkeypatch.setenv(perturb.VARIABLE, "torch")
    with pytest.raises(ValueError, match="FRAMEWORK:ULPS"):
        perturb.setting()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["blog-2-3-3-1", "spiral-2-16-3-adam", "mixed-3-4-3-2-rmsprop"])
def test_a_few_ulps_never_change_a_verdict_and_a_real_error_is_still_caught(name, dtype):
    """The reference against itself moved by 4 ulps agrees, in float64 and float32; an error of twice the tolerance,
    planted in one tensor of the moved trace, still fails there and only there."""
    sc = scenario(name, dtype)
    clean = trace("numpy", name, dtype)
    moved = perturb.perturbed(clean, 4, np.random.default_rng(0))
    assert all(c.ok for c in compare_traces({"numpy": clean, "moved": moved}, list(tensor_shapes(sc)), dtype))
    tensor = "grad.layers.0.weight"
    atol, rtol = backproof.compare.TOLERANCES[dtype]["step"]
    wrong = dict(moved, **{tensor: (moved[tensor] + 2 * (atol + rtol * np.abs(moved[tensor]))).astype(dtype)})
    failing = [c for c in compare_traces({"numpy": clean, "moved": wrong}, list(tensor_shapes(sc)), dtype) if not c.ok]
    assert [c.tensor for c in failing] == [tensor]
