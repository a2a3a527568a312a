"""Kink positions of a 1-input ReLU network: the x where a hidden unit's pre-activation crosses zero.

(Not to be confused with kink_conventions.py, which is about derivatives *at* z == 0.)

Analytic: with one input, every z is piecewise linear in x. Between the kinks
of the layers before it, a unit's z is a straight line, so its zero is found
exactly by solving that line. Numeric: at each analytic kink, every framework's
own forward pass must show the unit's z changing sign, and the slope of the
output (finite differences in x) changes there unless the kink is hidden
(the unit feeds nothing active downstream).
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .frameworks import Skipped, implementation


@dataclass
class Kink:
    layer: int
    unit: int
    x: float


def forward_z(scenario, xs, framework="numpy"):
    """Each layer's z at inputs xs (shape (m,)), from ``framework``'s own forward pass."""
    probe = replace(scenario, inputs=np.asarray(xs, dtype=scenario.dtype).reshape(-1, 1),
                    targets=np.zeros((len(xs), scenario.layers[-1].shape[0]), dtype=scenario.dtype))
    module = implementation(framework)
    if isinstance(module, Skipped):
        return None
    trace = module.run_step(probe)
    return [trace[f"layers.{i}.z"] for i in range(len(scenario.layers))], trace["output"]


def analytic_kinks(scenario, lo=-1e6, hi=1e6):
    """Every x in (lo, hi) where a hidden unit's z is exactly 0, computed piece by piece."""
    if scenario.inputs.shape[1] != 1:
        raise ValueError(f"{scenario.name}: kinks are defined for 1-input networks, this one has {scenario.inputs.shape[1]}")
    kinks = []
    breakpoints = [lo, hi]
    for i in range(len(scenario.layers) - 1):          # hidden layers only: the output is linear
        found = []
        edges = sorted(set(breakpoints))
        for left, right in zip(edges[:-1], edges[1:]):
            # z of layer i is linear on (left, right): read it at two interior points and solve
            for unit in range(scenario.layers[i].shape[0]):
                root = _zero_of_line(scenario, i, unit, left + (right - left) / 3, left + 2 * (right - left) / 3)
                if root is None or not left < root < right:
                    continue
                # refine on a short stencil around the root: the wide first read loses digits
                step = min(0.5, (root - left) / 2, (right - root) / 2)
                refined = _zero_of_line(scenario, i, unit, root - step, root + step)
                found.append(Kink(i, unit, float(root if refined is None else refined)))
        kinks += found
        breakpoints += [k.x for k in found]
    return sorted(kinks, key=lambda k: k.x)


def _zero_of_line(scenario, layer, unit, x0, x1):
    """Where the line through z(x0) and z(x1) of one unit crosses 0, or None if it is flat."""
    zs, _ = forward_z(scenario.with_dtype("float64"), [x0, x1])
    z0, z1 = zs[layer][0, unit], zs[layer][1, unit]
    if z1 == z0:
        return None
    return x0 - z0 * (x1 - x0) / (z1 - z0)


@dataclass
class KinkCheck:
    kink: Kink
    framework: str
    sign_change: bool
    slope_left: float
    slope_right: float

    @property
    def visible(self):
        """The output's slope changes at the kink."""
        scale = max(1.0, abs(self.slope_left), abs(self.slope_right))
        return abs(self.slope_right - self.slope_left) > 1e-6 * scale


def check_kinks(scenario, kinks, framework, h=1e-6):
    """At each kink, the unit's z changes sign in ``framework``; the output's slope on each side."""
    checks = []
    for kink in kinks:
        xs = [kink.x - 2 * h, kink.x - h, kink.x + h, kink.x + 2 * h]
        result = forward_z(scenario, xs, framework)
        if result is None:
            return None
        zs, output = result
        z = zs[kink.layer][:, kink.unit]
        y = output[:, 0].astype(np.float64)
        checks.append(KinkCheck(kink, framework, bool(z[1] * z[2] < 0 or (z[1] == 0) != (z[2] == 0)),
                                float((y[1] - y[0]) / h), float((y[3] - y[2]) / h)))
    return checks


@dataclass
class KinkReport:
    """Kinks before and after training, and each framework's numeric confirmation (float64 probes)."""

    before: list
    after: list
    checks: dict = field(default_factory=dict)      # framework -> [KinkCheck] (before, then after)


def applies(scenario):
    """Kink positions are defined for 1-input networks with a relu-family hidden layer."""
    hidden = [spec.activation for spec in scenario.layers[:-1]]
    return scenario.inputs.shape[1] == 1 and any(a in ("relu", "leaky_relu") for a in hidden)


def framework_checks(scenario, framework, trained):
    """(kinks before, kinks after training, [KinkCheck]) for one framework, from its own trained weights.

    The kinks are computed analytically from the reference's forward pass, before training and at
    ``trained`` (this framework's ``trained.*`` result); the checks run this framework's forward pass.
    Returns None when the framework is not installed.
    """
    base = scenario.with_dtype("float64")
    after_scenario = base.with_parameters(
        {k[len("trained."):]: v for k, v in trained.items() if k.startswith("trained.")})
    before, after = analytic_kinks(base), analytic_kinks(after_scenario)
    found = check_kinks(base, before, framework)
    if found is None:
        return None
    return before, after, found + check_kinks(after_scenario, after, framework)


def kink_report(scenario, results, measured=None):
    """A KinkReport for a 1-input ReLU-family network, or None.

    results: framework -> its training result; measured: framework -> framework_checks(...) already
    computed (in that framework's worker process); the rest are computed here. The kinks shown are the
    reference's (numpy's) when it trained, else the first framework's.
    """
    if not applies(scenario) or not results:
        return None
    measured = dict(measured or {})
    for framework, trained in results.items():
        if framework not in measured:
            measured[framework] = framework_checks(scenario, framework, trained)
    shown = measured.get("numpy") or next(iter(measured.values()))
    return KinkReport(shown[0], shown[1], {fw: m[2] for fw, m in measured.items() if m is not None})
