"""Whole training runs in every framework, compared epoch by epoch.

Each implementation's ``train(scenario, epochs)`` returns ``train.loss`` (E,),
the mean step loss of each epoch, and ``trained.layers.{i}.weight/bias``.
"""

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from .compare import TOLERANCES, compare_arrays
from .frameworks import Skipped, implementation


def train_shapes(scenario, epochs):
    """Canonical training names -> shapes."""
    shapes = {"train.loss": (epochs,)}
    for name, value in scenario.parameters().items():
        shapes[f"trained.{name}"] = value.shape
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
    final: list = field(default_factory=list)   # Comparisons of the trained parameters

    @property
    def ok(self):
        return self.first_bad_epoch is None and all(c.ok for c in self.final)

    def to_json(self):
        return {"a": self.a, "b": self.b, "ok": self.ok, "first_bad_epoch": self.first_bad_epoch,
                "max_loss_abs": self.max_loss_abs, "max_loss_rel": self.max_loss_rel,
                "worst_epoch": self.worst_epoch, "final": [c.to_json() for c in self.final]}


def drift(a_name, a, b_name, b, dtype):
    """Compare two training results under the ``train`` tolerance for ``dtype``."""
    atol, rtol = TOLERANCES[dtype]["train"]
    la, lb = a["train.loss"].astype(np.float64), b["train.loss"].astype(np.float64)
    diff = np.abs(la - lb)
    scale = np.maximum(np.abs(la), np.abs(lb))
    bad = np.flatnonzero(~(diff <= atol + rtol * scale))
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    final = [compare_arrays(name, a_name, a[name], b_name, b[name], dtype, kind="train")
             for name in a if name.startswith("trained.")]
    return Drift(a_name, b_name, int(bad[0]) + 1 if bad.size else None, float(diff.max(initial=0.0)),
                 float(rel.max(initial=0.0)), int(np.argmax(diff)) + 1 if diff.size else 0, final)


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

    @property
    def ok(self):
        return not self.errors and all(d.ok for d in self.drifts)

    def to_json(self):
        return {
            "name": self.scenario.name, "ok": self.ok, "dtype": self.scenario.dtype,
            "epochs": self.epochs, "batch_size": self.batch_size,
            "tolerance": dict(zip(("atol", "rtol"), TOLERANCES[self.scenario.dtype]["train"])),
            "frameworks": list(self.results),
            "skipped": [s.to_json() for s in self.skipped],
            "errors": self.errors,
            "seconds": self.seconds,
            "loss": {fw: r["train.loss"].tolist() for fw, r in self.results.items()},
            "trained": {fw: {k: v.tolist() for k, v in r.items() if k.startswith("trained.")}
                        for fw, r in self.results.items()},
            "drift": [d.to_json() for d in self.drifts],
        }


def train_scenario(scenario, frameworks=("numpy", "torch", "jax"), epochs=None, progress=None):
    """Train in every framework from the scenario's weights and compare the runs.

    progress: optional callable(framework) called before each framework starts.
    """
    epochs, batch_size = scenario.schedule(epochs)
    shapes = train_shapes(scenario, epochs)
    results, seconds, skipped, errors = {}, {}, [], {}
    for name in frameworks:
        module = implementation(name)
        if isinstance(module, Skipped):
            skipped.append(module)
            continue
        if progress:
            progress(name)
        start = time.perf_counter()
        try:
            result = module.train(scenario, epochs)
        except Exception as exc:  # reported, not raised: the other frameworks still run
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        seconds[name] = time.perf_counter() - start
        problem = next((f"{k}: shape {np.shape(result.get(k))}, expected {s}" for k, s in shapes.items()
                        if k not in result or np.shape(result[k]) != s), "")
        if problem:
            errors[name] = problem
            continue
        results[name] = result
    drifts = [drift(a, results[a], b, results[b], scenario.dtype) for a, b in itertools.combinations(results, 2)]
    return TrainReport(scenario, epochs, batch_size, results, seconds, skipped, errors, drifts)
