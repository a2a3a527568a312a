"""Kink conventions: pre-activations at 0, where the frameworks' derivative conventions, or rounding, decide.

(Not to be confused with relu_kinks.py, which finds the x positions of a 1-input net's kinks.)

At z = 0 the derivative of relu and leaky_relu is a convention (registry rows
``relu-kink`` and ``leaky-relu-kink``). When a scenario puts some z exactly on
a kink, two frameworks may legitimately disagree from ``layers.{i}.dz`` on.
This module tells that apart from a bug:

1. find every element at a relu or leaky_relu layer whose z is within rounding of the kink in any framework's
   own forward pass: |z| ≤ (fan_in + 2)·ε·(Σ_j |W_uj·x_j| + |b_u|), the rounding bound of the dot product that
   made it (KINK_BAND_TERMS; ε of the dtype). A z that is 0 in real arithmetic is 0 in NumPy and 5.55e-17 in
   torch and JAX once the batch has two rows: rounding, not the math, picks the side there, so each
   framework's derivative is its own f' at its own z (its f'(0) convention where its z is exactly 0);
2. measure each framework's derivative there, by differentiating its own
   activation function at 0 (autograd, jax.grad; the reference's f');
3. re-run the NumPy reference with each framework's derivatives at those elements;
4. a disagreement between frameworks a and b at one tensor is a convention
   difference, not a failure, when both derivatives are the ones the registry
   documents, they differ, and the re-runs account for the whole difference:
   a + (re-run with b's convention − re-run with a's) matches b to the step
   tolerance. Anything left over is reported as a divergence, so a bug is
   never excused, even one in the reference itself (the re-runs share it and
   cancel out of the shift).
"""

from dataclasses import dataclass, field

import numpy as np

import reference
from reference.layers import Activation

from .compare import compare_arrays
from .frameworks import implementation
from .names import format_element

KINKED = {"relu": "relu-kink", "leaky_relu": "leaky-relu-kink"}     # activation -> registry row id

# What the registry documents for the functions each implementation uses ("slope": the layer's
# negative_slope). tests/test_exact_kinks.py checks this against the registry rows, whose values
# are measured from the real frameworks. A measured value that differs is a bug, never a convention.
DOCUMENTED = {
    "relu": {"numpy": 0.0, "torch": 0.0, "jax": 0.0},
    "leaky_relu": {"numpy": "slope", "torch": "slope", "jax": 1.0},
}


def documented(framework, activation, negative_slope):
    value = DOCUMENTED[activation][framework]
    return negative_slope if value == "slope" else value


@dataclass
class KinkNote:
    """One layer's kinks (z exactly 0 in every framework, or within rounding of 0 in one) and each framework's
    derivative there."""

    layer: int
    activation: str
    negative_slope: float
    positions: list             # [(row, unit)] with z at the kink (exactly, or within rounding in some framework)
    values: dict                # framework -> its derivative at exactly 0 (its convention)
    row: str                    # registry row id
    rounded: dict = field(default_factory=dict)     # (row, unit) -> {framework: z}, where z is not 0 in every one
    effective: dict = field(default_factory=dict)   # framework -> {(row, unit): f' it used there}

    @property
    def agree(self):
        if self.rounded:
            return len({tuple(sorted(used.items())) for used in self.effective.values()}) <= 1
        return len(set(self.values.values())) <= 1

    @property
    def undocumented(self):
        """framework -> documented value, where the measured derivative is not the documented one."""
        return {fw: documented(fw, self.activation, self.negative_slope) for fw, v in self.values.items()
                if not np.isclose(v, documented(fw, self.activation, self.negative_slope), rtol=1e-6, atol=0)}

    def where(self):
        shown = ", ".join(format_element(f"layers.{self.layer}.z", p) for p in self.positions[:4])
        return shown + (f" and {len(self.positions) - 4} more" if len(self.positions) > 4 else "")

    def message(self):
        if self.rounded:
            position, zs = next(iter(self.rounded.items()))
            shown = ", ".join(f"{z:.3g} in {fw}" for fw, z in zs.items())
            more = f" (and {len(self.rounded) - 1} more such elements)" if len(self.rounded) > 1 else ""
            used = "; ".join(f"{fw} uses {self.activation}' = {values[position]:g}"
                             for fw, values in self.effective.items())
            return (f"kink within rounding at {format_element(f'layers.{self.layer}.z', position)}: z is {shown}"
                    f"{more}, within the rounding of the sums that made it, so rounding picks the side: {used} "
                    f"(registry row {self.row})")
        name = f"{self.activation}'(0)"
        if self.undocumented:
            wrong = "; ".join(f"{fw}'s {name} is {self.values[fw]:g}, the registry documents {v:g}"
                              for fw, v in self.undocumented.items())
            return f"exact kink at {self.where()} = 0: {wrong} (registry row {self.row}): not a convention, a bug"
        if self.agree:
            value = next(iter(self.values.values()), None)
            return (f"exact kink at {self.where()} = 0: {name} is {value:g} in {', '.join(self.values)}: "
                    f"they agree (registry row {self.row})")
        groups = {}
        for fw, v in self.values.items():
            groups.setdefault(v, []).append(fw)
        values = " and ".join(f"{v:g} in {' and '.join(fws)}" for v, fws in groups.items())
        return f"convention difference at {self.where()} = 0: {name} is {values} (registry row {self.row})"


