"""Every canonical tensor of every built-in scenario agrees for every pair of frameworks, in both dtypes."""

import numpy as np

from backproof import TOLERANCES, compare_arrays, tensor_shapes
from backproof.kink_conventions import explain_kinks
from conftest import scenario, trace

# the pairs that disagree at an exact kink, by design of the scenario (registry row leaky-relu-kink)
CONVENTION_PAIRS = {"kink-leaky-relu-2-2-1": {("numpy", "jax"), ("torch", "jax")}}


def test_every_tensor_agrees(scenario_name, dtype, pair):
    """Every tensor agrees, except where a documented kink convention explains the difference."""
    a, b = pair
    sc = scenario(scenario_name, dtype)
    traces = {a: trace(a, scenario_name, dtype), b: trace(b, scenario_name, dtype)}
    comparisons = [compare_arrays(name, a, traces[a][name], b, traces[b][name], dtype) for name in tensor_shapes(sc)]
    notes, explained = explain_kinks(sc, traces, comparisons)
    failures = [c.message(f"{scenario_name} [{dtype}]") for c in comparisons
                if not c.ok and (c.tensor, c.a, c.b) not in explained]
    assert not failures, f"{len(failures)} tensors disagree (tolerance {TOLERANCES[dtype]['step']}):\n" + "\n".join(failures)
    differs = any(not c.ok for c in comparisons)
    assert differs == (pair in CONVENTION_PAIRS.get(scenario_name, set())), (scenario_name, pair, notes)


def test_trace_has_every_name_with_the_right_shape_and_dtype(scenario_name, dtype, framework):
    """A float32 scenario never computes in float64 and vice versa, in any framework."""
    result = trace(framework, scenario_name, dtype)
    shapes = tensor_shapes(scenario(scenario_name, dtype))
    assert set(result) == set(shapes), f"{framework}: names differ: {set(result) ^ set(shapes)}"
    for name, shape in shapes.items():
        value = result[name]
        assert isinstance(value, np.ndarray), f"{scenario_name} {framework} {name}: {type(value)}"
        assert value.shape == shape, f"{scenario_name} {framework} {name}: shape {value.shape} != {shape}"
        assert value.dtype == np.dtype(dtype), f"{scenario_name} {framework} {name}: dtype {value.dtype} != {dtype}"
