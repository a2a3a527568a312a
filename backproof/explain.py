"""The chain rule worked with numbers, for one parameter: every path from it to the loss.

A weight W_L[j, i] enters the loss only through z_L[j] (for each row r), and from
unit j of layer L the loss is reached along every chain of units j → k → … → the
output unit. The gradient is the sum over rows and over those paths of the
product of the local derivatives met on the way, written the way post 002 does:

    ∂E/∂out_n9 · ∂out_n9/∂net_n9 · ∂net_n9/∂out_n6 · ∂out_n6/∂net_n6 · ∂net_n6/∂w7

(∂net_n9/∂out_n6 is the weight between the two units, ∂out/∂net the activation's
derivative, ∂net_n6/∂w7 the input the weight multiplies.) When there are more
than ``max_paths`` products, the layer-wise δ recursion is shown instead:
δ_last = ∂E/∂a ⊙ f'(z), δ_l = (δ_{l+1}·W_{l+1}) ⊙ f'(z_l), ∂E/∂W_L[j,i] = Σ_r δ_L[r,j]·a_{L-1}[r,i].

Every number comes from the NumPy reference's forward pass and its local
derivatives; the sum is then set beside torch, JAX, the reference's backward
pass and a finite difference.

A softmax layer on the way makes the paths dependent: each of its outputs depends
on every unit of its row (∂a_j/∂z_k = a_j·(δ_jk − a_k) is not diagonal), so one
chain of units is not one product. Then the δ recursion is shown, with softmax's
Jacobian written out for row 0 and applied as δ = a ⊙ (g − Σ g ⊙ a).
"""

import itertools
import os
from collections.abc import Iterable
import math
from dataclasses import dataclass, field

import numpy as np

import reference
from reference import Scenario
from reference import gradcheck
from reference.activations import softmax_backward
from reference.layers import Activation
from reference.losses import LOSSES
from reference.network import loss_of

from .frameworks import FD, as_frameworks, run_each
from .names import PARAMETER_RE, check_index, format_element, parse_element
from .scenario_file import ScenarioError, as_scenario

MAX_GROUPED = 100_000     # rows × chains computed one by one for the grouped view; past it, the δ recursion
MAX_PATHS = 64


class ExplainError(ValueError):
    """A parameter that cannot be explained; str() is one line (exit code 2)."""


@dataclass
class Factor:
    """One local derivative on a path.

    kind: "loss" ∂E/∂a_last[r,unit]; "activation" ∂a_l/∂z_l at [r,unit];
    "weight" ∂z_l[unit]/∂a_{l-1}[source] = W_l[unit, source];
    "input" ∂z_L[unit]/∂W_L[unit, source] = a_{L-1}[r, source] (x when L = 0); "bias" ∂z_L/∂b_L = 1.
    """

    kind: str
    layer: int
    row: int
    unit: int
    source: "int | None"
    symbol: str
    value: float
    equals: str = ""            # what the factor is, e.g. "w16" or "out_n6"



@dataclass
class Path:
    row: int
    units: list                 # [(layer, unit)] from the parameter's unit to the output unit
    names: list                 # the same, named
    factors: list
    product: float



class PathGroup:
    """One chain of units, its product in every row, and their sum: the rows' paths of one chain, grouped."""

    def __init__(self, units, names, products):
        self.units, self.names = units, names
        self.products = products                    # one per row
        self.total = float(sum(products))


@dataclass
class Explanation:
    scenario: object
    parameter: str              # canonical element, e.g. layers.0.weight[0,0]
    tensor: str
    index: tuple
    symbol: str                 # the alias when there is one
    total: float                # the sum over paths (or the δ recursion's result)
    path_count: int
    paths: list = field(default_factory=list)        # empty when the δ recursion is shown instead
    recursion: list = field(default_factory=list)    # [(label, array)] when there are too many paths
    oracles: dict = field(default_factory=dict)      # name -> value
    skipped: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)       # framework -> why its autodiff value is missing
    value: float = 0.0
    updated: float = 0.0
    errata: list = field(default_factory=list)       # [{"id", "text", "path", "product", "missing"}]
    max_paths: int = MAX_PATHS
    softmax_layers: list = field(default_factory=list)   # layers on the way whose softmax couples the paths
    groups: list = field(default_factory=list)       # [PathGroup]: each chain of units summed over the rows, when
                                                     # the rows' paths are too many to list and a row's are not


    def __str__(self):
        from .render import explain_text
        return explain_text(self)