def derivative_at_zero(framework, activation, negative_slope, dtype):
    """d activation / dz at z = 0, from ``framework``'s own activation function (its ``derivative_at_zero`` probe,
    backproof/interface.py)."""
    return implementation(framework).derivative_at_zero(activation, negative_slope, dtype)


def exact_kinks(scenario, traces):
    """{layer: [(row, unit)]} where z == 0 exactly in every trace, for relu-family layers."""
    found = {}
    for i, (spec, shape) in enumerate(zip(scenario.layers, scenario.layer_shapes())):
        if spec.activation not in KINKED:
            continue
        zero = np.ones(scenario.inputs.shape[0:1] + shape, dtype=bool)
        for trace in traces.values():
            z = trace.get(f"layers.{i}.z")
            if z is None or np.shape(z) != zero.shape:
                return {}
            zero &= np.asarray(z) == 0
        positions = [tuple(int(k) for k in p) for p in np.argwhere(zero)]
        if positions:
            found[i] = positions
    return found


KINK_BAND_TERMS = 2     # the band is (fan_in + KINK_BAND_TERMS)·ε·magnitude: one rounding per product and sum term,
                        # one for the bias and one for the layer's input, itself rounded


def kink_band(scenario, trace, layer):
    """The shape of z: how far rounding can move each z of ``layer`` from its real value, (fan_in + 2)·ε·(|x|·|W|ᵀ +
    |b|), with x the layer's input in ``trace`` (any framework's: they agree to rounding). For a conv, the same
    layer applied to |x| with |W| and |b|, fan_in its weight's size per output channel; a layer without weights
    (a pool) moves nothing by more than its input's own rounding, the layer applied to |x| with fan_in 0."""
    from reference.layers import build
    spec = scenario.layers[layer]
    below = np.asarray(scenario.inputs if layer == 0 else trace[f"layers.{layer - 1}.a"], np.float64)
    absolute = {name: np.abs(np.asarray(value, np.float64)) for name, value in spec.parameters().items()}
    magnitude = build(spec, absolute, copy=False).forward(np.abs(below))
    fan_in = 0 if spec.weight is None else int(np.prod(spec.weight.shape[1:]))
    return (fan_in + KINK_BAND_TERMS) * np.finfo(scenario.dtype).eps * magnitude


def kinks_within_rounding(scenario, traces):
    """{layer: [(row, unit)]} where some trace's z is within kink_band of 0, for relu-family layers (every exact
    zero included)."""
    found = {}
    first = next(iter(traces.values()), None)
    for i, (spec, layer_shape) in enumerate(zip(scenario.layers, scenario.layer_shapes())):
        if spec.activation not in KINKED or first is None:
            continue
        shape = scenario.inputs.shape[0:1] + layer_shape
        zs = [np.asarray(trace.get(f"layers.{i}.z")) for trace in traces.values()]
        if any(z.shape != shape for z in zs):
            return {}                       # a trace that breaks the contract: reported elsewhere, never a crash
        try:
            band = kink_band(scenario, first, i)
        except (KeyError, ValueError):
            return {}
        near = np.zeros(shape, dtype=bool)
        for z in zs:
            with np.errstate(invalid="ignore"):
                near |= np.abs(z.astype(np.float64)) <= band
        positions = [tuple(int(k) for k in p) for p in np.argwhere(near)]
        if positions:
            found[i] = positions
    return found


