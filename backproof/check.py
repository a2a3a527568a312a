"""Check scenarios: run one step in every framework, compare the traces, check printed values,
and, for a scenario with a ``train`` block, train in every framework and compare the runs.

``check(scenario)`` from Python and ``backproof check`` on the command line call the same
``check_all`` and give the same verdict.
"""

import functools
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

import reference
from reference import Scenario
from reference.trace import state_names

from . import relu_kinks
from .compare import TOLERANCES, compare_arrays, compare_traces, first_divergence
from .frameworks import FRAMEWORKS, Covered, as_frameworks, run_each
from .kink_conventions import explain_kinks, measured_derivatives
from .names import format_element, tensor_shapes
from .scenario_file import as_scenario
from .training import TrainReport, compare_training


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
    effective_atol: float = 0.0     # max(atol, the dtype's step tolerance at the printed value): what is judged

    @property
    def raised(self):
        """The printed atol is finer than the scenario's dtype resolves, so the dtype's step tolerance judges."""
        return self.effective_atol > self.atol


@dataclass(repr=False)         # Covered gives str (the CLI's text), a one-line repr and .verdict
class ScenarioReport(Covered):
    scenario: Scenario
    traces: dict
    skipped: list
    errors: dict
    comparisons: list
    expected: list
    order: list = field(default_factory=list)
    kinks: list = field(default_factory=list)          # KinkNote per layer with a z exactly 0
    explained: set = field(default_factory=set)        # (tensor, a, b) of disagreements a kink convention explains
    strict: bool = False                               # then explained disagreements fail too
    seconds: dict = field(default_factory=dict)        # framework -> wall time of its step
    training: "TrainReport | None" = None              # for a scenario with a train block
    amplified: set = field(default_factory=set)        # (tensor, a, b) of optimizer steps fed different gradients
    asked: tuple = FRAMEWORKS                          # the frameworks asked for
    required: tuple = ()                               # the frameworks that must run (--require)

    def is_explained(self, comparison):
        key = (comparison.tensor, comparison.a, comparison.b)
        return key in self.explained or key in self.amplified

    @property
    def first_divergence(self):
        """The first disagreement in canonical order that no documented convention explains (any, if strict)."""
        return first_divergence([c for c in self.comparisons if self.strict or not self.is_explained(c)])

    @property
    def convention_differences(self):
        return [note for note in self.kinks if not note.agree]

    @property
    def step_ok(self):
        return (not self.errors and self.first_divergence is None
                and all(result.ok for result in self.expected))

    @property
    def ran(self):
        return self.traces

    @property
    def agrees(self):
        """Nothing disagrees, misses or fails among what ran (whether or not anything was compared)."""
        return self.step_ok and (self.training is None or self.training.agrees)


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
        common = dict(key=key, printed=entry["value"], atol=entry["atol"], erratum=erratum,
                      note=entry.get("note", ""), framework=framework, resolved=format_element(tensor, index))
        if picked is None or picked.shape != printed.shape:
            # a trace that breaks the contract: reported as a miss, never as a crash
            results.append(ExpectedResult(computed=None, max_abs=float("inf"), ok=False,
                                          effective_atol=entry["atol"], **common))
            continue
        computed = picked.astype(np.float64)
        max_abs = float(np.max(np.abs(computed - printed), initial=0.0))
        # A value printed with more digits than the dtype holds (0.298371109 in float32) is judged at the dtype's
        # own resolution: the step tolerance at the printed value, whenever that is wider than the printed atol.
        step_atol, step_rtol = TOLERANCES[scenario.dtype]["step"]
        effective = max(entry["atol"], step_atol + step_rtol * float(np.max(np.abs(printed), initial=0.0)))
        matches = max_abs <= effective
        results.append(ExpectedResult(computed=computed.tolist(), max_abs=max_abs, effective_atol=effective,
                                      ok=(not matches) if erratum else matches, **common))
    return results


