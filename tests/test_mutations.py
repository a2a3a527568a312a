"""Mutation testing: each realistic bug planted in the reference is caught, at the tensor where it enters.

The bugs live in backproof/mutations.py (each one replaces a function or method of
``reference`` for the duration of one check; no file is edited). For every built-in
scenario the mutant names the first tensor its bug corrupts, or None where the
scenario cannot show it; the harness must fail exactly there and pass elsewhere.
"""

import numpy as np
import pytest

import reference
from backproof.check import check_scenario
from tools.mutations import MUTANTS, Patch, run
from tools.mutations import outcomes as cached_outcomes
from conftest import QUICK, require, scenario, trace

pytestmark = pytest.mark.xdist_group("mutations")     # shares tools.mutations' cached runs with test_docs


@pytest.fixture
def restored_reference():
    """After the test, the reference computes exactly what it did before: every mutant was undone."""
    yield
    clean = trace("numpy", "mixed-3-4-3-2", "float64")
    again = reference.run_step(scenario("mixed-3-4-3-2"))
    for name, value in clean.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)


def quick_names(mutant):
    """The first two QUICK built-ins where ``mutant`` can show (it must be caught at the tensor it corrupts first), then
    the first where it cannot (the check must pass there); make test-all runs it on every built-in."""
    showing, silent = [], []
    for name in sorted(QUICK):
        can_show = mutant.expected(scenario(name), trace("numpy", name, "float64")) is not None
        (showing if can_show else silent).append(name)
    return showing[:2] + silent[:1]


@pytest.mark.parametrize("every", [pytest.param(False, id="quick"), pytest.param(True, id="every-built-in",
                                                                              marks=pytest.mark.slow)])
@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_the_harness_catches_the_bug_where_it_enters(mutant, every, restored_reference):
    """On every built-in (make test-all, and the table docs/evidence.md shows), and in make test on two QUICK
    built-ins where the bug can show (every planted bug shows in one of them) and one where it cannot."""
    require("torch")
    require("jax")
    outcomes = cached_outcomes(mutant) if every else cached_outcomes(mutant, quick_names(mutant))
    wrong = [f"{o.scenario}: expected {o.expected or 'a pass'}, the check "
             + ("passed" if o.check_ok else f"reported {o.reported}") for o in outcomes if not o.correct]
    assert not wrong, f"{mutant.id} ({mutant.bug}):\n" + "\n".join(wrong)
    assert any(o.expected for o in outcomes), f"{mutant.id}: no built-in scenario can show this bug"


def test_there_are_at_least_twelve_distinct_bugs():
    assert len({m.id for m in MUTANTS}) == len(MUTANTS) >= 12


def test_derivative_at_the_output_is_an_equivalent_mutant_for_relu(restored_reference):
    """relu'(relu(z)) = relu'(z) for every z, 0 included: the relu-only scenarios cannot see this bug."""
    mutant = next(m for m in MUTANTS if m.id == "derivative-at-output")
    relu_only = ["deep-1-2-2-1", "grokking-3-4-1", "kink-relu-2-2-1"]
    for name in relu_only:
        assert {spec.activation for spec in scenario(name).layers} <= {"relu", "identity"}
    patch = Patch()
    try:
        mutant.apply(patch, None)
        for name in relu_only:
            mutated = reference.run_step(scenario(name))
            for tensor, value in trace("numpy", name, "float64").items():
                np.testing.assert_array_equal(mutated[tensor], value, err_msg=f"{name} {tensor}")
    finally:
        patch.undo()


def test_a_gradient_of_the_wrong_shape_is_refused_by_name():
    """Where a transposed gradient is not square, NumPy would broadcast it; update names the parameter."""
    sc = scenario("blog-2-3-3-1")
    params = sc.parameters()
    grads = {name: np.zeros(value.shape) for name, value in params.items()}
    grads["layers.2.weight"] = np.zeros((3, 1))
    with pytest.raises(ValueError, match=r"update: the gradient of layers\.2\.weight has shape \(3, 1\), "
                                         r"the parameter \(1, 3\)"):
        reference.update(params, grads, {}, sc.optimizer)


def test_the_clean_reference_passes_everything():
    """The control: with no bug planted, every built-in scenario passes."""
    require("torch")
    require("jax")
    for name in ("blog-2-3-3-1", "mixed-3-4-3-2", "kink-leaky-relu-2-2-1"):
        assert check_scenario(scenario(name)).ok, name


def test_every_planted_bug_shows_in_a_quick_built_in():
    """make test runs the mutation check on QUICK alone: each bug must be visible in one of them, read off the
    mutant's own ``expected`` (no check is run here)."""
    for mutant in MUTANTS:
        shown = [name for name in sorted(QUICK) if mutant.expected(scenario(name), trace("numpy", name, "float64"))]
        assert shown, f"{mutant.id}: no QUICK built-in can show it"


@pytest.mark.parametrize("mutant_id, words", [
    ("lstm-forget-bias-missing", "beyond tolerance from step 1)"),     # c_0 = 0: the forget gate matters from step 1
    ("lstm-gates-ifog", "beyond tolerance from step 0)"),
    ("lstm-cell-state-gradient-dropped", "(cell candidate g, unit 3)")])
def test_a_recurrent_divergence_names_its_step_and_its_gate(mutant_id, words):
    """In a sequence network the verdict says what the worst element is (row, step, unit; a weight's row as its gate)
    and from which step the frameworks part, not only an index."""
    require("torch")
    (mutant,) = [m for m in MUTANTS if m.id == mutant_id]
    sc = scenario("lstm-gru-count-bits")
    patch = Patch()
    try:
        mutant.apply(patch, sc)
        report = check_scenario(sc, ["numpy", "torch"])
    finally:
        patch.undo()
    assert words in report.verdict, report.verdict
