"""Canonical tensor names, their order and shapes, and element references.

The order is the order in which a value is computed: forward pass, loss,
backward pass from the last layer down, the optimizer's state, then the update. The *first*
tensor in this order that disagrees is where a bug entered.
"""

import re

ELEMENT_RE = re.compile(r"^(?P<base>[^\[\]]+)(\[(?P<index>[0-9,\s]+)\])?$")
PARAMETER_RE = re.compile(r"^layers\.(?P<layer>\d+)\.(?P<kind>weight|bias)$")


def tensor_shapes(scenario):
    """Every canonical trace name of ``scenario`` -> its shape, in canonical order."""
    n = scenario.inputs.shape[0]
    params = {name: value.shape for name, value in scenario.parameters().items()}
    outputs = [(n,) + shape for shape in scenario.layer_shapes()]
    count = len(scenario.layers)
    shapes = {}
    for i, shape in enumerate(outputs):
        shapes[f"layers.{i}.z"] = shape
        shapes[f"layers.{i}.a"] = shape
    shapes["output"] = outputs[-1]
    shapes["loss"] = ()
    for i in reversed(range(count)):
        shapes[f"layers.{i}.dz"] = outputs[i]
    for i in reversed(range(count)):
        for kind in scenario.layers[i].parameters():        # weight, bias; self_attn.in_proj_weight …
            shapes[f"grad.layers.{i}.{kind}"] = params[f"layers.{i}.{kind}"]
    if not scenario.indexed:                                # an embedding's indices have no gradient
        shapes["grad.inputs"] = scenario.inputs.shape
    shapes.update(state_shapes(scenario))
    for name, shape in params.items():
        shapes[f"updated.{name}"] = shape
    for name, value in scenario.buffers().items():
        shapes[f"updated.{name}"] = value.shape
    return shapes


def state_shapes(scenario, prefix="state."):
    """``state.{parameter}.{buffer}`` -> the parameter's shape, for each buffer the optimizer keeps."""
    return {f"{prefix}{name}.{buffer}": value.shape for name, value in scenario.parameters().items()
            for buffer in scenario.optimizer.buffers()}


def locate(scenario, tensor, index):
    """What an element of a sequence network's tensor is, in words, or "": '(row 1, step 3, unit 2)' for an activation
    (n, T, H) or the input's gradient, '(forget gate f, unit 1)' for a row of a recurrent weight or bias."""
    from reference.registry import LAYER_TYPES
    if not scenario.sequence or index is None or not index:
        return ""
    match = re.match(r"^(?:grad\.|updated\.|state\.)?layers\.(\d+)\.(.+)$", tensor)
    if tensor == "grad.inputs" or (match and match.group(2) in ("z", "a", "dz")):
        return f"(row {index[0]}, step {index[1]}, {'feature' if tensor == 'grad.inputs' else 'unit'} {index[2]})" \
            if len(index) == 3 else ""
    if match is None:
        return ""
    spec = scenario.layers[int(match.group(1))]
    gates = LAYER_TYPES[spec.type].gates             # a parameter, or its optimizer state: "weight_ih_l0.exp_avg"
    if not gates or match.group(2).split(".")[0] not in spec.parameters():
        return ""
    hidden = spec.parameter("weight_hh_l0").shape[1]
    return f"({gates[index[0] // hidden]}, unit {index[0] % hidden})"


def network_shape(scenario):
    """'2-3-3-1': the input width, then each layer's width; '1x8x8-4x8x8-…-3' for a network of typed layers."""
    shapes = [scenario.inputs.shape[1:]] + scenario.layer_shapes()
    return "-".join("x".join(str(n) for n in shape) for shape in shapes)


def stage(name):
    """The pass a tensor belongs to, for messages: forward, loss, backward or update."""
    if name.startswith(("updated.", "state.")):
        return "update"
    if name.startswith("grad.") or name.endswith(".dz"):
        return "backward"
    if name == "loss":
        return "loss"
    return "forward"


def parse_element(text):
    """'grad.w17' -> ('grad.w17', None); 'layers.0.a[0,2]' -> ('layers.0.a', (0, 2)).

    Raises ValueError for a malformed index.
    """
    match = ELEMENT_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not NAME or NAME[i,j]")
    index = match.group("index")
    if index is None:
        return match.group("base"), None
    parts = [p.strip() for p in index.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} has a malformed index")
    return match.group("base"), tuple(int(p) for p in parts)


def format_element(name, index):
    return name if index is None else f"{name}[{','.join(str(i) for i in index)}]"


def check_index(index, shape):
    """Raise ValueError unless ``index`` picks one element of an array of ``shape``."""
    if len(index) != len(shape):
        raise ValueError(f"index [{','.join(map(str, index))}] has {len(index)} dimension(s) but the tensor has shape {tuple(shape)}")
    for i, size in zip(index, shape):
        if i >= size:
            raise ValueError(f"index [{','.join(map(str, index))}] is out of range for shape {tuple(shape)}")


def resolve(key, scenario_shapes, parameter_shapes, aliases):
    """Resolve an ``expected`` key to (tensor, index).

    tensor is a canonical trace name, or a parameter name such as
    ``layers.0.weight`` for the initial value. index is None or a tuple.
    The prefixes ``grad.`` and ``updated.`` apply to parameters and aliases.
    Raises ValueError with a reason.
    """
    base, index = parse_element(key)
    prefix = ""
    for candidate in ("grad.", "updated."):
        if base.startswith(candidate) and base not in scenario_shapes:
            prefix, base = candidate, base[len(candidate):]
            break
    if prefix == "" and base in scenario_shapes:
        tensor, shape = base, scenario_shapes[base]
    elif base in aliases:
        target, alias_index = parse_element(aliases[base])
        if index is not None:
            raise ValueError(f"alias {base!r} already names one element; it takes no index")
        tensor, index = prefix + target, alias_index
        shape = parameter_shapes[target]
    elif base in parameter_shapes:
        tensor, shape = prefix + base, parameter_shapes[base]
    else:
        raise ValueError(f"{key!r} is neither a canonical tensor name nor an alias")
    if index is not None:
        check_index(index, shape)
    return tensor, index