def _pick(value, index):
    """``value[index]`` (or all of it) as an array; None when the value or the element is missing."""
    if value is None:
        return None
    try:
        return np.asarray(value if index is None else np.asarray(value)[index])
    except (IndexError, TypeError):
        return None


def explain_amplified(scenario, traces, comparisons):
    """The state and update disagreements that the optimizer's own amplification explains -> {(tensor, a, b)}.

    Adam and RMSprop divide by √v: a gradient near ε moves the step by up to lr when it moves by less than the
    step tolerance, which float32 rounding does. Such a disagreement is explained when, for the pair, every
    gradient agrees within tolerance and the reference's own update, fed each framework's gradients, gives
    each framework's state and update: the optimizers agree, their inputs differed within tolerance. A bug
    in any optimizer breaks the second condition.
    """
    params = {name: np.array(value) for name, value in scenario.parameters().items()}
    # the optimizer's outputs only: a batch norm's running statistics (updated.…running_*) are the forward pass's
    failing = [c for c in comparisons if not c.ok and (c.tensor.startswith("state.")
                                                       or c.tensor.removeprefix("updated.") in params)]
    if not failing:
        return set()
    replayed, explained = {}, set()
    for c in failing:
        grads_agree = all(o.ok for o in comparisons if o.a == c.a and o.b == c.b and o.tensor.startswith("grad."))
        if not grads_agree:
            continue
        for framework in (c.a, c.b):
            if framework not in replayed:
                grads = {name: np.array(traces[framework][f"grad.{name}"]) for name in params}
                updated, state = reference.update(params, grads, {}, scenario.optimizer)
                replayed[framework] = {**{f"updated.{name}": value for name, value in updated.items()},
                                       **state_names(state)}
        if all(compare_arrays(c.tensor, "reference", replayed[fw][c.tensor], fw, traces[fw][c.tensor],
                              scenario.dtype).ok for fw in (c.a, c.b)):
            explained.add((c.tensor, c.a, c.b))
    return explained


@dataclass
class FrameworkRun:
    """One framework's work on one scenario: its step and, when asked, its training. What ``run_scenarios`` returns (a
    worker process pickles it back) and ``check_all`` reads: one typed record, not parallel dicts."""

    framework: str
    trace: "dict | None" = None             # the canonical trace, when the step ran
    error: str = ""                         # why the step did not run, or why its trace breaks the contract
    seconds: float = 0.0
    kink_derivatives: dict = field(default_factory=dict)
    train: "dict | None" = None             # train.loss and trained.*, when the scenario trains
    train_error: str = ""
    train_seconds: float = 0.0
    relu_kinks: object = None               # relu_kinks.framework_checks, for 1-input relu networks


def run_scenarios(framework, module, scenarios, training):
    """One framework's work for every scenario -> [FrameworkRun].

    Module-level so that ``run_each(parallel=True)`` can send it to a process of its own.
    """
    out = []
    for scenario in scenarios:
        run = FrameworkRun(framework)
        start = time.perf_counter()
        try:
            run.trace = module.run_step(scenario)
            run.kink_derivatives = measured_derivatives(scenario, framework, run.trace)
        except Exception as exc:  # reported for this scenario; the others still run
            run.trace, run.error = None, f"{type(exc).__name__}: {exc}"
        run.seconds = time.perf_counter() - start
        if training and scenario.train:
            start = time.perf_counter()
            try:      # a diverging run overflows: a result to compare (torch and JAX say nothing), not NumPy's warning
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    run.train = module.train(scenario)
            except Exception as exc:
                run.train_error = f"{type(exc).__name__}: {exc}"
            run.train_seconds = time.perf_counter() - start
            if run.train is not None and relu_kinks.applies(scenario):
                run.relu_kinks = relu_kinks.framework_checks(scenario, framework, run.train)
        out.append(run)
    return out


