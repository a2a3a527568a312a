"""Assertions for your own test suite, with the messages ``backproof check`` prints.

    from backproof.testing import assert_agree, assert_gradients, assert_printed_values

    def test_my_network_agrees():
        assert_agree("tests/nets/mynet.json")                  # every tensor, every pair, training too

    def test_my_backward_pass():
        assert_gradients(my_gradients, "tests/nets/mynet.json")

Each raises ``AssertionError`` whose first line is the first divergence (tensor, frameworks, |Δ|,
tolerance) or the missed printed value, followed by the full report. A framework that is not
installed is left out and named in the report; ``frameworks`` narrows the set. The pytest plugin
(installed with backproof) also collects ``*.backproof.json`` files as tests and provides the
``backproof_scenario`` fixture, a factory: ``backproof_scenario("mynet.json", dtype="float32")``.
"""

import os
from collections.abc import Callable, Iterable
from typing import Any

from reference import Scenario

from .check import ScenarioReport, check
from .layer_verify import LayerVerifyResult, verify_layer
from .frameworks import FRAMEWORKS, available
from .render import scenario_text, train_text, verify_text
from .scenario_file import as_scenario, fit_dtype
from .verify import AUTODIFF, VerifyResult, verify


__all__ = ["assert_agree", "assert_gradients", "assert_layer_gradients", "assert_printed_values", "load_scenario"]


def load_scenario(scenario: "Scenario | str | os.PathLike[str]", dtype: "str | None" = None) -> Scenario:
    """A Scenario (a Scenario, a built-in name or a path), in ``dtype`` when given."""
    loaded = as_scenario(scenario)
    return fit_dtype(loaded, dtype, loaded.name) if dtype else loaded


def _installed(frameworks: "Iterable[str] | None") -> "tuple[str, ...]":
    return tuple(fw for fw in (frameworks or FRAMEWORKS) if available(fw))


def failure_line(report: ScenarioReport) -> str:
    """The one line that says why a check failed: the first divergence, a framework error, a missed value."""
    divergence = report.first_divergence
    if report.errors:
        return "failed to run: " + "; ".join(f"{fw}: {error}" for fw, error in report.errors.items())
    if divergence is not None:
        return "first divergence: " + str(divergence.message(report.scenario.name))
    missed = [r for r in report.expected if not r.ok]
    if missed:
        r = missed[0]
        what = "erratum not reproduced (the printed value matches)" if r.erratum else "printed value missed"
        return (f"{report.scenario.name}: {what}: {r.key} -> {r.resolved}: printed {r.printed}, computed {r.computed}, "
                f"|Δ| {r.max_abs:.3g}, atol {r.atol:g}")
    if report.training is not None and not report.training.ok:
        bad = next(d for d in report.training.drifts if not (d.ok or (d.explained and not report.training.strict)))
        where = f"from epoch {bad.first_bad_epoch}" if bad.first_bad_epoch else "in the trained values"
        return f"{report.scenario.name}: training: {bad.a} vs {bad.b} drift beyond the training tolerance {where}"
    return f"{report.scenario.name}: check failed"


def assert_agree(scenario: "Scenario | str | os.PathLike[str]", frameworks: "Iterable[str] | None" = None,
                 dtype: "str | None" = None, strict: bool = False) -> ScenarioReport:
    """Every tensor of one step (and, with a train block, every epoch) agrees across the installed frameworks,
    and every printed value matches; AssertionError naming the first divergence otherwise. Returns the report."""
    report = check(load_scenario(scenario, dtype), _installed(frameworks), strict=strict)
    if not report.ok:
        detail = scenario_text(report) + ("\n" + train_text(report.training) if report.training else "")
        raise AssertionError(failure_line(report) + "\n" + detail)
    return report


def assert_printed_values(scenario: "Scenario | str | os.PathLike[str]", dtype: "str | None" = None) -> ScenarioReport:
    """Every ``expected`` value of the scenario matches the NumPy reference (and every erratum is confirmed)."""
    report = check(load_scenario(scenario, dtype), ("numpy",), training=False)
    if not all(r.ok for r in report.expected):
        raise AssertionError(failure_line(report) + "\n" + scenario_text(report))
    return report


def assert_gradients(fn: Callable[..., Any], scenario: "Scenario | str | os.PathLike[str]",
                     frameworks: "Iterable[str] | None" = None, dtype: "str | None" = None) -> VerifyResult:
    """``fn(params, inputs, targets)`` returns the scenario's gradients: checked against torch, JAX (those
    installed) and finite differences, as ``backproof verify``; AssertionError naming the wrong element."""
    sc = load_scenario(scenario, dtype)
    result = verify(fn, sc, _installed(frameworks or AUTODIFF))
    if not result.ok:
        text = verify_text(result)
        raise AssertionError(text.splitlines()[-1].strip() + "\n" + text)
    return result


def assert_layer_gradients(backward: Callable[..., Any], scenario: "Scenario | str | os.PathLike[str]", layer: int,
                           part: str = "layer", forward: "Callable[..., Any] | None" = None, seed: int = 0,
                           frameworks: "Iterable[str] | None" = None) -> LayerVerifyResult:
    """One layer's hand-written backward pass (``backward(x, params, dout) -> {"x": dx, "weight": dW, …}``, or the
    course style ``forward(x, *params, **config) -> (out, cache)`` with ``backward(dout, cache) -> (dx, dW, …)``)
    for layer ``layer`` of ``scenario`` (its activation with part="activation"): checked against torch, JAX (those
    installed) and finite differences on a seeded random dout; AssertionError naming the argument, element and
    what kind of mistake it is where that is clear."""
    result = verify_layer(backward, scenario, layer, part, forward, seed, _installed(frameworks or AUTODIFF))
    if not result.ok:
        raise AssertionError(result.verdict + "\n" + str(result))
    return result
