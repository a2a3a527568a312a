"""Properties of the three implementations themselves: layout, scoping, copying, stability."""

import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import backproof
from conftest import require, scenario

ROOT = Path(__file__).resolve().parent.parent


# --- dependencies point one way ----------------------------------------------

ALLOWED_IMPORTS = {
    "reference": {"numpy", "dataclasses", "math", "typing", "reference"},      # math: erf, which NumPy lacks (GELU)
    "torch_impl": {"numpy", "torch", "contextlib", "functools", "warnings", "reference", "torch_impl"},
    "jax_impl": {"numpy", "jax", "optax", "contextlib", "dataclasses", "functools", "typing", "reference", "jax_impl"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED_IMPORTS))
def test_implementations_import_only_their_framework(package):
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {package if node.level else node.module.split(".")[0]}
            else:
                continue
            assert roots <= ALLOWED_IMPORTS[package], f"{path.name} imports {roots - ALLOWED_IMPORTS[package]}"


def test_importing_backproof_imports_neither_torch_nor_jax():
    code = "import sys, backproof, backproof.cli; print(json.dumps(sorted(m for m in ('torch', 'jax') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert json.loads(out) == []


# --- the reference --------------------------------------------------------------

def test_reference_sigmoid_is_stable_at_plus_minus_1000():
    from reference.activations import sigmoid, sigmoid_grad
    z = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, ds = sigmoid(z), sigmoid_grad(z)
    assert s[0] == 0.0 and s[2] == 0.5 and s[-1] == 1.0
    assert np.all(np.isfinite(ds)) and ds[2] == 0.25
    assert sigmoid(np.float32([-1000.0]))[0] == 0.0


def test_reference_backward_returns_gradients_and_changes_no_weight():
    from reference import Model, gradients
    sc = scenario("blog-2-3-3-1")
    model = Model(sc)
    before = {k: v.copy() for k, v in model.parameters().items()}
    values = gradients(model, np.array(sc.inputs), sc.targets, sc.criterion)
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert all(g is not None for g in values.grads.values())


def test_scenario_arrays_are_read_only():
    sc = scenario("blog-2-3-3-1")
    with pytest.raises(ValueError):
        sc.layers[0].weight[0, 0] = 99.0
    with pytest.raises(ValueError):
        sc.inputs[0, 0] = 99.0


def test_every_framework_leaves_the_scenario_unchanged(framework):
    sc = scenario("blog-2-3-3-1")
    before = {k: v.copy() for k, v in sc.parameters().items()}
    require(framework).run_step(sc)
    for name, value in sc.parameters().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{framework} changed {name}")


# --- torch -----------------------------------------------------------------------

def test_torch_weights_are_copied_not_shared():
    torch_impl = require("torch")
    import torch
    sc = scenario("blog-2-3-3-1")
    model = torch_impl.Model(sc)
    with torch.no_grad():
        model.layers[0].weight.fill_(7.0)
    assert sc.layers[0].weight[0, 0] == 0.1
    assert model.layers[2].weight.dtype == torch.float64


# --- JAX ---------------------------------------------------------------------------

def test_jax_layout_round_trip():
    jax_impl = require("jax")
    sc = scenario("blog-2-3-3-1")
    layers = [(spec.weight, spec.bias) for spec in sc.layers]
    flax = jax_impl.to_flax(layers)
    assert [p["kernel"].shape for p in flax] == [(2, 3), (3, 3), (3, 1)]
    assert flax[0]["kernel"][1, 0] == sc.layers[0].weight[0, 1]     # kernel[in, out] = weight[out, in]
    back = jax_impl.from_flax(flax)
    for (w, b), named in zip(layers, back):
        np.testing.assert_array_equal(w, named["weight"])
        np.testing.assert_array_equal(b, named["bias"])
    flax[0]["kernel"][0, 0] = 5.0                                     # a copy, not a view
    assert sc.layers[0].weight[0, 0] == 0.1


def test_jax_layout_converter_asserts_shapes():
    jax_impl = require("jax")
    with pytest.raises(AssertionError):
        jax_impl.to_flax([(np.zeros((3, 2)), np.zeros(2))])
    with pytest.raises(AssertionError):
        jax_impl.from_flax([{"kernel": np.zeros((2, 3)), "bias": np.zeros(2)}])


def test_jax_x64_is_scoped_and_float64_is_real():
    """Running a float64 scenario computes in float64 but leaves the global JAX config as it was: in this process,
    after whatever the tests before it ran, JAX still computes float32 by default."""
    jax_impl = require("jax")
    import jax
    import jax.numpy as jnp
    before = jax.config.jax_enable_x64
    t = jax_impl.run_step(backproof.load("blog-2-3-3-1"))
    assert [before, jax.config.jax_enable_x64, t["loss"].dtype, jnp.zeros(1).dtype] == [False, False, np.float64,
                                                                                       np.float32]


# --- the declared interface ---------------------------------------------------------------------

@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_each_implementation_offers_the_declared_interface(framework):
    from backproof.interface import Autodiff, Implementation
    module = require(framework)
    assert isinstance(module, Implementation)
    assert isinstance(module, Autodiff) == (framework != "numpy")


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_every_registry_name_is_in_every_implementation(framework):
    """A layer type, activation, loss or optimizer declared once and missing from an implementation fails here,
    naming the table and the name."""
    import reference
    from reference.registry import LAYER_TYPES, OPTIMIZER_TYPES
    module = require(framework)
    declared = {"LAYERS": set(LAYER_TYPES), "ACTIVATIONS": set(reference.ACTIVATIONS),
                "LOSSES": set(reference.LOSSES), "OPTIMIZERS": set(OPTIMIZER_TYPES)}
    for table, names in declared.items():
        assert set(getattr(module, table)) == names, (framework, table, names ^ set(getattr(module, table)))


def test_the_harness_reaches_past_no_implementation_interface():
    """backproof uses each implementation through backproof/interface.py and the packages' exports only: no
    ``torch_impl.network`` import, no ``….network.…`` attribute (tests may look inside; the harness may not)."""
    offences = []
    for path in sorted((ROOT / "backproof").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("torch_impl",
                                                                                                 "jax_impl"):
                if node.module.count("."):
                    offences.append(f"{path.name}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.Import):
                offences += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names
                             if a.name.split(".")[0] in ("torch_impl", "jax_impl") and "." in a.name]
            elif isinstance(node, ast.Attribute) and node.attr == "network":
                offences.append(f"{path.name}:{node.lineno} .network")
    assert not offences, offences
