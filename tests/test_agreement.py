"""Every canonical tensor of every built-in scenario agrees for every pair of frameworks, in both dtypes."""

import numpy as np

from backproof import TOLERANCES, compare_arrays, tensor_shapes
from conftest import scenario, trace


def test_every_tensor_agrees(scenario_name, dtype, pair):
    a, b = pair
    names = tensor_shapes(scenario(scenario_name, dtype))
    trace_a, trace_b = trace(a, scenario_name, dtype), trace(b, scenario_name, dtype)
    failures = [compare_arrays(name, a, trace_a[name], b, trace_b[name], dtype) for name in names]
    failures = [c.message(f"{scenario_name} [{dtype}]") for c in failures if not c.ok]
    assert not failures, f"{len(failures)} tensors disagree (tolerance {TOLERANCES[dtype]['step']}):\n" + "\n".join(failures)


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
