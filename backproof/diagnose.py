"""What kind of mistake a wrong gradient is, when the evidence says so clearly: a verdict says where, this says what.

``diagnose(yours, truth, scenario)`` looks only at the parameters whose gradient is wrong and names a signature when
every element fits it within the comparison's tolerance (and never on a right gradient, or on noise):

    a constant ratio      every element is r × the true one: r = n (the batch size: summed where the loss averages
                          over the rows), 1/n, 2 (the ½ of a squared error dropped, or 2(y − t) twice), 1/2, −1 (the
                          sign), or another constant
    a transpose           a square weight's gradient is the true one transposed (Xᵀ·dZ for dZᵀ·X)
    another parameter's   the gradient equals the true gradient of another parameter of the same shape
    a missing term        the gradient equals the reference's with one classic mistake made (``counterfactuals``):
                          an activation's f'(z) forgotten, a norm's backward without the paths through its statistics

The ratio is read on the elements whose true value is clearly nonzero; a zero true element must be zero in yours too.
A gradient with one such element is a ratio of any number: it is diagnosed only when the ratio has a named cause.
"""

from dataclasses import dataclass

import numpy as np

from .compare import TOLERANCES

# ratios with a likely cause, as (value, what it means); n is the batch size
RATIO_CAUSES = ((-1.0, "the sign is flipped: the gradient of −L, or (t − y) written for (y − t)"),
                (2.0, "a factor 2 too many: the ½ of a squared-error loss dropped, or its 2 applied twice"),
                (0.5, "a factor 2 missing: the derivative of (y − t)² is 2·(y − t)"))


@dataclass(frozen=True)
class Diagnosis:
    parameter: str
    kind: str           # "ratio", "transpose", "other-parameter" or "missing-term"
    text: str


def _close(a, b, dtype):
    atol, rtol = TOLERANCES[dtype]["step"]
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def constant_ratio(yours, truth, dtype):
    """r when yours = r·truth element for element (within the step tolerance), r ≠ 1; else None."""
    atol, _ = TOLERANCES[dtype]["step"]
    clear = np.abs(truth) > 1e3 * atol
    if not np.any(clear) or not np.all(np.isfinite(yours)):
        return None
    ratios = yours[clear] / truth[clear]
    r = float(np.median(ratios))
    if not np.isfinite(r) or r == 0 or _close(np.asarray(r * 1.0), np.asarray(1.0), dtype):
        return None
    return r if _close(yours, r * truth, dtype) else None


def ratio_cause(r, rows):
    """The likely cause of a constant ratio r, or None: the batch size (n rows), its inverse, 2, ½, −1."""
    if rows > 1 and abs(r - rows) <= 1e-6 * rows:
        return f"the batch size, {rows}: summed over the rows where the loss averages them (divide by n = {rows})"
    if rows > 1 and abs(r - 1.0 / rows) <= 1e-6 / rows:
        return f"1 / the batch size: averaged over the {rows} rows where the loss sums them"
    return next((text for value, text in RATIO_CAUSES if abs(r - value) <= 1e-6 * abs(value)), None)


class _WithoutDerivative:
    """An activation whose backward passes ∂L/∂a through unchanged: f'(z) forgotten."""

    def __init__(self, activation):
        self.activation = activation

    def forward(self, z):
        return self.activation.forward(z)

    def backward(self, da):
        return da


class _StatisticsAsConstants:
    """A norm whose backward treats its mean and variance as constants: dx = dz ⊙ γ·r, the paths through them
    dropped (a batch norm in training, a layer norm or group norm)."""

    def __init__(self, layer):
        object.__setattr__(self, "layer", layer)

    def backward(self, dz):
        from reference.layers import GroupNorm, LayerNorm
        layer = self.layer
        layer.backward(dz)                               # the parameter gradients, unchanged
        per_feature = (-1,) if isinstance(layer, LayerNorm) else (1, -1) + (1,) * (dz.ndim - 2)
        g = dz * layer.weight.reshape(per_feature)       # ∂L/∂x̂
        if isinstance(layer, GroupNorm):                 # its r is per (sample, group): the grouped view carries it
            return (layer.grouped(g)[0] * layer.r).reshape(dz.shape)
        return g * layer.r

    def __getattr__(self, name):
        return getattr(self.layer, name)

    def __setattr__(self, name, value):
        setattr(self.layer, name, value)


