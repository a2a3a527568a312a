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


MAX_KINKS = 2_000      # kinks per analysis: each is probed in every framework; past it, one line says so


class TooManyKinks(Exception):
    """The analysis stops: more kinks than MAX_KINKS (str() says where)."""


def forward_z(scenario, xs, framework="numpy"):
    """Each layer's z at inputs xs (shape (m,)), and the output, from ``framework``'s own pass, all xs at once."""
    probe = replace(scenario, inputs=np.asarray(xs, dtype=scenario.dtype).reshape(-1, 1),
                    targets=np.zeros((len(xs), scenario.layers[-1].shape[0]), dtype=scenario.dtype))
    if framework == "numpy":                  # the reference's forward pass alone: no loss, no backward, no step
        import reference
        zs, activations = reference.forward(reference.Model(probe), np.array(probe.inputs))
        return zs, activations[-1]
    module = implementation(framework)
    if isinstance(module, Skipped):
        return None
    trace = module.run_step(probe)
    return [trace[f"layers.{i}.z"] for i in range(len(scenario.layers))], trace["output"]


def analytic_kinks(scenario, lo=-1e6, hi=1e6):
    """Every x in (lo, hi) where a hidden unit's z is exactly 0, computed piece by piece: on each piece between the
    kinks of the layers before it, a unit's z is a line, read at two interior points and solved, then refined on a
    short stencil around the root (the wide first read loses digits). One forward pass per layer and step, every
    piece and unit at once. TooManyKinks past MAX_KINKS."""
    if scenario.inputs.shape[1] != 1:
        raise ValueError(f"{scenario.name}: kinks are defined for 1-input networks, this one has {scenario.inputs.shape[1]}")
    base = scenario.with_dtype("float64")
    kinks, breakpoints = [], [lo, hi]
    for i in range(len(scenario.layers) - 1):          # hidden layers only: the output is linear
        edges = np.array(sorted(set(breakpoints)))
        left, right = edges[:-1], edges[1:]
        x0, x1 = left + (right - left) / 3, left + 2 * (right - left) / 3
        roots, units = _zeros_of_lines(base, i, x0, x1)             # (pieces, units) each
        valid = np.isfinite(roots) & (left[:, None] < roots) & (roots < right[:, None])
        piece, unit = np.nonzero(valid)
        if len(kinks) + len(piece) > MAX_KINKS:
            raise TooManyKinks(f"layer {i} alone has {len(piece):,} kinks ({len(kinks) + len(piece):,} so far), over "
                               f"the cap of {MAX_KINKS:,}: the kink analysis is left out")
        root = roots[valid]
        step = np.minimum(0.5, np.minimum((root - left[piece]) / 2, (right[piece] - root) / 2))
        refined, _ = _zeros_of_lines(base, i, root - step, root + step, unit)
        refined = np.where(np.isfinite(refined), refined, root)
        found = [Kink(i, int(u), float(x)) for u, x in zip(unit, refined)]
        kinks += found
        breakpoints += [k.x for k in found]
    return sorted(kinks, key=lambda k: k.x)


def _zeros_of_lines(scenario, layer, x0, x1, units=None):
    """Where the line through z(x0) and z(x1) crosses 0, for every unit of ``layer`` at every pair (units None:
    (pairs, units)), or for the one unit given per pair ((pairs,)); NaN where the line is flat."""
    zs, _ = forward_z(scenario, np.concatenate([x0, x1]))
    z0, z1 = zs[layer][:len(x0)], zs[layer][len(x0):]
    if units is not None:
        rows = np.arange(len(x0))
        z0, z1 = z0[rows, units], z1[rows, units]
    else:
        x0, x1 = x0[:, None], x1[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z1 != z0, x0 - z0 * (x1 - x0) / (z1 - z0), np.nan), units


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
    """At each kink, the unit's z changes sign in ``framework``; the output's slope on each side (every kink's four
    probes in one pass)."""
    if not kinks:
        return []
    xs = np.concatenate([[k.x - 2 * h, k.x - h, k.x + h, k.x + 2 * h] for k in kinks])
    result = forward_z(scenario, xs, framework)
    if result is None:
        return None
    zs, output = result
    checks = []
    for n, kink in enumerate(kinks):
        z = zs[kink.layer][4 * n:4 * n + 4, kink.unit]
        y = output[4 * n:4 * n + 4, 0].astype(np.float64)
        checks.append(KinkCheck(kink, framework, bool(z[1] * z[2] < 0 or (z[1] == 0) != (z[2] == 0)),
                                float((y[1] - y[0]) / h), float((y[3] - y[2]) / h)))
    return checks


@dataclass
class KinkReport:
    """Kinks before and after training, and each framework's numeric confirmation (float64 probes)."""

    before: list
    after: list
    checks: dict = field(default_factory=dict)      # framework -> [KinkCheck] (before, then after)
    capped: str = ""                                # why the analysis was left out (TooManyKinks), or ''


def applies(scenario):
    """Kink positions are defined for 1-input networks with a relu-family hidden layer."""
    hidden = [spec.activation for spec in scenario.layers[:-1]]
    return not scenario.typed and scenario.inputs.shape[1] == 1 and any(a in ("relu", "leaky_relu") for a in hidden)


def framework_checks(scenario, framework, trained):
    """(kinks before, kinks after training, [KinkCheck]) for one framework, from its own trained weights.

    The kinks are computed analytically from the reference's forward pass, before training and at
    ``trained`` (this framework's ``trained.*`` result); the checks run this framework's forward pass.
    Returns None when the framework is not installed, and the TooManyKinks message past MAX_KINKS.
    """
    base = scenario.with_dtype("float64")
    after_scenario = base.with_parameters(
        {k[len("trained."):]: v for k, v in trained.items() if k.startswith("trained.")})
    try:
        before, after = analytic_kinks(base), analytic_kinks(after_scenario)
    except TooManyKinks as exc:
        return str(exc)
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
    capped = next((m for m in measured.values() if isinstance(m, str)), "")
    if capped:
        return KinkReport([], [], {}, capped)
    shown = measured.get("numpy") or next(iter(measured.values()))
    return KinkReport(shown[0], shown[1], {fw: m[2] for fw, m in measured.items() if m is not None})
