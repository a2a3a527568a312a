"""The one comparison helper and the one tolerance table.

Two arrays agree when, elementwise, |a − b| ≤ atol + rtol·max(|a|, |b|).
Shapes and dtypes are checked before values.

The tolerances were calibrated by measurement (``python -m backproof.calibrate``
re-measures them): the largest disagreement between any two frameworks over
every tensor of every built-in scenario is written beside each entry.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from .names import stage

# dtype -> (atol, rtol). Measured with `python -m backproof.calibrate` (torch 2.13.0, jax 0.10.2,
# NumPy 2.4, this 2-core CPU), largest over every tensor, pair and built-in/example scenario:
#   float64: max |Δ| 4.4e-16  -> atol 1e-12, rtol 1e-12: three orders of headroom for deeper
#            networks, and a 1e-9 relative error is still caught (tests/test_compare.py)
#   float32: max |Δ| 3.0e-7   -> atol 1e-5, rtol 1e-5: about 30x headroom; float32's unit
#            round-off is 6e-8, so a few rounding steps in a deeper network stay inside
# "train" applies to the per-epoch loss and the final parameters of a whole run. Measured over the
# built-in training scenarios (xor-2-3-1-tanh, 40,000 per-sample steps, drifts the most):
#   float64: loss |Δ| 7.1e-15, final params |Δ| 4.6e-14   -> atol 1e-11, rtol 1e-9
#   float32: loss |Δ| 8.3e-6,  final params |Δ| 1.6e-5    -> atol 1e-4,  rtol 1e-3
# The "max rel" figures calibrate prints are dominated by values near 0, where atol governs.
# "finite_difference" judges a central-difference estimate (reference/gradcheck.py, default ε) against
# an exact gradient: per coordinate, and along random unit directions. Measured with
# `python -m backproof.calibrate --fd` over every built-in scenario and the 784-256-256-10 benchmark MLP:
#   float64, ε 1e-5: per coordinate |Δ| ≤ 1.3e-10; directions rel ≤ 6.9e-9 (MLP: 4.6e-9)
#            -> atol 1e-8, rtol 1e-6: ~100x headroom, and a gradient off by 1e-4 relative fails
#   float32, ε 1e-2: per coordinate |Δ| ≤ 1.2e-4; directions rel ≤ 4.8e-3 (MLP: 0.027 with the
#            default seed, up to 0.12 over seeds 0-4)
#            -> atol 1e-3, rtol 5e-2, for the small networks. Float32 differences resolve a few
#            percent at best, so `verify` computes its finite differences in float64 whatever
#            the scenario's dtype.
TOLERANCES = {
    "float64": {"step": (1e-12, 1e-12), "train": (1e-11, 1e-9), "finite_difference": (1e-8, 1e-6)},
    "float32": {"step": (1e-5, 1e-5), "train": (1e-4, 1e-3), "finite_difference": (1e-3, 5e-2)},
}

MAX_FAILING = 20


@dataclass(frozen=True)
class Comparison:
    """The agreement of one tensor between frameworks ``a`` and ``b``."""

    tensor: str
    a: str
    b: str
    max_abs: float
    max_rel: float
    ok: bool
    problem: str = ""       # a shape or dtype mismatch, when there is one
    worst_index: tuple = ()
    failing: tuple = ()     # indices of the elements outside tolerance, in order (at most MAX_FAILING)
    failing_count: int = 0

    def message(self, scenario_name=""):
        where = f"{scenario_name}: " if scenario_name else ""
        if self.problem:
            return f"{where}{self.tensor} ({stage(self.tensor)}), {self.a} vs {self.b}: {self.problem}"
        return (f"{where}{self.tensor} ({stage(self.tensor)}), {self.a} vs {self.b}, "
                f"max |Δ| {self.max_abs:.3g} at {list(self.worst_index)}, max rel {self.max_rel:.3g}")



def compare_arrays(tensor, a_name, a, b_name, b, dtype, kind="step"):
    """Compare one tensor from two frameworks under the ``kind`` tolerance for ``dtype``.

    kind: "step" for one step's trace, "train" for the end of a whole training run,
    "finite_difference" for a central-difference estimate against an exact gradient.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return Comparison(tensor, a_name, b_name, float("inf"), float("inf"), False,
                          f"shape {a.shape} vs {b.shape}")
    if a.dtype != b.dtype or a.dtype != np.dtype(dtype):
        return Comparison(tensor, a_name, b_name, float("inf"), float("inf"), False,
                          f"dtype {a.dtype} vs {b.dtype}, expected {dtype}")
    atol, rtol = TOLERANCES[dtype][kind]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    finite = np.isfinite(a64) & np.isfinite(b64)
    # Non-finite elements agree only with the same kind at the same position (NaN with NaN, +inf with
    # +inf); an inf never satisfies a tolerance, since |inf − x| ≤ atol + rtol·inf would hold for any x.
    same_nonfinite = ~finite & ((a64 == b64) | (np.isnan(a64) & np.isnan(b64)))
    with np.errstate(invalid="ignore"):
        diff = np.where(finite, np.abs(a64 - b64), np.where(same_nonfinite, 0.0, np.inf))
        scale = np.where(finite, np.maximum(np.abs(a64), np.abs(b64)), 0.0)
    rel = np.divide(diff, scale, out=np.where(diff > 0, np.inf, 0.0), where=scale > 0)
    outside = ~finite & ~same_nonfinite | finite & ~(diff <= atol + rtol * scale)
    failing = tuple(tuple(int(i) for i in index) for index in np.argwhere(outside)[:MAX_FAILING])
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    return Comparison(tensor, a_name, b_name, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                      not outside.any(), worst_index=tuple(int(i) for i in worst), failing=failing,
                      failing_count=int(outside.sum()))


def compare_traces(traces, order, dtype):
    """Compare every tensor in ``order`` for every pair of frameworks in ``traces``.

    traces: framework -> {canonical name -> array}. Returns the comparisons in
    canonical order (then pair order); a tensor missing from a trace is a failure.
    """
    comparisons = []
    for tensor in order:
        for (a_name, a), (b_name, b) in itertools.combinations(traces.items(), 2):
            if tensor not in a or tensor not in b:
                missing = a_name if tensor not in a else b_name
                comparisons.append(Comparison(tensor, a_name, b_name, float("inf"), float("inf"), False,
                                              f"missing from {missing}'s trace"))
                continue
            comparisons.append(compare_arrays(tensor, a_name, a[tensor], b_name, b[tensor], dtype))
    return comparisons


def first_divergence(comparisons):
    """The first failing comparison in canonical order, or None."""
    return next((c for c in comparisons if not c.ok), None)
