"""The one comparison helper and the one tolerance table.

Two arrays agree when, elementwise, |a − b| ≤ atol + rtol·max(|a|, |b|).
Shapes and dtypes are checked before values.

The tolerances were calibrated by measurement (``make calibrate`` re-measures them;
docs/evidence.md shows the figures beside each entry). Non-finite elements agree only
with the same kind at the same position (NaN with NaN, +inf with +inf).
"""

import itertools
from dataclasses import dataclass

import numpy as np

from .names import stage

# dtype -> kind -> (atol, rtol). "step": one step's trace; "train": the per-epoch loss and final parameters
# of a whole run; "finite_difference": a central-difference estimate against an exact gradient. Each is set
# with headroom over what `make calibrate` measures; the figures are in docs/evidence.md.
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
    nonfinite: str = ""     # what is non-finite where: a mismatch, or values non-finite in both

    def message(self, scenario_name=""):
        where = f"{scenario_name}: " if scenario_name else ""
        if self.problem:
            return f"{where}{self.tensor} ({stage(self.tensor)}), {self.a} vs {self.b}: {self.problem}"
        if self.nonfinite and not self.ok and self.max_abs == float("inf"):
            return f"{where}{self.tensor} ({stage(self.tensor)}): {self.nonfinite}"
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
                      failing_count=int(outside.sum()),
                      nonfinite=_nonfinite(tensor, a_name, a64, b_name, b64, finite, same_nonfinite))


def _nonfinite(tensor, a_name, a, b_name, b, finite, same):
    """'' when every element is finite; else where the first mismatch is, or what both share."""
    if finite.all():
        return ""
    mismatch = np.argwhere(~finite & ~same)
    if mismatch.shape[0]:       # shape[0], not size: a 0-d tensor's argwhere has one row of no columns
        index = tuple(int(i) for i in mismatch[0])
        at = f"{tensor}[{','.join(map(str, index))}]" if index else tensor
        if np.isfinite(a[index]):
            return f"non-finite in {b_name} only at {at}: {b[index]} where {a_name} gives {a[index]:.6g}"
        if np.isfinite(b[index]):
            return f"non-finite in {a_name} only at {at}: {a[index]} where {b_name} gives {b[index]:.6g}"
        return f"different non-finite values at {at}: {a[index]} in {a_name}, {b[index]} in {b_name}"
    index = tuple(int(i) for i in np.argwhere(~finite)[0])
    at = f"{tensor}[{','.join(map(str, index))}]" if index else tensor
    return f"{int((~finite).sum())} non-finite value(s) the same in {a_name} and {b_name}, first {a[index]} at {at}"


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