class _Names:
    """The source's names for units and parameters when the scenario has them, canonical ones otherwise."""

    def __init__(self, scenario):
        self.node_names = scenario.node_names
        self.aliases = {}
        for alias, target in scenario.aliases.items():
            base, index = parse_element(target)
            if PARAMETER_RE.match(base) and index is not None:
                self.aliases.setdefault(format_element(base, index), alias)

    def unit(self, layer, unit):
        """'n6' or 'layer 1 unit 2' (layer -1 is the input)."""
        key = f"inputs.{unit}" if layer < 0 else f"layers.{layer}.{unit}"
        if key in self.node_names:
            return self.node_names[key]
        return f"x[{unit}]" if layer < 0 else f"layer {layer} unit {unit}"

    def out(self, layer, unit):
        """The unit's output: 'out_n6' or 'a1[2]'; an input is 'x1' or 'x[0]'."""
        if layer < 0:
            return self.node_names.get(f"inputs.{unit}") or f"x[{unit}]"
        key = f"layers.{layer}.{unit}"
        return f"out_{self.node_names[key]}" if key in self.node_names else f"a{layer}[{unit}]"

    def net(self, layer, unit):
        """The unit's pre-activation: 'net_n6' or 'z1[2]'."""
        key = f"layers.{layer}.{unit}"
        return f"net_{self.node_names[key]}" if key in self.node_names else f"z{layer}[{unit}]"

    def parameter(self, tensor, index):
        element = format_element(tensor, index)
        return self.aliases.get(element, element)


def resolve_parameter(scenario, text):
    """An alias ('w1') or a canonical element ('layers.0.weight[0,0]') -> (tensor, index)."""
    try:
        base, index = parse_element(text)
    except ValueError as exc:
        raise ExplainError(f"{scenario.name}: {exc}") from None
    if base.startswith("grad."):
        base = base[len("grad."):]
    if base in scenario.aliases and index is None:
        base, index = parse_element(scenario.aliases[base])
    params = scenario.parameters()
    if base not in params:
        known = ", ".join(list(params) + sorted(scenario.aliases))
        raise ExplainError(f"{scenario.name}: {text!r} is not a parameter (give one element of: {known})")
    if not PARAMETER_RE.match(base) or scenario.layers[int(base.split('.')[1])].type == "embedding":
        kind = scenario.layers[int(base.split('.')[1])].type
        raise ExplainError(f"{scenario.name}: {text!r} is a parameter inside {'an' if kind[0] in 'aeiou' else 'a'} "
                           f"{kind}; explain derives the δ recursion for the "
                           f"weight and bias of a linear, conv or norm layer (check compares this one's gradient in "
                           f"every framework)")
    if index is None:
        if params[base].size != 1:
            raise ExplainError(f"{scenario.name}: {text!r} names a whole {params[base].shape} tensor; "
                               f"give one element, e.g. {format_element(base, (0,) * params[base].ndim)}")
        index = (0,) * params[base].ndim
    try:
        check_index(index, params[base].shape)
    except ValueError as exc:
        raise ExplainError(f"{scenario.name}: {text}: {exc}") from None
    return base, tuple(index)


