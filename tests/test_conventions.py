"""Every documented convention is measured by calling the real framework function."""

import pytest

from backproof.conventions import registry
from backproof.frameworks import REQUIRES

CASES = [(row.id, framework) for row in registry() for framework in row.probes]


def needed_library(label):
    """'torch F.relu' -> torch, 'jnp.maximum(x, 0.)' -> jax, 'numpy' -> numpy."""
    first = label.split()[0].split(".")[0]
    return REQUIRES.get({"jnp": "jax"}.get(first, first), "numpy")


@pytest.mark.parametrize("row_id, framework", CASES, ids=[f"{r}-{f}" for r, f in CASES])
def test_documented_value_is_measured(row_id, framework):
    row = next(r for r in registry() if r.id == row_id)
    pytest.importorskip(needed_library(framework))
    measured = row.probes[framework]()
    assert measured == row.values[framework], (
        f"registry row {row_id!r}: {framework} now gives {measured!r}, documented {row.values[framework]!r}")


def test_every_row_has_a_reference_choice():
    for row in registry():
        assert row.reference and row.values, row.id