class _WithoutCellStatePath:
    """An LSTM whose backward through time carries no gradient through the cell state: each step's dc starts from
    what its own h sends, dc_{t−1} = dc_t ⊙ f dropped."""

    def __init__(self, layer):
        object.__setattr__(self, "layer", layer)

    def backward(self, dz):
        layer, step_backward = self.layer, type(self.layer).step_backward

        def forgetful(dh, dc, cache):
            return step_backward(layer, dh, None, cache)[:3] + (None,)

        layer.step_backward = forgetful                  # this one object's, for one call
        try:
            return layer.backward(dz)
        finally:
            del layer.step_backward

    def __getattr__(self, name):
        return getattr(self.layer, name)

    def __setattr__(self, name, value):
        setattr(self.layer, name, value)


def counterfactuals(scenario):
    """[(layer, text, {parameter: gradient, "inputs": ∂L/∂x})]: the reference's gradients with one classic mistake made,
    one at a time:
    a layer's activation derivative forgotten, a norm's backward without the paths through its statistics, an LSTM's
    backpropagation through time without the cell-state path."""
    from reference.network import Model, gradients
    mistakes = []
    for k, spec in enumerate(scenario.layers):
        if spec.activation not in ("identity", "softmax"):
            mistakes.append((k, "activations", _WithoutDerivative,
                             f"it is what the gradient would be with layer {k}'s activation derivative forgotten: "
                             f"∂L/∂z{k} = ∂L/∂a{k} ⊙ {spec.activation}'(z{k}), the ⊙ f' missing"))
        if spec.type in ("layer_norm", "group_norm") or (spec.type.startswith("batch_norm") and spec.hyper["training"]):
            mistakes.append((k, "layers", _StatisticsAsConstants,
                             f"it is what the gradient would be with layer {k}'s {spec.type} backward missing the paths "
                             f"through its mean and variance (dx = dz·γ/σ): every x moves the statistics it is "
                             f"normalised by"))
        if spec.type == "lstm":
            mistakes.append((k, "layers", _WithoutCellStatePath,
                             f"it is what the gradient would be with layer {k}'s backpropagation through time missing "
                             f"the cell-state path: dc_(t−1) = dc_t ⊙ f, which carries the gradient to the earlier "
                             f"steps beside h"))
    found = []
    for k, part, wrapper, text in mistakes:
        model = Model(scenario)
        getattr(model, part)[k] = wrapper(getattr(model, part)[k])
        values = gradients(model, np.array(scenario.inputs), scenario.targets, scenario.criterion)
        found.append((k, text, {**values.grads, "inputs": values.input_grad}))
    return found


def diagnose(yours, truth, scenario, wrong):
    """[Diagnosis] for the parameters in ``wrong`` (names whose gradient failed), each only when its evidence is
    clear. yours, truth: {parameter: array} in the canonical layout."""
    found, counterfactual = [], None
    rows = scenario.inputs.shape[0]
    for name in wrong:
        mine, true = np.asarray(yours[name], np.float64), np.asarray(truth[name], np.float64)
        if mine.shape != true.shape or _close(mine, true, scenario.dtype):
            continue                        # nothing to diagnose: a right gradient (a symmetric one is its transpose)
        r = constant_ratio(mine, true, scenario.dtype)
        cause = None if r is None else ratio_cause(r, rows)
        clear = int(np.count_nonzero(np.abs(true) > 1e3 * TOLERANCES[scenario.dtype]["step"][0]))
        if r is not None and (cause or clear >= 2):     # one number is a ratio of any other: only a named one then
            found.append(Diagnosis(name, "ratio", f"every element is {r:.6g} × the true gradient"
                                   + (f": {cause}" if cause else "")))
            continue
        if mine.ndim == 2 and mine.shape[0] == mine.shape[1] and _close(mine, true.T, scenario.dtype):
            found.append(Diagnosis(name, "transpose", "it is the true gradient transposed: dW is dZᵀ·X, (out, in), "
                                                      "not Xᵀ·dZ"))
            continue
        for other, value in truth.items():
            if other != name and _close(mine, np.asarray(value, np.float64), scenario.dtype):
                found.append(Diagnosis(name, "other-parameter", f"it is the true gradient of {other}: the two are "
                                                                "swapped or mislabelled"))
                break
        else:
            if counterfactual is None:
                counterfactual = counterfactuals(scenario) if scenario.parameters() else []
            for _, text, grads in counterfactual:
                if name in grads and _close(mine, np.asarray(grads[name], np.float64), scenario.dtype):
                    found.append(Diagnosis(name, "missing-term", text))
                    break
    return found