def has_kinks_within_rounding(scenario):
    """Some relu-family pre-activation of the reference's forward pass is within rounding of its kink: there the
    loss has only one-sided derivatives, and finite differences straddle the kink and measure their mean."""
    return bool(kinks_within_rounding(scenario, {"numpy": reference.run_step(scenario)}))


def has_exact_kinks(scenario):
    """Some relu-family pre-activation of the reference's forward pass is exactly 0.

    There the loss has no derivative, only one-sided ones: finite differences
    straddle the kink and measure their average, so they are no oracle.
    """
    return bool(exact_kinks(scenario, {"numpy": reference.run_step(scenario)}))


def within_a_step_of_a_kink(scenario, delta):
    """Some relu-family pre-activation lies within δ·(1 + the largest |input| of its layer) of its kink: a
    central difference of step δ on that layer's weights can straddle it, and measure the mean of two one-sided
    slopes (spiral-2-16-3-adam in float32: a z of 8e-4 against float32's δ of 1e-2)."""
    trace = reference.run_step(scenario)
    for i, spec in enumerate(scenario.layers):
        if spec.activation in ("relu", "leaky_relu"):
            feed = scenario.inputs if i == 0 else trace[f"layers.{i - 1}.a"]
            if np.min(np.abs(trace[f"layers.{i}.z"])) < delta * (1 + np.max(np.abs(feed))):
                return True
    return False


def measured_derivatives(scenario, framework, trace):
    """{layer: f'(0)} measured in ``framework`` for every relu-family layer with a z exactly 0 in its trace
    (what explain_kinks needs; run in the framework's own process by ``check``)."""
    return derivatives_at_zero(scenario, framework, exact_kinks(scenario, {framework: trace}))


def derivatives_at_zero(scenario, framework, layers):
    """{layer: f'(0)} of each of ``layers`` in ``framework``."""
    return {i: derivative_at_zero(framework, scenario.layers[i].activation, scenario.layers[i].negative_slope,
                                  scenario.dtype) for i in layers}


def explain_kinks(scenario, traces, comparisons, measured=None):
    """(notes, explained): a KinkNote per kinked layer, and the failing comparisons' (tensor, a, b) explained.

    measured: framework -> measured_derivatives(...) already taken; the rest are measured here.
    """
    kinks = kinks_within_rounding(scenario, traces)
    if not kinks:
        return [], set()
    measured = measured or {}
    values = {fw: {**derivatives_at_zero(scenario, fw, [i for i in kinks if i not in measured.get(fw, {})]),
                   **{i: measured[fw][i] for i in kinks if i in measured.get(fw, {})}}
              for fw in traces}
    effective = {fw: {i: effective_derivatives(scenario, i, positions, traces[fw], values[fw][i])
                      for i, positions in kinks.items()} for fw in traces}
    notes = []
    for i, positions in kinks.items():
        rounded = {p: {fw: float(np.asarray(traces[fw][f"layers.{i}.z"])[p]) for fw in traces} for p in positions}
        rounded = {p: zs for p, zs in rounded.items() if any(z != 0 for z in zs.values())}
        notes.append(KinkNote(i, scenario.layers[i].activation, scenario.layers[i].negative_slope, positions,
                              {fw: values[fw][i] for fw in values}, KINKED[scenario.layers[i].activation],
                              rounded, {fw: effective[fw][i] for fw in traces} if rounded else {}))

    off_registry = {fw for note in notes for fw in note.undocumented}
    emulated = {fw: reference_with_kink_derivatives(scenario, effective[fw]) for fw in traces
                if fw not in off_registry}
    explained = set()
    for c in comparisons:
        if c.ok or c.problem or c.a not in emulated or c.b not in emulated or effective[c.a] == effective[c.b]:
            continue
        # explained when the kink accounts for the whole difference: shifting a's value by what the reference
        # computes with b's derivatives at the kinks minus with a's gives b's value, within tolerance
        a, b = np.asarray(traces[c.a][c.tensor], np.float64), traces[c.b][c.tensor]
        shift = np.asarray(emulated[c.b][c.tensor], np.float64) - np.asarray(emulated[c.a][c.tensor], np.float64)
        if compare_arrays(c.tensor, c.a, (a + shift).astype(scenario.dtype), c.b, b, scenario.dtype).ok:
            explained.add((c.tensor, c.a, c.b))
    return notes, explained


