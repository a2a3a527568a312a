"""Every documented convention is measured by calling the real framework function."""

import pytest

from backproof.conventions import registry
from backproof.frameworks import REQUIRES

CASES = [(row.id, framework) for row in registry() for framework in row.probes]


def needed_libraries(label):
    """'torch F.relu' -> (torch,), 'jnp.maximum(x, 0.)' -> (jax, optax), 'optax rmsprop' -> (jax, optax)."""
    first = label.split()[0].split(".")[0]
    if first == "flax":
        return ("jax", "flax")
    return REQUIRES.get({"jnp": "jax", "optax": "jax", "jax_impl": "jax"}.get(first, first), ("numpy",))


@pytest.mark.parametrize("row_id, framework", CASES, ids=[f"{r}-{f}" for r, f in CASES])
def test_documented_value_is_measured(row_id, framework):
    row = next(r for r in registry() if r.id == row_id)
    for library in needed_libraries(framework):
        pytest.importorskip(library)
    measured = row.probes[framework]()
    assert measured == row.values[framework], (
        f"registry row {row_id!r}: {framework} now gives {measured!r}, documented {row.values[framework]!r}")


def test_a_missing_flax_is_named_with_its_install_line(monkeypatch, capsys):
    import backproof.conventions as conventions
    from backproof.cli import main
    monkeypatch.setattr(conventions, "flax_missing_hint", lambda: "flax is not installed: pip install 'backproof[flax]'")
    assert main(["conventions"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "`linear-default-init`" in line)
    assert "flax.nnx.Linear: (1.0, False, 'zeros') (documented; flax is not installed: pip install" in row
    assert "torch nn.Linear: (0.6, True" in row


def test_every_row_has_a_reference_choice():
    for row in registry():
        assert row.reference and row.values, row.id


def test_the_precision_observations_can_tell_an_unpinned_run():
    """Without the pin, the same observations see the user's 'medium' in torch and DEFAULT dots in JAX."""
    import backproof
    from backproof.conventions import torch_settings_at_each_linear
    from conftest import require

    scenario = backproof.load("mixed-3-4-3-2").with_dtype("float32")
    torch_impl = require("torch")
    # the step without its precision() context
    def unpinned(sc):
        network = torch_impl.network
        network.gradients(network.Model(sc), *network.tensors(sc), sc.criterion)

    seen, after = torch_settings_at_each_linear(unpinned, scenario)
    assert {s[0] for s in seen} == {"medium"} and after == "medium"

    jax_impl = require("jax")
    network = jax_impl.network
    x, t = network.arrays(scenario)
    lowered = network.step.lower(network.Model.from_scenario(scenario), x, t, scenario.criterion, scenario.optimizer)
    assert "precision = [DEFAULT, DEFAULT]" in lowered.as_text()
    assert "precision = [DEFAULT" not in jax_impl.network.lowered_step(scenario)
