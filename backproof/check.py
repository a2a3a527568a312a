"""Run one scenario in every framework, compare the traces, check printed values."""

from dataclasses import dataclass, field

import numpy as np

from .compare import TOLERANCES, compare_traces, first_divergence
from .exact_kinks import explain_kinks
from .frameworks import Skipped, implementation
from .names import format_element, tensor_shapes


@dataclass
class ExpectedResult:
    """One ``expected`` entry: the value the source printed against the computed one."""

    key: str
    printed: object
    computed: object
    max_abs: float
    atol: float
    ok: bool
    erratum: str = ""
    note: str = ""
    framework: str = ""
    resolved: str = ""

    def to_json(self):
        return {"key": self.key, "resolved": self.resolved, "printed": self.printed,
                "computed": self.computed, "max_abs": self.max_abs, "atol": self.atol,
                "ok": self.ok, "erratum": self.erratum or None, "note": self.note or None,
                "framework": self.framework}


@dataclass
class ScenarioReport:
    scenario: object
    traces: dict
    skipped: list
    errors: dict
    comparisons: list
    expected: list
    order: list = field(default_factory=list)
    kinks: list = field(default_factory=list)          # KinkNote per layer with a z exactly 0
    explained: set = field(default_factory=set)        # (tensor, a, b) of disagreements a kink convention explains
    strict: bool = False                               # then explained disagreements fail too

    def is_explained(self, comparison):
        return (comparison.tensor, comparison.a, comparison.b) in self.explained

    @property
    def first_divergence(self):
        """The first disagreement in canonical order that no documented convention explains (any, if strict)."""
        return first_divergence([c for c in self.comparisons if self.strict or not self.is_explained(c)])

    @property
    def convention_differences(self):
        return [note for note in self.kinks if not note.agree]

    @property
    def ok(self):
        return (not self.errors and self.first_divergence is None
                and all(result.ok for result in self.expected))

    def to_json(self):
        divergence = self.first_divergence
        return {
            "name": self.scenario.name,
            "ok": self.ok,
            "dtype": self.scenario.dtype,
            "tolerance": dict(zip(("atol", "rtol"), TOLERANCES[self.scenario.dtype]["step"])),
            "frameworks": list(self.traces),
            "skipped": [s.to_json() for s in self.skipped],
            "errors": self.errors,
            "tensors": {name: {fw: trace[name].tolist() for fw, trace in self.traces.items() if name in trace}
                        for name in self.order},
            "comparisons": [dict(c.to_json(), explained_by_convention=self.is_explained(c)) for c in self.comparisons],
            "kinks": [note.to_json() for note in self.kinks],
            "strict": self.strict,
            "first_divergence": None if divergence is None else divergence.to_json(),
            "expected": [result.to_json() for result in self.expected],
        }


def trace_problem(trace, shapes, dtype):
    """Why ``trace`` breaks the contract (a missing name, a wrong shape or dtype), or ''."""
    for name, shape in shapes.items():
        if name not in trace:
            return f"{name} is missing from the trace"
        value = np.asarray(trace[name])
        if value.shape != tuple(shape):
            return f"{name} has shape {value.shape}, expected {tuple(shape)}"
        if value.dtype != np.dtype(dtype):
            return f"{name} has dtype {value.dtype}, expected {dtype}"
    return ""


def run_frameworks(scenario, frameworks):
    """framework -> trace for those that ran; plus the skipped ones and the ones that failed."""
    shapes = tensor_shapes(scenario)
    traces, skipped, errors = {}, [], {}
    for name in frameworks:
        module = implementation(name)
        if isinstance(module, Skipped):
            skipped.append(module)
            continue
        try:
            trace = module.run_step(scenario)
        except Exception as exc:  # a crash inside one framework is a reported failure, not a traceback
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        problem = trace_problem(trace, shapes, scenario.dtype)
        if problem:
            errors[name] = problem
        traces[name] = trace
    return traces, skipped, errors


def check_expected(scenario, traces):
    """Check every ``expected`` entry against the first framework that ran (the reference if present)."""
    if not traces:
        return []
    framework, trace = next(iter(traces.items()))
    params = scenario.parameters()
    results = []
    for key, entry in scenario.expected.items():
        tensor, index = entry["tensor"], entry["index"]
        printed = np.asarray(entry["value"], dtype=np.float64)
        erratum = entry.get("erratum", "")
        picked = _pick(trace.get(tensor, params.get(tensor)), index)
        if picked is None or picked.shape != printed.shape:
            # a trace that breaks the contract: reported as a miss, never as a crash
            results.append(ExpectedResult(key=key, printed=entry["value"], computed=None, max_abs=float("inf"),
                                          atol=entry["atol"], ok=False, erratum=erratum, note=entry.get("note", ""),
                                          framework=framework, resolved=format_element(tensor, index)))
            continue
        computed = picked.astype(np.float64)
        max_abs = float(np.max(np.abs(computed - printed), initial=0.0))
        matches = max_abs <= entry["atol"]
        results.append(ExpectedResult(
            key=key, printed=entry["value"], computed=computed.tolist(), max_abs=max_abs,
            atol=entry["atol"], ok=(not matches) if erratum else matches, erratum=erratum,
            note=entry.get("note", ""), framework=framework, resolved=format_element(tensor, index)))
    return results


def _pick(value, index):
    """``value[index]`` (or all of it) as an array; None when the value or the element is missing."""
    if value is None:
        return None
    try:
        return np.asarray(value if index is None else np.asarray(value)[index])
    except (IndexError, TypeError):
        return None


def check_scenario(scenario, frameworks=("numpy", "torch", "jax"), strict=False):
    """Run, compare and check one scenario; returns a ScenarioReport.

    strict: a disagreement explained by a documented kink convention fails too.
    """
    order = list(tensor_shapes(scenario))
    traces, skipped, errors = run_frameworks(scenario, frameworks)
    comparisons = compare_traces(traces, order, scenario.dtype)
    kinks, explained = explain_kinks(scenario, traces, comparisons) if not errors else ([], set())
    return ScenarioReport(scenario, traces, skipped, errors, comparisons,
                          check_expected(scenario, traces), order, kinks, explained, strict)