def effective_derivatives(scenario, layer, positions, trace, at_zero):
    """{(row, unit): f'} the framework of ``trace`` used at each position: its own f' at its own z, ``at_zero`` (its
    measured convention) where its z is exactly 0."""
    spec = scenario.layers[layer]
    z = np.asarray(trace[f"layers.{layer}.z"])
    slope = Activation(spec.activation, spec.negative_slope).derivative(z)
    return {p: float(at_zero) if z[p] == 0 else float(slope[p]) for p in positions}


class KinkDerivatives(Activation):
    """A reference activation whose f' is replaced: ``values`` is a number (f' wherever z is exactly 0: another
    framework's convention at the kink) or {(row, unit): f'} (per element). Only ``derivative`` is overridden: the
    reference's own backward, relu's handling of non-finite values included, calls it. Lives here, not in the
    reference, which stays a textbook."""

    def __init__(self, layer, values):
        super().__init__(layer.name, layer.negative_slope)
        self.values = values

    def derivative(self, z):
        slope = np.array(self.fn_grad(z, *self.extra))
        if not isinstance(self.values, dict):
            return np.where(z == 0, self.values, slope).astype(slope.dtype)
        for position, value in self.values.items():
            slope[position] = value
        return slope


def reference_with_kink_derivatives(scenario, derivatives):
    """The reference's trace with f' of layer i replaced: ``derivatives[i]`` is a number (f'(0) wherever the
    reference's z is exactly 0: another framework's convention) or {(row, unit): f'} (per element)."""
    model = reference.Model(scenario)
    for i, value in derivatives.items():
        model.activations[i] = KinkDerivatives(model.activations[i], value)
    values = reference.gradients(model, np.array(scenario.inputs), scenario.targets, scenario.criterion)
    return reference.canonical_trace(values, *reference.update(model.parameters(), values.grads, {},
                                                               scenario.optimizer))


def kink_alternatives(scenario, framework, trace):
    """[(how, gradients)]: ``framework``'s gradients re-expressed with other derivatives at the elements within
    rounding of a kink (in its trace or the reference's): the documented convention at every one of them, then the
    reference's own side. What ``verify`` compares a hand-written gradient with when the oracle itself differs only
    there ([] when there is no such element)."""
    ours = reference.run_step(scenario)
    kinks = kinks_within_rounding(scenario, {framework: trace, "numpy": ours})
    if not kinks:
        return []
    at_zero = derivatives_at_zero(scenario, framework, kinks)
    theirs = {i: effective_derivatives(scenario, i, positions, trace, at_zero[i]) for i, positions in kinks.items()}
    if any(not np.isclose(value, documented(framework, scenario.layers[i].activation,
                                            scenario.layers[i].negative_slope), rtol=1e-6, atol=0)
           for i, value in at_zero.items()):
        return []                           # a framework off the registry is a bug, never re-expressed
    candidates = [
        ("the documented convention (f'(0) as the registry documents it for the reference) at every element "
         "within rounding of a kink",
         {i: {p: documented("numpy", scenario.layers[i].activation, scenario.layers[i].negative_slope)
              for p in positions} for i, positions in kinks.items()}),
        ("the reference's side of every element within rounding of a kink",
         {i: effective_derivatives(scenario, i, positions, ours,
                                   documented("numpy", scenario.layers[i].activation, scenario.layers[i].negative_slope))
          for i, positions in kinks.items()}),
    ]
    base = reference_with_kink_derivatives(scenario, theirs)
    out = []
    for how, derivatives in candidates:
        if derivatives == theirs:
            continue
        other = reference_with_kink_derivatives(scenario, derivatives)
        out.append((how, {name: (np.asarray(trace[name], np.float64) + np.asarray(other[name], np.float64)
                                 - np.asarray(base[name], np.float64)).astype(scenario.dtype)
                          for name in trace if name.startswith("grad.")}))
    return out