def explain(scenario: "Scenario | str | os.PathLike[str]", parameter: str,
            frameworks: "Iterable[str] | str" = ("torch", "jax"), max_paths: int = MAX_PATHS) -> "Explanation":
    """The worked chain rule for one parameter element of ``scenario`` (a Scenario, a built-in name
    or a path) -> Explanation."""
    try:
        scenario = as_scenario(scenario)
    except ScenarioError as exc:
        raise ExplainError(str(exc)) from None
    tensor, index = resolve_parameter(scenario, parameter)
    layer, kind = int(PARAMETER_RE.match(tensor).group("layer")), PARAMETER_RE.match(tensor).group("kind")
    unit, source = index[0], (index[1] if kind == "weight" and len(index) > 1 else None)   # a norm's weight: (D,)
    names = _Names(scenario)
    last = len(scenario.layers) - 1

    trace = reference.run_step(scenario)
    z = [trace[f"layers.{i}.z"] for i in range(last + 1)]
    a = [trace[f"layers.{i}.a"] for i in range(last + 1)]
    inputs = np.asarray(scenario.inputs)
    slope = [None if spec.activation == "softmax" else                                    # f'(z_i), (n, out_i)
             Activation(spec.activation, spec.negative_slope).derivative(z[i]) for i, spec in enumerate(scenario.layers)]
    d_output = LOSSES[scenario.loss][1](a[last], scenario.targets, **scenario.criterion.options())  # ∂E/∂a_last
    coupled = [i for i in range(layer, last + 1) if scenario.layers[i].activation == "softmax"]

    def backward(i, g):
        """∂E/∂z_i from ∂E/∂a_i = g: f'(z_i) ⊙ g, or softmax's Jacobian applied, a ⊙ (g − Σ g ⊙ a)."""
        return softmax_backward(a[i], g) if slope[i] is None else g * slope[i]

    def local(i):
        """The label of layer i's local step in the recursion."""
        return f"J{i}ᵀ·" if slope[i] is None else ""
    rows = inputs.shape[0]
    if scenario.typed:
        widths = [math.prod(shape) for shape in scenario.layer_shapes()]
        path_count = rows * math.prod(widths[layer + 1:])
        recursion, total = _typed_recursion(scenario, layer, kind, index, inputs, a, d_output, backward)
        return _finish(scenario, tensor, index, names, total, path_count, [], recursion, trace, max_paths, coupled,
                       frameworks, None)
    widths = [spec.shape[0] for spec in scenario.layers]
    path_count = rows * math.prod(widths[layer + 1:])      # exact: Python ints never wrap

    feed = inputs if layer == 0 else a[layer - 1]            # what layer L multiplies, (n, in_L)
    feed_name = f"a{layer - 1}" if layer else "x"

    def below(row):
        """∂z_L[unit]/∂p: the input the weight multiplies, or 1 for a bias."""
        symbol = f"∂{names.net(layer, unit)}/∂{names.parameter(tensor, index)}"
        if kind == "bias":
            return Factor("bias", layer, row, unit, None, symbol, 1.0)
        return Factor("input", layer, row, unit, source, symbol, float(feed[row, source]), names.out(layer - 1, source))

    def path(row, units):
        """The factors along units [(layer, unit), …] (the parameter's unit first) for one row."""
        top_layer, top_unit = units[-1]
        factors = [Factor("loss", top_layer, row, top_unit, None,
                          f"∂E/∂{names.out(top_layer, top_unit)}", float(d_output[row, top_unit]))]
        for (upper, u), (_, v) in zip(reversed(units[1:]), reversed(units[:-1])):
            factors.append(_activation_factor(names, upper, row, u, slope))
            factors.append(Factor("weight", upper, row, u, v,
                                  f"∂{names.net(upper, u)}/∂{names.out(upper - 1, v)}",
                                  float(scenario.layers[upper].weight[u, v]),
                                  names.parameter(f"layers.{upper}.weight", (u, v))))
        factors.append(_activation_factor(names, layer, row, unit, slope))
        factors.append(below(row))
        return Path(row, units, [names.unit(*u) for u in units], factors, float(np.prod([f.value for f in factors])))

    paths, recursion, groups = [], [], []
    chains = path_count // rows
    if path_count > max_paths and rows > 1 and chains <= max_paths and path_count <= MAX_GROUPED and not coupled:
        for chain in itertools.product(*[range(w) for w in widths[layer + 1:]]):
            units = [(layer, unit)] + [(layer + 1 + k, u) for k, u in enumerate(chain)]
            groups.append(PathGroup(units, [names.unit(*u) for u in units],
                                    [path(row, units).product for row in range(rows)]))
        total = float(sum(g.total for g in groups))
    elif path_count <= max_paths and not coupled:
        for row in range(rows):
            for chain in itertools.product(*[range(w) for w in widths[layer + 1:]]):
                paths.append(path(row, [(layer, unit)] + [(layer + 1 + k, u) for k, u in enumerate(chain)]))
        total = float(sum(p.product for p in paths))
    else:
        for i in coupled:           # the Jacobian of each softmax on the way, row 0
            recursion.append((f"J{i} = ∂a{i}/∂z{i} (row 0) = diag(a{i}) − a{i}·a{i}ᵀ",
                              np.diag(a[i][0]) - np.outer(a[i][0], a[i][0])))
        def step(i, g):
            wrapped = f"({g})" if "·" in g else g
            return f"{local(i)}({g})" if slope[i] is None else f"{wrapped} ⊙ f'(z{i})"
        delta = backward(last, d_output)
        recursion.append((f"δ{last} = {step(last, f'∂E/∂a{last}')}", delta))
        for i in range(last - 1, layer - 1, -1):
            delta = backward(i, delta @ scenario.layers[i + 1].weight)
            recursion.append((f"δ{i} = {step(i, f'δ{i + 1}·W{i + 1}')}", delta))
        column = delta[:, unit]
        if kind == "bias":
            total = float(np.sum(column))
            recursion.append((f"∂E/∂b{layer}[{unit}] = Σ_rows δ{layer}[:, {unit}]", np.asarray(total)))
        else:
            recursion.append((f"{feed_name}[:, {source}]", feed[:, source]))
            total = float(np.sum(column * feed[:, source]))
            recursion.append((f"∂E/∂W{layer}[{unit},{source}] = Σ_rows δ{layer}[:, {unit}]·{feed_name}[:, {source}]",
                              np.asarray(total)))

    result = _finish(scenario, tensor, index, names, total, path_count, paths, recursion, trace, max_paths, coupled,
                     frameworks, path)
    result.groups = groups
    return result


