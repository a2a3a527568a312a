"""Check *your* gradient code against torch autograd, jax.grad and finite differences.

    >>> import backproof
    >>> def my_gradients(params, inputs, targets):
    ...     ...   # your hand-derived formulas
    ...     return {"layers.0.weight": dW0, "layers.1.weight": dW1}
    >>> result = backproof.verify(my_gradients, "grokking-3-4-1")
    >>> result.ok, print(result)

``grad_fn(params, inputs, targets)`` receives fresh, writable NumPy copies in
the canonical layout and the scenario's dtype:

    params   {"layers.0.weight": (out, in), "layers.0.bias": (out,), …}
    inputs   (n, in)
    targets  (n, out); for cross_entropy, probability rows (class indices arrive as
             one-hot rows: ``targets.argmax(1)`` gives them back); label smoothing is
             not applied to them: the loss does that, as T' = (1 − ε)·T + ε/K

and returns ∂L/∂p for every parameter, under the same names, where L is the
scenario's loss over the whole batch (examples/spiral_gradients.py does it for
softmax cross-entropy).

The oracles:

- ``torch`` and ``jax``: the gradients autograd and ``jax.grad`` compute for the
  scenario, judged with the step tolerance of the scenario's dtype.
- ``finite_differences``: central differences of the reference's loss, always
  computed in float64 (in float32 they only resolve a few percent; see
  compare.TOLERANCES). Up to ``max_coordinates`` elements every coordinate is
  probed; above that a seeded random sample of coordinates is. Either way,
  ``directions`` random unit directions are also checked, which covers every
  element at once. Judged with the "finite_difference" tolerance for float64
  scenarios and with the (wider) float32 step tolerance for float32 ones.
- ``numpy``: the reference's own hand-derived backward pass, when asked for.
"""

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference import Scenario, gradcheck
from reference.network import loss_of

from .compare import TOLERANCES, compare_arrays
from .kink_conventions import has_kinks_within_rounding, kink_alternatives
from .frameworks import FD, Skipped, as_frameworks, implementation, run_each
from .names import format_element
from . import sandbox
from .scenario_file import ScenarioError, as_scenario

AUTODIFF = ("torch", "jax")


class VerifyError(ValueError):
    """The gradient function or its answer cannot be checked; str() is one line (exit code 2)."""


@dataclass
class ParameterCheck:
    """One parameter's gradient from grad_fn against one oracle."""

    parameter: str
    oracle: str
    max_abs: float
    worst_index: tuple
    yours: float            # grad_fn's value at the worst element
    theirs: float           # the oracle's value there
    ok: bool
    checked: int            # how many elements were compared (fewer for sampled finite differences)
    size: int
    wrong: tuple = ()       # the elements outside tolerance (the first 20)
    wrong_count: int = 0



@dataclass
class DirectionCheck:
    """<grad_fn's gradient, v> against (L(θ+εv) − L(θ−εv)) / 2ε for random unit directions v."""

    delta: float
    numeric: list
    analytic: list
    max_abs: float
    max_rel: float
    ok: bool



@dataclass
class VerifyResult:
    scenario: str
    dtype: str
    function: str
    oracles: list
    checks: list
    skipped: list = field(default_factory=list)
    directions: "DirectionCheck | None" = None
    errors: dict = field(default_factory=dict)      # oracle -> why it could not run
    notes: list = field(default_factory=list)       # oracles left out on purpose, and why
    established: dict = field(default_factory=dict)  # checker -> (passed, detail): the frameworks' own checkers
    diagnoses: list = field(default_factory=list)   # [Diagnosis]: what kind of mistake, where the evidence is clear

    @property
    def ok(self):
        """Every parameter agrees with every oracle that ran, at least one ran, and every established checker
        asked for passed (an oracle whose own autodiff fails its own check is no oracle)."""
        return (bool(self.checks) and not self.errors and all(c.ok for c in self.checks)
                and (self.directions is None or self.directions.ok)
                and all(passed for passed, _ in self.established.values()))

    @property
    def failures(self):
        return [c for c in self.checks if not c.ok]

    def check(self, parameter, oracle):
        """The ParameterCheck of ``parameter`` against ``oracle``, or None."""
        return next((c for c in self.checks if c.parameter == parameter and c.oracle == oracle), None)


    def __str__(self):
        from .render import verify_text
        return verify_text(self)


def _kind(dtype, oracle):
    """The tolerance kind for judging a gradient in ``dtype`` against ``oracle``.

    Finite differences (always computed in float64) carry their own error, which is the limit
    for a float64 gradient; for a float32 gradient the gradient's own rounding is.
    """
    return "finite_difference" if oracle == FD and dtype == "float64" else "step"


