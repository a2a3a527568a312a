"""Whole training runs in every framework, compared epoch by epoch.

Rounding is amplified by some training runs: Adam and centered RMSprop divide by running
estimates that rounding moves, and a ReLU unit that flips on or off changes every step after
it. Two correct implementations then drift apart by more than the training tolerance, in
float32 mostly. To tell that from a bug, a drift beyond tolerance is set against the
**rounding noise floor**: the reference trained again with one rounding's worth of noise in
every value it computes (seeded): each layer's outputs forward and backward, each gradient
element (by ε times the magnitudes it was summed from) and each parameter after the update. A
drift within NOISE_FACTOR times that floor, at every tensor it fails, is explained: the run
cannot be compared more tightly at this precision (``--strict`` fails it anyway).

Each implementation's ``train(scenario, epochs)`` returns ``train.loss`` (E,), the mean
step loss of each epoch, ``trained.layers.{i}.weight/bias`` and the optimizer's state at the end,
``trained.state.layers.{i}.weight.{buffer}``. ``train(scenario)`` from
Python and ``backproof train`` on the command line give the same verdict.
"""

import functools
import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

import reference
from reference import Scenario
from reference.network import Model, gradients
from reference.optim import update
from reference.trace import state_names

from .compare import TOLERANCES, compare_arrays
from .frameworks import FRAMEWORKS, Covered, as_frameworks, run_each
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
    noise: "dict | None" = None                     # the noise floor's max |Δ| per name, when it was measured
    atol: float = 0.0

    @property
    def ok(self):
        return self.first_bad_epoch is None and all(c.ok for c in self.final)

    @property
    def explained(self):
        """Beyond tolerance, but within NOISE_FACTOR × the rounding noise floor at every failing name. A non-finite
        mismatch (inf where the other is finite, NaN against inf) is never explained, and neither is anything
        against a floor that is not finite (a noisy run that overflowed explains nothing)."""
        if self.ok or self.noise is None:
            return False
        failing = [("train.loss", self.max_loss_abs)] if self.first_bad_epoch is not None else []
        failing += [(c.tensor, c.max_abs) for c in self.final if not c.ok]
        return all(math.isfinite(value) and math.isfinite(self.noise.get(name, 0.0))
                   and value <= NOISE_FACTOR * max(self.noise.get(name, 0.0), self.atol) for name, value in failing)


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
                 int(np.argmax(diff)) + 1 if diff.size else 0, diff.tolist(), final,
                 atol=TOLERANCES[dtype]["train"][0])


NOISE_FACTOR = 4      # the drifts `make calibrate` measures against the floor are in docs/evidence.md
NOISE_SEEDS = (0, 1)      # two noisy runs: a chaotic run's floor varies with the draw; the larger counts


class Rounded:
    """A reference layer whose every output is rounded once more, forward and backward, as a framework's own
    arithmetic would round it. Forward: x·(1 + u·ε). Backward through an activation: ∂L/∂z + u·ε·|∂L/∂a|, the
    rounding of f'(z) itself, which is computed from O(1) terms (1 − a² for tanh): near saturation that is all
    of f'. Backward through a dense layer: ∂L/∂x·(1 + u·ε). Every other attribute (weight, bias, their
    gradients) is the wrapped layer's."""

    def __init__(self, layer, noise, activation):
        object.__setattr__(self, "layer", layer)
        object.__setattr__(self, "noise", noise)
        object.__setattr__(self, "activation", activation)

    def forward(self, x):
        out = self.layer.forward(x)
        return (out * (1 + self.noise(out.shape))).astype(out.dtype)

    def backward(self, grad):
        out = self.layer.backward(grad)
        if out is None:                                     # an embedding's indices: nothing flows back
            return None
        rounding = self.noise(out.shape) * (np.abs(grad) if self.activation else out)
        return (out + rounding).astype(out.dtype)

    def __getattr__(self, name):
        return getattr(self.layer, name)

    def __setattr__(self, name, value):
        setattr(self.layer, name, value)