def _typed_recursion(scenario, layer, kind, index, inputs, a, d_output, backward):
    """The δ recursion of a network of typed layers, each step the reference's own backward of the layer above:
    δ_i = f'(z_i) ⊙ backward_{i+1}(δ_{i+1}); then the parameter's gradient from δ_L. For a conv weight W[o, c, i, j]
    that is Σ over rows and output positions of δ_L[:, o, h, w]·x[:, c, h·s + i·d, w·s + j·d] (the input each
    position's window put under that weight); for a bias, Σ δ_L[:, o, …] over rows and positions."""
    from reference.layers import build
    last = len(scenario.layers) - 1
    feeds = [inputs] + a[:-1]
    delta = backward(last, d_output)
    recursion = [(f"δ{last} = ∂E/∂a{last} ⊙ f'(z{last})", delta)]
    for i in range(last - 1, layer - 1, -1):
        upper = build(scenario.layers[i + 1])
        upper.forward(np.array(feeds[i + 1]))
        delta = backward(i, upper.backward(delta))
        recursion.append((f"δ{i} = backward of layer {i + 1} ({scenario.layers[i + 1].type}) applied to δ{i + 1}, "
                          f"⊙ f'(z{i})", delta))
    spec, unit = scenario.layers[layer], index[0]
    # (n,) or (n, oH, oW) or (n, oL); a norm's feature is the last axis
    sequence = spec.type == "linear" and delta.ndim == 3          # a linear layer at every step of a sequence
    column = delta[..., unit] if spec.type == "layer_norm" or sequence else delta[:, unit]
    if kind == "bias":
        total = float(np.sum(column))
        recursion.append((f"∂E/∂b{layer}[{unit}] = Σ over rows{' and positions' if column.ndim > 1 else ''} of "
                          f"δ{layer}[:, {unit}]", np.asarray(total)))
        return recursion, total
    feed = np.asarray(feeds[layer])
    if spec.type == "linear":
        under = feed[..., index[1]]
        label = f"a{layer - 1}[:, {index[1]}]" if layer else f"x[:, {index[1]}]"
    elif spec.type in ("layer_norm", "batch_norm1d", "batch_norm2d", "group_norm"):
        norm = build(spec)
        norm.forward(feed)                                  # γ multiplies the normalised input x̂
        if spec.type == "layer_norm":
            under = norm.x_hat[..., unit]
            label = f"x̂{layer}[…, {unit}], layer {layer}'s input normalised over its last axis"
        else:
            under = norm.x_hat[:, unit]
            how = ("its group's statistics" if spec.type == "group_norm" else
                   f"the {'batch' if spec.hyper['training'] else 'running'} statistics")
            label = f"x̂{layer}[:, {unit}], channel {unit} of layer {layer}'s input normalised by {how}"
    else:
        conv = build(spec)
        x_pad = np.pad(feed if feed.ndim == 4 else feed[:, :, None, :], ((0, 0), (0, 0)) + conv.pads)
        windows = conv.windows(x_pad)                        # (n, groups, C/groups, oH, oW, kH, kW)
        group = unit // (spec.weight.shape[0] // conv.groups)
        offset = index[2:] if spec.type == "conv2d" else (0, index[2])
        under = windows[:, group, index[1], :, :, offset[0], offset[1]]
        under = under if spec.type == "conv2d" else under[:, 0, :]
        label = f"the input under W{layer}[{','.join(map(str, index))}] at each output position"
    recursion.append((label, under))
    total = float(np.sum(column * under))
    recursion.append((f"∂E/∂W{layer}[{','.join(map(str, index))}] = Σ over rows"
                      f"{' and positions' if column.ndim > 1 else ''} of δ{layer}[:, {unit}]·(that input)",
                      np.asarray(total)))
    return recursion, total