def check_all(scenarios, frameworks=FRAMEWORKS, strict=False, training=True, parallel=False, require=(), known=None):
    """[ScenarioReport] for every scenario; the frameworks run concurrently when ``parallel``.

    require: frameworks that must run; a report where one did not is not OK (``backproof check --require``).
    known: {framework: [trace per scenario]} already computed, used instead of running those frameworks again (the
    mutation runs patch only the reference, so torch's and JAX's traces are the same for every mutant).
    """
    frameworks = as_frameworks(frameworks)
    require = as_frameworks(require) if require else ()
    known = known or {}
    runs = run_each(functools.partial(run_scenarios, scenarios=list(scenarios), training=training),
                    [name for name in frameworks if name not in known], parallel=parallel)
    for name, traces in known.items():
        runs.results[name] = [FrameworkRun(name, trace=trace, kink_derivatives=measured_derivatives(scenario, name,
                                                                                                     trace))
                              for scenario, trace in zip(scenarios, traces)]
    reports = []
    for k, scenario in enumerate(scenarios):
        shapes = tensor_shapes(scenario)
        ran = [runs.results[name][k] for name in frameworks if name in runs.results]
        for run in ran:                         # a trace that breaks the contract is that framework's error
            if run.trace is not None and not run.error:
                run.error = trace_problem(run.trace, shapes, scenario.dtype) or ""
        failed = {name: runs.errors[name] for name in frameworks if name in runs.errors}   # the process itself
        traces = {run.framework: run.trace for run in ran if run.trace is not None}
        errors = {**failed, **{run.framework: run.error for run in ran if run.error}}
        comparisons = compare_traces(traces, list(shapes), scenario.dtype)
        derivatives = {run.framework: run.kink_derivatives for run in ran if run.trace is not None}
        kinks, explained = explain_kinks(scenario, traces, comparisons, derivatives) if not errors else ([], set())
        amplified = explain_amplified(scenario, traces, comparisons) if not errors else set()
        trained = None
        if training and scenario.train:
            trained = compare_training(
                scenario, None, {run.framework: run.train for run in ran if run.train is not None},
                {run.framework: run.train_seconds for run in ran if run.train is not None}, runs.skipped,
                {**failed, **{run.framework: run.train_error for run in ran if run.train_error}},
                {run.framework: run.relu_kinks for run in ran if run.relu_kinks is not None}, strict,
                asked=frameworks, required=require)
        reports.append(ScenarioReport(scenario, traces, list(runs.skipped), errors, comparisons,
                                      check_expected(scenario, traces), list(shapes), kinks, explained, strict,
                                      {run.framework: run.seconds for run in ran}, trained,
                                      amplified=amplified - explained, asked=frameworks, required=require))
    return reports


def check(scenario: "Scenario | str | os.PathLike[str]", frameworks: "Iterable[str] | str" = FRAMEWORKS,
          strict: bool = False, training: bool = True, parallel: bool = False,
          require: "Iterable[str] | str" = ()) -> ScenarioReport:
    """Run, compare and check one scenario (a Scenario, a built-in name or a path) -> ScenarioReport.

    strict: a disagreement explained by a documented kink convention fails too.
    training: also train and compare whole runs when the scenario has a ``train`` block.
    require: frameworks that must run (else ``ok`` is False); when fewer than two of several asked for run,
    ``ok`` is False and ``not_compared`` True: nothing was compared across frameworks.
    """
    return check_all([as_scenario(scenario)], frameworks, strict, training, parallel, require)[0]


def check_scenario(scenario, frameworks=FRAMEWORKS, strict=False, known=None):
    """One step only (no training): the check the mutation and property tests run. known: {framework: trace} to use
    instead of running that framework (see ``check_all``)."""
    known = {name: [trace] for name, trace in (known or {}).items()}
    return check_all([as_scenario(scenario)], frameworks, strict, training=False, known=known)[0]
