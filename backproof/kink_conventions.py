"""Kink conventions: pre-activations exactly 0, where the frameworks' derivative conventions decide.

(Not to be confused with relu_kinks.py, which finds the x positions of a 1-input net's kinks.)

At z = 0 the derivative of relu and leaky_relu is a convention (registry rows
``relu-kink`` and ``leaky-relu-kink``). When a scenario puts some z exactly on
a kink, two frameworks may legitimately disagree from ``layers.{i}.dz`` on.
This module tells that apart from a bug:

1. find every element with z == 0 exactly, in every framework's own forward
   pass, at a relu or leaky_relu layer;
2. measure each framework's derivative there, by differentiating its own
   activation function at 0 (autograd, jax.grad; the reference's f');
3. re-run the NumPy reference with each framework's values at those kinks;
4. a disagreement between frameworks a and b at one tensor is a convention
   difference, not a failure, when both derivatives are the ones the registry
   documents, they differ, and the re-runs account for the whole difference:
   a + (re-run with b's convention − re-run with a's) matches b to the step
   tolerance. Anything left over is reported as a divergence, so a bug is
   never excused, even one in the reference itself (the re-runs share it and
   cancel out of the shift).
"""

from dataclasses import dataclass

import numpy as np

import reference

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
    """One layer's exact kinks and what each framework's derivative is there."""

    layer: int
    activation: str
    negative_slope: float
    positions: list             # [(row, unit)] with z exactly 0
    values: dict                # framework -> derivative at 0
    row: str                    # registry row id

    @property
    def agree(self):
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
    """d activation / dz at z = 0, from ``framework``'s own activation function."""
    if framework == "numpy":
        from reference.layers import Activation
        return float(Activation(activation, negative_slope).derivative(np.zeros(1, dtype=dtype))[0])
    module = implementation(framework)
    if framework == "torch":
        import torch
        x = torch.zeros((), dtype=module.network.DTYPES[dtype], requires_grad=True)
        module.network.activation(activation, negative_slope)(x).backward()
        return float(x.grad)
    import jax
    with module.network.precision(dtype):
        return float(jax.grad(module.network.activation(activation, negative_slope))(np.zeros((), dtype=dtype)))


def exact_kinks(scenario, traces):
    """{layer: [(row, unit)]} where z == 0 exactly in every trace, for relu-family layers."""
    found = {}
    for i, spec in enumerate(scenario.layers):
        if spec.activation not in KINKED:
            continue
        zero = np.ones(scenario.inputs.shape[0:1] + (spec.shape[0],), dtype=bool)
        for trace in traces.values():
            z = trace.get(f"layers.{i}.z")
            if z is None or np.shape(z) != zero.shape:
                return {}
            zero &= np.asarray(z) == 0
        positions = [tuple(int(k) for k in p) for p in np.argwhere(zero)]
        if positions:
            found[i] = positions
    return found


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
    kinks = exact_kinks(scenario, traces)
    if not kinks:
        return [], set()
    measured = measured or {}
    values = {fw: {**derivatives_at_zero(scenario, fw, [i for i in kinks if i not in measured.get(fw, {})]),
                   **{i: measured[fw][i] for i in kinks if i in measured.get(fw, {})}}
              for fw in traces}
    notes = [KinkNote(i, scenario.layers[i].activation, scenario.layers[i].negative_slope, positions,
                      {fw: values[fw][i] for fw in values}, KINKED[scenario.layers[i].activation])
             for i, positions in kinks.items()]

    off_registry = {fw for note in notes for fw in note.undocumented}
    emulated = {fw: reference_with_kink_derivatives(scenario, kink_values) for fw, kink_values in values.items()
                if fw not in off_registry}
    explained = set()
    for c in comparisons:
        if c.ok or c.problem or c.a not in emulated or c.b not in emulated or values[c.a] == values[c.b]:
            continue
        # explained when the convention accounts for the whole difference: shifting a's value by what
        # the reference computes under b's convention minus under a's gives b's value, within tolerance
        a, b = np.asarray(traces[c.a][c.tensor], np.float64), traces[c.b][c.tensor]
        shift = np.asarray(emulated[c.b][c.tensor], np.float64) - np.asarray(emulated[c.a][c.tensor], np.float64)
        if compare_arrays(c.tensor, c.a, (a + shift).astype(scenario.dtype), c.b, b, scenario.dtype).ok:
            explained.add((c.tensor, c.a, c.b))
    return notes, explained


def reference_with_kink_derivatives(scenario, derivatives):
    """The reference's trace with f'(0) of layer i replaced by ``derivatives[i]`` (another framework's
    convention), built from the reference's own stages."""
    model = reference.Model(scenario)
    for i, value in derivatives.items():
        model.activations[i].at_zero = value
    values = reference.gradients(model, np.array(scenario.inputs), scenario.targets, scenario.criterion)
    return reference.canonical_trace(values, *reference.update(model.parameters(), values.grads, {},
                                                               scenario.optimizer))
