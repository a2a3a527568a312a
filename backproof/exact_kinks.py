"""Pre-activations that are exactly 0, where the frameworks' derivative conventions decide.

At z = 0 the derivative of relu and leaky_relu is a convention (registry rows
``relu-kink`` and ``leaky-relu-kink``). When a scenario puts some z exactly on
a kink, two frameworks may legitimately disagree from ``layers.{i}.dz`` on.
This module tells that apart from a bug:

1. find every element with z == 0 exactly, in every framework's own forward
   pass, at a relu or leaky_relu layer;
2. measure each framework's derivative there, by differentiating its own
   activation function at 0 (autograd, jax.grad; the reference's f');
3. re-run the NumPy reference with each framework's values at those kinks;
4. a framework whose trace matches its re-run (to the step tolerance) is
   *explained*; a disagreement between two explained frameworks whose kink
   values differ is a convention difference, not a failure.
"""

from dataclasses import dataclass

import numpy as np

import reference

from .compare import compare_traces
from .frameworks import Skipped, implementation
from .names import format_element, tensor_shapes

KINKED = {"relu": "relu-kink", "leaky_relu": "leaky-relu-kink"}     # activation -> registry row id


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

    def where(self):
        shown = ", ".join(format_element(f"layers.{self.layer}.z", p) for p in self.positions[:4])
        return shown + (f" and {len(self.positions) - 4} more" if len(self.positions) > 4 else "")

    def message(self):
        name = f"{self.activation}'(0)"
        if self.agree:
            value = next(iter(self.values.values()), None)
            return (f"exact kink at {self.where()} = 0: {name} is {value:g} in {', '.join(self.values)}: "
                    f"they agree (registry row {self.row})")
        groups = {}
        for fw, v in self.values.items():
            groups.setdefault(v, []).append(fw)
        values = " and ".join(f"{v:g} in {' and '.join(fws)}" for v, fws in groups.items())
        return f"convention difference at {self.where()} = 0: {name} is {values} (registry row {self.row})"

    def to_json(self):
        return {"layer": self.layer, "activation": self.activation, "positions": [list(p) for p in self.positions],
                "values": self.values, "agree": self.agree, "registry_row": self.row, "message": self.message()}


def derivative_at_zero(framework, activation, negative_slope, dtype):
    """d activation / dz at z = 0, from ``framework``'s own activation function."""
    if framework == "numpy":
        from reference.layers import Activation
        layer = Activation(activation, negative_slope)
        layer.forward(np.zeros(1, dtype=dtype))
        return float(layer.backward(np.ones(1, dtype=dtype))[0])
    module = implementation(framework)
    if framework == "torch":
        import torch
        x = torch.zeros((), dtype=module.network.DTYPES[dtype], requires_grad=True)
        module.network.activation_fn(activation, negative_slope)(x).backward()
        return float(x.grad)
    import jax
    with module.network.precision(dtype):
        return float(jax.grad(module.network.activation_fn(activation, negative_slope))(np.zeros((), dtype=dtype)))


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


def explain_kinks(scenario, traces, comparisons):
    """(notes, explained): a KinkNote per kinked layer, and the failing comparisons' (tensor, a, b) explained."""
    kinks = exact_kinks(scenario, traces)
    if not kinks:
        return [], set()
    values = {fw: {i: derivative_at_zero(fw, scenario.layers[i].activation, scenario.layers[i].negative_slope,
                                         scenario.dtype) for i in kinks}
              for fw in traces if not isinstance(implementation(fw), Skipped)}
    notes = [KinkNote(i, scenario.layers[i].activation, scenario.layers[i].negative_slope, positions,
                      {fw: values[fw][i] for fw in values}, KINKED[scenario.layers[i].activation])
             for i, positions in kinks.items()]

    consistent = set()
    order = list(tensor_shapes(scenario))
    for fw, kink_values in values.items():
        emulated = reference.run_step(scenario, kinks=kink_values)
        if all(c.ok for c in compare_traces({fw: traces[fw], "emulated": emulated}, order, scenario.dtype)):
            consistent.add(fw)
    explained = {(c.tensor, c.a, c.b) for c in comparisons
                 if not c.ok and not c.problem and {c.a, c.b} <= consistent and values[c.a] != values[c.b]}
    return notes, explained