def noise_floor_run(scenario, epochs, seed=0):
    """The reference's training, from the reference's own stages, with one rounding's worth of noise per value
    (seeded; u is drawn from {−1, 0, +1} per element, ε is the dtype's machine epsilon):

    - every output of every layer, forward (z, a) and backward (∂L/∂z, ∂L/∂a), is rounded once more (Rounded), so
      a saturated tanh's 1 − a² carries the error a framework's own rounding gives it;
    - every gradient element moves by u·ε·(the magnitudes it was summed from), |dZ|ᵀ·|A| for a weight and Σ|dZ|
      for a bias: the rounding bound of that sum, which Adam and RMSprop amplify by up to lr/eps near 0;
    - every parameter is multiplied by (1 + u·ε) after the update.

    -> a result like ``reference.train``'s."""
    epochs, batch_size = scenario.schedule(epochs)
    rng = np.random.default_rng(seed)
    eps = np.finfo(scenario.dtype).eps
    noise = lambda shape: eps * rng.integers(-1, 2, shape)                         # noqa: E731
    model, state, losses = Model(scenario), {}, []
    model.layers = [Rounded(layer, noise, activation=False) for layer in model.layers]
    model.activations = [Rounded(layer, noise, activation=True) for layer in model.activations]
    batches = [(np.array(scenario.inputs[s:s + batch_size]), scenario.targets[s:s + batch_size])
               for s in range(0, scenario.inputs.shape[0], batch_size)]
    with np.errstate(all="ignore"):              # a diverging run overflows here as it does in reference.train
        for _ in range(epochs):
            for x, t in batches:
                values = gradients(model, x, t, scenario.criterion)
                grads = dict(values.grads)
                for i, (dz, below) in enumerate(zip(values.dzs, [x] + values.activations[:-1])):
                    for name, magnitude in gradient_magnitudes(scenario.layers[i], i, np.abs(dz), np.abs(below)):
                        if name in grads:
                            grads[name] = (grads[name] + noise(magnitude.shape) * magnitude).astype(scenario.dtype)
                params, state = update(model.parameters(), grads, state, scenario.optimizer)
                model.set_parameters({name: (p * (1 + noise(p.shape))).astype(scenario.dtype)
                                      for name, p in params.items()})
                losses.append(values.loss)
    result = {"train.loss": np.array(losses, scenario.dtype).reshape(epochs, len(batches)).mean(axis=1,
                                                                                              dtype=scenario.dtype)}
    result.update({f"trained.{name}": value for name, value in {**model.parameters(), **model.buffers()}.items()})
    result.update({f"trained.{name}": value for name, value in state_names(state).items()})
    return result


def gradient_magnitudes(spec, i, dz_abs, below_abs):
    """[(parameter name, the magnitudes its gradient is summed from)]: the layer's own backward pass run on |∂L/∂z| and
    |input| (|dZ|ᵀ·|A| for a linear weight and Σ|dZ| for its bias; for a conv the same sums over positions)."""
    from reference.layers import build
    if not spec.parameters():
        return []
    layer = build(spec, {name: np.abs(value) for name, value in spec.parameters().items()}, copy=False)
    layer.forward(below_abs)
    layer.backward(dz_abs)
    return [(f"layers.{i}.{name}", value) for name, value in layer.gradients().items()]


def noise_floor(scenario, epochs, reference_result=None):
    """Max |Δ| per name (``train.loss`` and every ``trained.*``) between the reference and its noisy runs (the
    larger of NOISE_SEEDS' runs, name by name)."""
    clean = reference_result if reference_result is not None else reference.train(scenario, epochs)
    floor = {}
    for seed in NOISE_SEEDS:
        run = drift("numpy", clean, "numpy, rounded once more", noise_floor_run(scenario, epochs, seed),
                    scenario.dtype)
        for name, value in [("train.loss", run.max_loss_abs)] + [(c.tensor, c.max_abs) for c in run.final]:
            floor[name] = max(floor.get(name, 0.0), value)
    return floor


@dataclass(repr=False)         # Covered gives str (the CLI's text), a one-line repr and .verdict
class TrainReport(Covered):
    scenario: Scenario
    epochs: int
    batch_size: int
    results: dict                       # framework -> training result
    seconds: dict                       # framework -> wall time of its run
    skipped: list
    errors: dict
    drifts: list
    finite_differences: "dict | None" = None    # the reference trained with central differences
    relu_kinks: "object | None" = None          # KinkReport for 1-input ReLU-family networks
    strict: bool = False                        # then a drift the noise floor explains fails too
    asked: tuple = FRAMEWORKS                   # the frameworks asked for
    required: tuple = ()                        # the frameworks that must run (--require)

    @property
    def ran(self):
        return self.results

    @property
    def agrees(self):
        """No framework failed and every drift is within tolerance (or explained, unless strict)."""
        return not self.errors and all(d.ok or (d.explained and not self.strict) for d in self.drifts)

    @property
    def explained(self):
        """The drifts beyond tolerance that the rounding noise floor explains."""
        return [d for d in self.drifts if d.explained]

    def divergence(self):
        """framework -> the first epoch (1-based) whose loss is not finite, or None: divergence, not drift."""
        found = {}
        for framework, result in self.results.items():
            bad = np.flatnonzero(~np.isfinite(result["train.loss"]))
            found[framework] = int(bad[0]) + 1 if bad.size else None
        return found