def tolerance(dtype, oracle):
    """(atol, rtol) for judging a gradient in ``dtype`` against ``oracle``."""
    return TOLERANCES[dtype][_kind(dtype, oracle)]


def _compare(name, yours, theirs, oracle, dtype):
    """compare_arrays under the tolerance ``tolerance(dtype, oracle)`` names."""
    return compare_arrays(name, "yours", np.asarray(yours, dtype), oracle, np.asarray(theirs, dtype), dtype,
                          _kind(dtype, oracle))


def _judge(name, yours, theirs, oracle, dtype, size, indices=None):
    """A ParameterCheck; ``indices`` maps positions of sampled 1-D arrays back to elements."""
    comparison = _compare(name, yours, theirs, oracle, dtype)
    worst = comparison.worst_index
    element = (lambda position: position if indices is None else tuple(indices[position[0]]))
    return ParameterCheck(name, oracle, comparison.max_abs, element(worst),
                          float(np.asarray(yours)[worst]), float(np.asarray(theirs)[worst]), comparison.ok,
                          int(np.size(yours)), size, tuple(element(p) for p in comparison.failing),
                          comparison.failing_count)


DEFAULT_TIMEOUT = 60.0      # seconds a gradient function (or its module's import) may take
UNREADABLE = object()       # an answer's value the child could not make an array of numbers