def _finish(scenario, tensor, index, names, total, path_count, paths, recursion, trace, max_paths, coupled,
            frameworks, path):
    """The Explanation with every oracle: the hand-derived backward pass, the other frameworks, finite differences."""
    value = float(scenario.parameters()[tensor][index])
    result = Explanation(scenario, format_element(tensor, index), tensor, index, names.parameter(tensor, index),
                         total, path_count, paths, recursion, value=value,
                         updated=float(trace[f"updated.{tensor}"][index]), max_paths=max_paths, softmax_layers=coupled)
    result.oracles["numpy"] = float(trace[f"grad.{tensor}"][index])     # the hand-derived backward pass
    others = [fw for fw in as_frameworks(frameworks) if fw != "numpy"]
    runs = run_each(lambda name, module: module.run_step(scenario)[f"grad.{tensor}"][index], others)
    result.skipped = runs.skipped
    result.errors = runs.errors
    for framework, value in runs.results.items():
        result.oracles[framework] = float(value)
    exact = scenario.with_dtype("float64")
    params = {k: np.array(v, np.float64) for k, v in exact.parameters().items()}
    result.oracles[FD] = float(gradcheck.coordinate_differences(loss_of(exact), params, [(tensor, index)])[0])
    result.errata = _path_errata(scenario, names, result, path) if path is not None else []
    return result


def _activation_factor(names, layer, row, unit, slope):
    return Factor("activation", layer, row, unit, None,
                  f"∂{names.out(layer, unit)}/∂{names.net(layer, unit)}", float(slope[layer][row, unit]))


def _path_errata(scenario, names, result, path):
    """Errata whose source derived this parameter's gradient along one path only: that path's product."""
    found = []
    by_name = {names.unit(i, u): (i, u) for i, spec in enumerate(scenario.layers) for u in range(spec.shape[0])}
    for erratum in scenario.errata:
        if "parameter" not in erratum or "path" not in erratum:
            continue
        if resolve_parameter(scenario, erratum["parameter"]) != (result.tensor, result.index):
            continue
        units = [by_name.get(name) for name in erratum["path"]]
        layer, unit = int(PARAMETER_RE.match(result.tensor).group("layer")), result.index[0]
        valid = (None not in units and units[0] == (layer, unit) and len(units) == len(scenario.layers) - layer
                 and all(i == layer + k for k, (i, _) in enumerate(units)))
        if not valid:
            raise ExplainError(f"{scenario.name}: errata {erratum['id']}: path {erratum['path']} is not a path "
                               f"from {result.symbol} to the loss")
        product = float(sum(path(row, units).product for row in range(scenario.inputs.shape[0])))
        others = [" → ".join(p.names) for p in result.paths if p.names != list(erratum["path"])]
        found.append({"id": erratum["id"], "text": erratum["text"], "path": list(erratum["path"]),
                      "product": product, "missing": others})
    return found