def compare_training(scenario, epochs, results, seconds, skipped, errors, kink_checks=None, strict=False,
                     asked=FRAMEWORKS, required=()):
    """A TrainReport from each framework's training result (kink_checks: relu_kinks.framework_checks
    already computed per framework, in its own process). A drift beyond tolerance is measured against
    the rounding noise floor (computed only then)."""
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
    if not all(d.ok for d in drifts):
        floor = noise_floor(scenario, epochs, good.get("numpy"))
        for d in drifts:
            d.noise = floor
    report = TrainReport(scenario, epochs, batch_size, good, {k: v for k, v in seconds.items() if k in good},
                         list(skipped), errors, drifts, strict=strict, asked=tuple(asked), required=tuple(required))
    from .relu_kinks import kink_report
    report.relu_kinks = kink_report(scenario, good, {k: v for k, v in (kink_checks or {}).items() if k in good})
    return report


def train_each(framework, module, scenario, epochs):
    """One framework's training run (module-level, so it can run in a process of its own). A diverging run overflows:
    a result to compare (torch and JAX say nothing), not NumPy's warning."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return module.train(scenario, epochs)


def finite_difference_train(scenario, epochs=None, delta=1e-4):
    """Post 001's first method: the reference's training with central differences (step ``delta``) on copies of the
    weights in place of the hand-derived backward pass, from the reference's own stages -> a result like
    ``reference.train``'s (``train.loss``, ``trained.*``)."""
    from reference.gradcheck import central_differences
    from reference.network import Model, loss_of
    from reference.optim import update
    from reference.trace import state_names
    epochs, batch_size = scenario.schedule(epochs)
    model, state, losses = Model(scenario), {}, []
    batches = [(np.array(scenario.inputs[s:s + batch_size]), scenario.targets[s:s + batch_size])
               for s in range(0, scenario.inputs.shape[0], batch_size)]
    for _ in range(epochs):
        for x, t in batches:
            loss_at = loss_of(scenario, x, t, anchor=model.parameters())   # a padding row held where it stands
            loss, grads = loss_at(model.parameters()), central_differences(loss_at, model.parameters(), delta)
            params, state = update(model.parameters(), grads, state, scenario.optimizer)
            model.set_parameters(params)
            losses.append(loss)
    result = {"train.loss": np.array(losses, scenario.dtype).reshape(epochs, len(batches)).mean(axis=1,
                                                                                              dtype=scenario.dtype)}
    result.update({f"trained.{name}": np.array(value, copy=True) for name, value in model.parameters().items()})
    result.update({f"trained.{name}": value for name, value in state_names(state).items()})
    return result


def train(scenario: "Scenario | str | os.PathLike[str]", frameworks: "Iterable[str] | str" = FRAMEWORKS,
          epochs: "int | None" = None, finite_differences: bool = False, parallel: bool = False,
          strict: bool = False, require: "Iterable[str] | str" = ()) -> "TrainReport":
    """Train in every framework from the scenario's weights and compare the runs -> TrainReport.

    scenario: a Scenario, a built-in name or a path. finite_differences: also train the
    reference with central differences (post 001's first method), shown beside the others.
    strict: a drift that the rounding noise floor explains fails too.
    require: frameworks that must train (else ``ok`` is False); fewer than two of several asked for is
    ``not_compared``, never OK.
    """
    scenario = as_scenario(scenario)
    epochs, _ = scenario.schedule(epochs)
    frameworks, require = as_frameworks(frameworks), (as_frameworks(require) if require else ())
    runs = run_each(functools.partial(train_each, scenario=scenario, epochs=epochs), frameworks, parallel)
    report = compare_training(scenario, epochs, runs.results, runs.seconds, runs.skipped, runs.errors,
                              strict=strict, asked=frameworks, required=require)
    if finite_differences:
        report.finite_differences = finite_difference_train(scenario, epochs)
    return report