def isolated(fn, label, timeout=DEFAULT_TIMEOUT):
    """fn() in a thread of its own, with its prints sent to stderr, -> its value.

    Whatever it does instead of returning becomes a VerifyError, one line: sys.exit or SystemExit,
    KeyboardInterrupt raised by the code itself, any exception, or not returning within ``timeout``
    seconds (the thread is left behind as a daemon; the CLI exits 2 without waiting for it).
    """
    import contextlib
    import threading

    outcome = {}

    def target():
        try:
            with contextlib.redirect_stdout(sys.stderr):     # never into --json on stdout
                outcome["value"] = fn()
        except SystemExit as exc:
            outcome["error"] = f"{label} called sys.exit({exc.code!r}) instead of returning"
        except KeyboardInterrupt:
            outcome["error"] = f"{label} raised KeyboardInterrupt"
        except BaseException as exc:  # the user's code failing is bad input, reported in one line
            outcome["error"] = f"{label} raised {type(exc).__name__}: {exc}"

    thread = threading.Thread(target=target, name=f"backproof verify {label}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise VerifyError(f"{label} did not return within {timeout:g} s (give a longer --timeout if it is only slow)")
    if "error" in outcome:
        raise VerifyError(outcome["error"])
    return outcome["value"]


def call_gradients(grad_fn, scenario, label="grad_fn", timeout=DEFAULT_TIMEOUT, notes=None):
    """Call grad_fn on copies and validate its answer: canonical name -> array in the scenario's dtype.

    grad_fn: "MODULE.py:FUNCTION", run in a child process (backproof/sandbox.py: nothing it does can end this
    process or write to its stdout), or a callable, run in a thread of this process (from Python, where the caller
    trusts their own function). notes: a list that collects what the verdict should say about the answer.
    """
    params = {name: np.array(value, copy=True) for name, value in scenario.parameters().items()}
    inputs, targets = np.array(scenario.inputs, copy=True), np.array(scenario.targets, copy=True)
    if isinstance(grad_fn, str):
        arrays = {**{f"param:{name}": value for name, value in params.items()}, "inputs": inputs, "targets": targets}
        try:
            metadata, values = sandbox.run("gradients", grad_fn, arrays, timeout)
        except sandbox.SandboxError as exc:
            raise VerifyError(str(exc)) from None
        returned = metadata["type"]
        answer = ({name: values.get(f"value{k}", UNREADABLE) for k, name in enumerate(metadata["names"])}
                  if returned == "dict" else None)
    else:
        answer = isolated(lambda: grad_fn(params, inputs, targets), label, timeout)
        returned = type(answer).__name__
    if not hasattr(answer, "keys"):
        raise VerifyError(f"{label} returned {returned}; it must return a dict of "
                          f"canonical names ({', '.join(params)}) to arrays")
    expected = scenario.parameters()
    missing = [name for name in expected if name not in answer]
    if missing:
        raise VerifyError(f"{label}: the gradient for {', '.join(missing)} is missing "
                          f"(expected names: {', '.join(expected)})")
    unknown = [str(name) for name in answer if name not in expected]
    if unknown:
        raise VerifyError(f"{label}: {', '.join(unknown)} is not a parameter of {scenario.name} "
                          f"(expected names: {', '.join(expected)})")
    grads = {}
    for name, value in expected.items():
        try:
            array = sandbox.as_array(answer[name])
        except Exception:  # an object NumPy cannot make an array of
            raise VerifyError(f"{label}: the gradient for {name} is not an array of numbers") from None
        if array.dtype.kind == "c":
            raise VerifyError(f"{label}: the gradient for {name} is complex ({array.dtype}); gradients of a real "
                              f"loss are real")
        if array.dtype.kind in "iub":
            raise VerifyError(f"{label}: the gradient for {name} has the {array.dtype} dtype; gradients are floating "
                              f"point (an integer array here usually means a truncated computation)")
        if array.dtype.kind != "f":
            raise VerifyError(f"{label}: the gradient for {name} is not an array of numbers ({array.dtype} dtype)")
        if array.shape != value.shape:
            raise VerifyError(f"{label}: the gradient for {name} has shape {array.shape}, expected {value.shape} "
                              f"(the canonical layout is weight (out, in), bias (out,))")
        if notes is not None and array.dtype.itemsize < np.dtype(scenario.dtype).itemsize:
            notes.append(f"your gradient for {name} is {array.dtype}, the scenario {scenario.dtype}: it is compared "
                         f"as {scenario.dtype}, so its rounding counts against it")
        if notes is not None and not np.all(np.isfinite(array)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
            notes.append(f"your gradient for {name} is not finite: {format_element(name, bad)} = "
                         f"{array[bad]}; a non-finite value never agrees with a finite one")
        grads[name] = array.astype(scenario.dtype)
    return grads


def _sample(params, max_coordinates, seed):
    """Coordinates to probe: all of them up to max_coordinates, else a seeded sample (≥ 1 per parameter)."""
    total = sum(v.size for v in params.values())
    if total <= max_coordinates:
        return {name: list(np.ndindex(v.shape)) for name, v in params.items()}
    rng = np.random.default_rng(seed)
    chosen = {}
    for name, value in params.items():
        count = max(1, int(round(max_coordinates * value.size / total)))
        flat = rng.choice(value.size, size=min(count, value.size), replace=False)
        chosen[name] = [tuple(int(i) for i in np.unravel_index(k, value.shape)) for k in sorted(flat)]
    return chosen


def verify(grad_fn: "Callable[..., Any] | str", scenario: "Scenario | str | os.PathLike[str]",
           frameworks: "Iterable[str] | str" = AUTODIFF, finite_differences: bool = True, directions: int = 8,
           max_coordinates: int = 10_000, seed: int = 0, label: "str | None" = None,
           timeout: float = DEFAULT_TIMEOUT, established: "Iterable[str]" = ()) -> VerifyResult:
    """Check grad_fn's gradients on ``scenario`` (a Scenario, a built-in name or a path) -> VerifyResult.

    grad_fn: a callable (run in this process), or "MODULE.py:FUNCTION" (run in a child process with a hard
    timeout: what the code does, os._exit, a signal, a GIL-holding loop, writes to file descriptor 1, cannot
    reach the verdict; ``backproof verify`` always does this).

    frameworks: the autodiff oracles to ask, any of "torch", "jax" and "numpy" (the
    reference's hand-derived backward pass). A missing framework is skipped, not an error.
    established: any of ESTABLISHED ("gradcheck", "check_grads"): the checkers people already trust,
    run on the oracles' own autodiff of the scenario's loss and shown beside the verdict.
    Raises VerifyError when grad_fn fails or answers with missing names or wrong shapes.
    """
    frameworks = as_frameworks(frameworks)          # ValueError for an empty or unknown list, as the CLI's
    try:
        scenario = as_scenario(scenario)
    except ScenarioError as exc:
        raise VerifyError(str(exc)) from None
    if isinstance(grad_fn, str):
        try:
            label = label or sandbox.split_target(grad_fn)[2]
        except sandbox.SandboxError as exc:
            raise VerifyError(str(exc)) from None
    label = label or getattr(grad_fn, "__name__", "grad_fn")
    notes = []
    grads = call_gradients(grad_fn, scenario, label, timeout, notes)
    result = VerifyResult(scenario.name, scenario.dtype, label, [], [], notes=notes)

    runs = run_each(lambda name, module: module.run_step(scenario), as_frameworks(frameworks))
    result.skipped = runs.skipped
    for framework in as_frameworks(frameworks):
        if framework in runs.errors:            # an oracle that crashes is reported, never a traceback
            result.oracles.append(framework)
            result.errors[framework] = runs.errors[framework]
        elif framework in runs.results:
            result.oracles.append(framework)
            trace = runs.results[framework]
            checks = [_judge(name, value, trace[f"grad.{name}"], framework, scenario.dtype, value.size)
                      for name, value in grads.items()]
            if not all(c.ok for c in checks):
                # rounding may put the oracle's z on the other side of a kink than yours (0 in NumPy, 5.55e-17 in
                # torch): then it is judged again with the documented convention there, or the reference's side
                for how, adjusted in kink_alternatives(scenario, framework, trace):
                    again = [_judge(name, value, adjusted[f"grad.{name}"], framework, scenario.dtype, value.size)
                             for name, value in grads.items()]
                    if all(c.ok for c in again):
                        checks = again
                        result.notes.append(f"{framework} differs from yours only at pre-activations within rounding "
                                            f"of a kink; judged with {how}")
                        break
            result.checks += checks

    wrong = list(dict.fromkeys(c.parameter for c in result.checks if not c.ok))
    truth = next((runs.results[fw] for fw in frameworks if fw in runs.results), None)
    if wrong and truth is not None:         # what kind of mistake, judged against the first autodiff oracle that ran
        from .diagnose import diagnose
        result.diagnoses = diagnose(grads, {name: truth[f"grad.{name}"] for name in grads}, scenario, wrong)

    if finite_differences and has_kinks_within_rounding(scenario):
        result.notes.append("finite differences left out: a relu-family pre-activation is within rounding of its "
                            "kink, where the loss has only one-sided derivatives and central differences measure "
                            "their mean")
    elif finite_differences:
        result.oracles.append(FD)
        _finite_differences(result, grads, scenario, directions, max_coordinates, seed)
    for checker in established:
        framework, run = ESTABLISHED[checker]
        module = implementation(framework)
        if isinstance(module, Skipped):
            result.notes.append(f"{checker} left out: {module.message()}")
        else:
            result.established[checker] = run(module.loss_function, scenario)
    return result


def torch_gradcheck(loss_function, scenario):
    """torch.autograd.gradcheck of ``loss_function(scenario)`` in float64 -> (passed, detail)."""
    import importlib

    import torch
    failure = importlib.import_module("torch.autograd.gradcheck").GradcheckError   # the module, not the function
    f, params = loss_function(scenario)
    try:
        passed = torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-5, rtol=1e-3)
        return bool(passed), "torch.autograd.gradcheck(eps=1e-6, atol=1e-5, rtol=1e-3): autograd agrees with " \
                             "torch's own finite differences"
    except failure as exc:
        return False, "torch.autograd.gradcheck: " + str(exc).strip().splitlines()[0]


def jax_check_grads(loss_function, scenario):
    """jax.test_util.check_grads (order 1, reverse mode) of ``loss_function(scenario)`` in float64 -> (passed,
    detail)."""
    import jax
    from jax.test_util import check_grads
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        f, params = loss_function(scenario.with_dtype("float64"))
        try:                        # jitted: compiled once, then every probe of the check is one call
            check_grads(jax.jit(f), (params,), order=1, modes=("rev",), eps=1e-6, atol=1e-5, rtol=1e-3)
        except AssertionError as exc:
            return False, "jax.test_util.check_grads: " + " ".join(str(exc).split())[:300]
    return True, "jax.test_util.check_grads(order=1, modes=('rev',)): jax.grad agrees with JAX's own " \
                 "finite differences"


# name -> (the framework it runs in, the check)
ESTABLISHED = {"gradcheck": ("torch", torch_gradcheck), "check_grads": ("jax", jax_check_grads)}


def _finite_differences(result, grads, scenario, directions, max_coordinates, seed):
    """Per-coordinate (all or sampled) and random-direction differences of the float64 loss."""
    exact = scenario.with_dtype("float64")
    params = {name: np.array(value, dtype=np.float64) for name, value in exact.parameters().items()}
    loss = loss_of(exact)
    coordinates = _sample(params, max_coordinates, seed)
    for name, indices in coordinates.items():
        numeric = gradcheck.coordinate_differences(loss, params, [(name, i) for i in indices])
        yours = np.array([grads[name][i] for i in indices], dtype=scenario.dtype)
        result.checks.append(_judge(name, yours, numeric, FD, scenario.dtype, params[name].size, indices))
    if directions:
        vs = gradcheck.random_directions(params, directions, seed)
        numeric, analytic = gradcheck.directional_derivatives(
            loss, {k: np.asarray(v, np.float64) for k, v in grads.items()}, params, vs)
        comparison = _compare("directions", analytic, numeric, FD, scenario.dtype)
        result.directions = DirectionCheck(gradcheck.default_delta("float64"), numeric.tolist(), analytic.tolist(),
                                           comparison.max_abs, comparison.max_rel, comparison.ok)
