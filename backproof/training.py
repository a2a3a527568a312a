"""Whole training runs in every framework, compared epoch by epoch.

Each implementation's ``train(scenario, epochs)`` returns ``train.loss`` (E,), the mean
step loss of each epoch, ``trained.layers.{i}.weight/bias`` and the optimizer's state at the end,
``trained.state.layers.{i}.weight.{buffer}``. ``train(scenario)`` from
Python and ``backproof train`` on the command line give the same verdict.
"""

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np

import reference

from .compare import compare_arrays
from .frameworks import FRAMEWORKS, as_frameworks, run_each
from .names import state_shapes
from .scenario_file import as_scenario


def train_shapes(scenario, epochs):
    """Canonical training names -> shapes."""
    shapes = {"train.loss": (epochs,)}
    for name, value in scenario.parameters().items():
        shapes[f"trained.{name}"] = value.shape
    shapes.update(state_shapes(scenario, prefix="trained.state."))
    return shapes


@dataclass
class Drift:
    """How far two frameworks' runs drift apart."""

    a: str
    b: str
    first_bad_epoch: "int | None"      # 1-based; None when every epoch is within tolerance
    max_loss_abs: float
    max_loss_rel: float
    worst_epoch: int                   # 1-based epoch of the largest loss divergence
    per_epoch: list = field(default_factory=list)   # |Δ loss| of every epoch
    final: list = field(default_factory=list)       # Comparisons of the trained parameters

    @property
    def ok(self):
        return self.first_bad_epoch is None and all(c.ok for c in self.final)


def drift(a_name, a, b_name, b, dtype):
    """Compare two training results under the ``train`` tolerance for ``dtype``."""
    loss = compare_arrays("train.loss", a_name, a["train.loss"], b_name, b["train.loss"], dtype, kind="train")
    la, lb = a["train.loss"].astype(np.float64), b["train.loss"].astype(np.float64)
    with np.errstate(invalid="ignore"):
        same = (la == lb) | (np.isnan(la) & np.isnan(lb))        # the same non-finite value is no drift
        diff = np.where(np.isfinite(la) & np.isfinite(lb), np.abs(la - lb), np.where(same, 0.0, np.inf))
        scale = np.maximum(np.abs(la), np.abs(lb))
        rel = np.divide(diff, scale, out=np.zeros_like(diff), where=np.isfinite(scale) & (scale > 0))
    first_bad = loss.failing[0][0] + 1 if loss.failing else None
    final = [compare_arrays(name, a_name, a[name], b_name, b[name], dtype, kind="train")
             for name in a if name.startswith("trained.")]
    return Drift(a_name, b_name, first_bad, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                 int(np.argmax(diff)) + 1 if diff.size else 0, diff.tolist(), final)


@dataclass
class TrainReport:
    scenario: object
    epochs: int
    batch_size: int
    results: dict                       # framework -> training result
    seconds: dict                       # framework -> wall time of its run
    skipped: list
    errors: dict
    drifts: list
    finite_differences: "dict | None" = None    # the reference trained with central differences
    relu_kinks: "object | None" = None          # KinkReport for 1-input ReLU-family networks

    @property
    def ok(self):
        return not self.errors and all(d.ok for d in self.drifts)

    def divergence(self):
        """framework -> the first epoch (1-based) whose loss is not finite, or None: divergence, not drift."""
        found = {}
        for framework, result in self.results.items():
            bad = np.flatnonzero(~np.isfinite(result["train.loss"]))
            found[framework] = int(bad[0]) + 1 if bad.size else None
        return found


def compare_training(scenario, epochs, results, seconds, skipped, errors, kink_checks=None):
    """A TrainReport from each framework's training result (kink_checks: relu_kinks.framework_checks
    already computed per framework, in its own process)."""
    epochs, batch_size = scenario.schedule(epochs)
    shapes = train_shapes(scenario, epochs)
    good, errors = {}, dict(errors)
    for name, result in results.items():
        problem = next((f"{k}: shape {np.shape(result.get(k))}, expected {s}" for k, s in shapes.items()
                        if k not in result or np.shape(result[k]) != s), "")
        if problem:
            errors[name] = problem
        else:
            good[name] = result
    drifts = [drift(a, good[a], b, good[b], scenario.dtype) for a, b in itertools.combinations(good, 2)]
    report = TrainReport(scenario, epochs, batch_size, good, {k: v for k, v in seconds.items() if k in good},
                         list(skipped), errors, drifts)
    from .relu_kinks import kink_report
    report.relu_kinks = kink_report(scenario, good, {k: v for k, v in (kink_checks or {}).items() if k in good})
    return report


def train_each(framework, module, scenario, epochs):
    """One framework's training run (module-level, so it can run in a process of its own)."""
    return module.train(scenario, epochs)


def train(scenario, frameworks=FRAMEWORKS, epochs=None, finite_differences=False, parallel=False):
    """Train in every framework from the scenario's weights and compare the runs -> TrainReport.

    scenario: a Scenario, a built-in name or a path. finite_differences: also train the
    reference with central differences (post 001's first method), shown beside the others.
    """
    scenario = as_scenario(scenario)
    epochs, _ = scenario.schedule(epochs)
    runs = run_each(functools.partial(train_each, scenario=scenario, epochs=epochs), as_frameworks(frameworks),
                    parallel)
    report = compare_training(scenario, epochs, runs.results, runs.seconds, runs.skipped, runs.errors)
    if finite_differences:
        report.finite_differences = reference.train(scenario, epochs, method="finite_difference")
    return report
