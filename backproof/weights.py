"""Weights in and out: a scenario's weights as files real libraries load, and files or torch models as scenarios.

Formats (every one read without pickle):

    torch        a state_dict (.pt) whose keys fit ``torch_sequential(scenario)``, an nn.Sequential of
                 nn.Linear and activation modules: ``0.weight``, ``0.bias``, ``2.weight`` …; saved with
                 torch.save, read with torch.load(weights_only=True)
    safetensors  canonical names (``layers.0.weight``, (out, in)), the activations in its metadata
    npz          canonical names, plus ``activations`` and ``negative_slopes`` arrays; np.load(allow_pickle=False)
    flax         (.msgpack) linen Dense params, ``{"params": {"Dense_0": {"kernel": (in, out), "bias"}, …}}`` as
                 flax.serialization writes them, the activations beside them under ``backproof``

``export`` writes one of them; ``read_weights`` reads one back as (layers, dtype); ``from_torch_module``
turns an nn.Sequential (or a module whose children are nn.Linear and supported activations) into layers.
``scenario_document`` puts layers, data, loss and optimizer into a scenario file that ``check`` accepts.
Every problem is a ``WeightsError``: one line naming the file and what is wrong.
"""

import json
from pathlib import Path

import numpy as np

FORMATS = ("torch", "safetensors", "npz", "flax")
INSTALL = {"torch": "pip install 'backproof[torch]' -c constraints.txt",
           "safetensors": "pip install 'backproof[safetensors]' -c constraints.txt",
           "flax": "pip install 'backproof[flax]' -c constraints.txt"}


class WeightsError(ValueError):
    """A weights file or model that cannot be used; str() is one line (exit code 2)."""


def _require(library):
    try:
        return __import__(library)
    except ImportError:
        raise WeightsError(f"{library} is not installed: {INSTALL[library]}") from None


def layers_of(scenario):
    """[(weight (out, in), bias or None, activation, negative_slope)] of a Scenario, as NumPy arrays."""
    return [(np.array(s.weight), None if s.bias is None else np.array(s.bias), s.activation, s.negative_slope)
            for s in scenario.layers]


def torch_sequential(layers, dtype="float64"):
    """nn.Sequential of nn.Linear and activation modules for ``layers`` (identity adds no module), as the torch mirror
    builds them (torch_impl.sequential)."""
    _require("torch")
    from types import SimpleNamespace

    import torch_impl
    from reference.scenario import LayerSpec
    specs = [LayerSpec(np.asarray(weight, dtype), None if bias is None else np.asarray(bias, dtype), activation,
                       slope) for weight, bias, activation, slope in layers]
    return torch_impl.sequential(SimpleNamespace(layers=specs, dtype=dtype))[0]


def state_dict_keys(layers):
    """{canonical name: the nn.Sequential key} for ``torch_sequential(layers)``."""
    keys, index = {}, 0
    for i, (_, bias, activation, _) in enumerate(layers):
        keys[f"layers.{i}.weight"] = f"{index}.weight"
        if bias is not None:
            keys[f"layers.{i}.bias"] = f"{index}.bias"
        index += 1 if activation == "identity" else 2
    return keys


def export(scenario, fmt, path):
    """Write the scenario's weights to ``path`` in ``fmt`` (one of FORMATS), in the scenario's dtype: whole or
    not at all."""
    if fmt not in FORMATS:
        raise WeightsError(f"{fmt!r} is not a weights format (known: {', '.join(FORMATS)})")
    _require({"npz": "numpy"}.get(fmt, fmt))
    from .output import replacing
    with replacing(path) as temporary:
        _write(scenario, fmt, temporary)


def typed_sequential(scenario):
    """(the nn.Sequential equivalent to a network of typed layers, {canonical name: its state_dict key}), as the torch
    mirror builds it (torch_impl.sequential)."""
    _require("torch")
    import torch_impl
    return torch_impl.sequential(scenario)


def _write(scenario, fmt, path):
    if scenario.typed:
        return _write_typed(scenario, fmt, path)
    layers = layers_of(scenario)
    canonical = {f"layers.{i}.{kind}": value for i, (weight, bias, _, _) in enumerate(layers)
                 for kind, value in (("weight", weight), ("bias", bias)) if value is not None}
    activations = [activation for _, _, activation, _ in layers]
    slopes = [float(slope) for _, _, _, slope in layers]
    if fmt == "torch":
        import torch
        keys = state_dict_keys(layers)
        torch.save({keys[name]: torch.tensor(value) for name, value in canonical.items()}, path)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file
        save_file({name: np.ascontiguousarray(value) for name, value in canonical.items()}, str(path),
                  metadata={"activations": ",".join(activations), "negative_slopes": json.dumps(slopes),
                            "format": "backproof canonical layout: layers.{i}.weight (out, in), layers.{i}.bias"})
    elif fmt == "npz":
        with open(path, "wb") as handle:      # a file object: np.savez would add ".npz" to a name without it
            np.savez(handle, activations=np.array(activations), negative_slopes=np.array(slopes), **canonical)
    else:
        from flax import serialization
        params = {f"Dense_{i}": {"kernel": np.ascontiguousarray(weight.T), **({} if bias is None else {"bias": bias})}
                  for i, (weight, bias, _, _) in enumerate(layers)}
        with open(path, "wb") as handle:
            handle.write(serialization.msgpack_serialize(
                {"params": params, "backproof": {"activations": ",".join(activations),
                                                 "negative_slopes": json.dumps(slopes)}}))


def layer_metadata(scenario):
    """The layers of a typed network without their arrays (type, hyperparameters, activation, slope), as JSON: what a
    weights file carries beside the tensors so that the network can be rebuilt."""
    def plain(value):
        return [plain(v) for v in value] if isinstance(value, tuple) else value
    return json.dumps([{"type": spec.type, "activation": spec.activation, "negative_slope": spec.negative_slope,
                        **{key: plain(value) for key, value in spec.options}} for spec in scenario.layers])


def flax_names(scenario):
    """{canonical layer index: Flax's module name}: linen's compact naming counts each class, Conv_0, Conv_1, Dense_0."""
    from reference.registry import LAYER_TYPES
    names, counts = {}, {}
    for i, spec in enumerate(scenario.layers):
        if not spec.parameters():
            continue
        kind = LAYER_TYPES[spec.type].flax
        names[i] = f"{kind}_{counts.get(kind, 0)}"
        counts[kind] = counts.get(kind, 0) + 1
    return names


def _write_typed(scenario, fmt, path):
    """A network of typed layers: torch as the state_dict of ``typed_sequential``, safetensors and npz under canonical
    names with the layers as JSON beside them, Flax as linen's {"params": {"Conv_0": {"kernel": HWIO, …}, …}}."""
    canonical = {name: np.ascontiguousarray(value) for name, value in {**scenario.parameters(),
                                                                          **scenario.buffers()}.items()}
    if fmt == "torch":
        import torch
        model, _ = typed_sequential(scenario)
        torch.save(model.state_dict(), path)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file
        save_file(canonical, str(path), metadata={"layers": layer_metadata(scenario),
                                                  "format": "backproof canonical layout, torch's"})
    elif fmt == "npz":
        with open(path, "wb") as handle:
            np.savez(handle, layers=np.array(layer_metadata(scenario)), **canonical)
    else:
        import jax
        from flax import serialization

        from jax_impl import GATES, to_flax, to_flax_cell
        flax = [to_flax_cell(layer, spec.type) if spec.type in GATES else layer      # Flax's cells: one bias a gate
                for layer, spec in zip(to_flax(scenario.layers), scenario.layers)]
        params = {name: jax.tree.map(np.ascontiguousarray, flax[i]) for i, name in flax_names(scenario).items()}
        # a batch norm's running statistics: Flax's batch_stats collection, {"BatchNorm_k": {"mean", "var"}}
        stats = {name: {"mean": np.ascontiguousarray(scenario.layers[i].running_mean),
                        "var": np.ascontiguousarray(scenario.layers[i].running_var)}
                 for i, name in flax_names(scenario).items() if scenario.layers[i].running_mean is not None}
        with open(path, "wb") as handle:
            handle.write(serialization.msgpack_serialize({"params": params, **({"batch_stats": stats} if stats else {}),
                                                         "backproof": {"layers": layer_metadata(scenario)}}))


def parse_activations(text):
    """--activations "relu,leaky_relu:0.1,identity" -> (["relu", "leaky_relu", "identity"], [None, 0.1, None]);
    WeightsError naming the option for an unknown name or a bad slope."""
    from reference.activations import ACTIVATIONS
    names, slopes = [], []
    for item in text.split(","):
        name, _, slope = item.strip().partition(":")
        if name not in ACTIVATIONS:
            raise WeightsError(f"--activations: {name!r} is not an activation (known: {', '.join(ACTIVATIONS)}; "
                               f"leaky_relu takes its slope as leaky_relu:0.1)")
        if slope and name != "leaky_relu":
            raise WeightsError(f"--activations: {item.strip()!r}: only leaky_relu takes a slope")
        try:
            value = float(slope) if slope else None
        except ValueError:
            raise WeightsError(f"--activations: {item.strip()!r}: the slope must be a number") from None
        if value is not None and not np.isfinite(value):
            raise WeightsError(f"--activations: {item.strip()!r}: the slope must be finite")
        names.append(name)
        slopes.append(value)
    return names, slopes


def activations_option(layers):
    """The --activations value that imports ``layers`` back exactly: "relu,leaky_relu:0.1,identity"."""
    return ",".join(f"{activation}:{slope!r}" if activation == "leaky_relu" else activation
                    for _, _, activation, slope in layers)


MAX_WEIGHTS_BYTES = 64 * 2**20     # a scenario holds at most 1,000,000 parameters: 8 MB in float64
MAX_HEADER_BYTES = 2**20           # a safetensors header of a scenario's few tensors is a few kB


def _safetensors_header_within_cap(path):
    """WeightsError before safetensors reads a header or a file larger than any scenario's could be."""
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{path}: is {size:,} bytes, over the cap of {MAX_WEIGHTS_BYTES:,} for a scenario's weights")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) == 8 and int.from_bytes(head, "little") > MAX_HEADER_BYTES:
        raise WeightsError(f"{path}: its safetensors header claims {int.from_bytes(head, 'little'):,} bytes, over the "
                           f"cap of {MAX_HEADER_BYTES:,}")


def read_weights(path, activations=None):
    """(layers, dtype) from a .pt, .safetensors, .npz or .msgpack file; ``activations`` (a list, or the text of
    --activations, where "leaky_relu:0.1" gives a slope) where the file has none, or to override them.

    A state_dict (.pt) carries no activation and no slope: a leaky_relu layer without its slope is refused, never
    given a default that would silently change the network."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    suffix = path.suffix.lower()
    slopes = None
    given_slopes = None
    if isinstance(activations, str):
        activations, given_slopes = parse_activations(activations)
    try:
        if suffix in (".pt", ".pth"):
            torch = _require("torch")
            state = torch.load(path, weights_only=True, map_location="cpu")
            if not isinstance(state, dict):
                raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state_dict")
            arrays = _sequential_to_canonical(path, {k: v.detach().numpy() for k, v in state.items()})
        elif suffix == ".safetensors":
            _require("safetensors")
            _safetensors_header_within_cap(path)
            from safetensors import safe_open
            with safe_open(str(path), framework="numpy") as handle:
                arrays = {key: handle.get_tensor(key) for key in handle.keys()}
                metadata = handle.metadata() or {}
            if activations is None and "activations" in metadata:
                activations = metadata["activations"].split(",")
            if "negative_slopes" in metadata:
                slopes = json.loads(metadata["negative_slopes"])
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: np.array(data[key]) for key in data.files}
            stored = arrays.pop("activations", None)
            stored_slopes = arrays.pop("negative_slopes", None)
            if activations is None and stored is not None:
                activations = [str(a) for a in stored]
            if stored_slopes is not None:
                slopes = [float(s) for s in stored_slopes]
        elif suffix == ".msgpack":
            _require("flax")
            from flax import serialization
            tree = serialization.msgpack_restore(path.read_bytes())
            stored = tree.get("backproof", {})
            if activations is None and "activations" in stored:
                activations = stored["activations"].split(",")
            if "negative_slopes" in stored:
                slopes = json.loads(stored["negative_slopes"])
            arrays = {}
            for i in range(len(tree["params"])):
                dense = tree["params"][f"Dense_{i}"]
                arrays[f"layers.{i}.weight"] = np.ascontiguousarray(np.asarray(dense["kernel"]).T)
                if "bias" in dense:
                    arrays[f"layers.{i}.bias"] = np.asarray(dense["bias"])
        else:
            raise WeightsError(f"{path}: not a weights file this reads (.pt, .safetensors, .npz, .msgpack)")
    except WeightsError:
        raise
    except Exception as exc:                  # a corrupt or foreign file: one line, never a traceback
        raise WeightsError(f"{path}: cannot be read: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    count = len({name.split(".")[1] for name in arrays if name.startswith("layers.")})
    if activations is None:
        raise WeightsError(f"{path}: the file names no activations; give --activations (one per layer, {count} here)")
    if len(activations) != count:
        raise WeightsError(f"{path}: {len(activations)} activations given for {count} layers")
    layers = []
    for i, activation in enumerate(activations):
        if f"layers.{i}.weight" not in arrays:
            raise WeightsError(f"{path}: layers.{i}.weight is missing")
        slope = given_slopes[i] if given_slopes and given_slopes[i] is not None else (
            slopes[i] if slopes and i < len(slopes) else None)
        if activation == "leaky_relu" and slope is None:
            raise WeightsError(f"{path}: layer {i} is leaky_relu, and the file carries no slope (a state_dict "
                               f"never does); give it in --activations, e.g. leaky_relu:0.01")
        layers.append((arrays[f"layers.{i}.weight"], arrays.get(f"layers.{i}.bias"), activation,
                       0.01 if slope is None else float(slope)))
    dtypes = {str(value.dtype) for value in arrays.values()}
    if len(dtypes) != 1 or dtypes - {"float64", "float32"}:
        raise WeightsError(f"{path}: the arrays are {', '.join(sorted(dtypes))}; backproof takes float64 or float32")
    return layers, dtypes.pop()


def _sequential_to_canonical(path, state):
    """nn.Sequential keys (``0.weight``, ``2.bias`` …) -> canonical names, in order."""
    indices = sorted({int(key.split(".")[0]) for key in state if key.split(".")[0].isdigit()})
    if not indices or len(indices) != len({k.split(".")[0] for k in state}):
        raise WeightsError(f"{path}: the keys are not an nn.Sequential's (0.weight, 0.bias, …): "
                           f"{', '.join(sorted(state)[:4])}")
    canonical = {}
    for i, index in enumerate(indices):
        weight = state.get(f"{index}.weight")
        if weight is None or np.ndim(weight) != 2:
            found = ", ".join(sorted(key for key in state if key.split(".")[0] == str(index)))
            raise WeightsError(f"{path}: {found} is not an nn.Linear's; `import` reads a dense nn.Sequential's "
                               f"state_dict: import a conv network from its module with import-torch")
        canonical[f"layers.{i}.weight"] = weight
        if f"{index}.bias" in state:
            canonical[f"layers.{i}.bias"] = state[f"{index}.bias"]
    return canonical


def _layer_modules():
    """torch's layer module class names -> backproof's layer types, from the registry's ``torch`` column."""
    from reference.registry import LAYER_TYPES
    return {layer.torch.split()[0].removeprefix("nn."): name for name, layer in LAYER_TYPES.items()
            if layer.torch.startswith("nn.") and " " not in layer.torch}


SKIPPED_MODULES = ("Identity",)


def _activation_modules():
    """torch's activation module class names -> backproof's activation names, from the torch mirror's ACTIVATIONS."""
    import torch_impl
    found = {}
    for name, module in torch_impl.ACTIVATIONS.items():
        # a variant (gelu_tanh: nn.GELU with approximate="tanh") shares its class: ``_variant`` tells them apart
        found.setdefault(getattr(module, "func", module).__name__, name)
    found.pop("Identity")
    return found


def _argument(node, name, position, default):
    """An fx call's argument by keyword, else at ``position`` (1: the first after the tensor; None: keyword-only),
    else its default."""
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[position] if position is not None and len(node.args) > position else default


def _variant(activation, setting, label, where):
    """The activation an nn.GELU or F.gelu (…) computes with its settings (``setting(name, torch's default)``);
    WeightsError for a setting no activation here computes (a Softplus whose beta or threshold is not torch's)."""
    if activation == "gelu":
        approximate = setting("approximate", "none")
        if approximate not in ("none", "tanh"):
            raise WeightsError(f"{label}: {where} is a GELU with approximate={approximate!r}")
        return "gelu_tanh" if approximate == "tanh" else "gelu"
    if activation == "softplus":
        beta, threshold = setting("beta", 1.0), setting("threshold", 20.0)
        if (beta, threshold) != (1, 20):
            raise WeightsError(f"{label}: {where} is a Softplus with beta={beta}, threshold={threshold}; backproof's "
                               f"softplus is torch's default (beta 1, threshold 20)")
    return activation


def _activation_functions():
    """torch's functional activations (torch.relu, F.leaky_relu, …) -> names: for each activation the mirror has,
    the function of that name in torch.nn.functional and in torch, where there is one."""
    import torch
    import torch.nn.functional as F

    import torch_impl
    found = {}
    for name in torch_impl.ACTIVATIONS:
        for namespace in (F, torch):
            if name != "identity" and callable(getattr(namespace, name, None)):
                found[getattr(namespace, name)] = name
    return found


def _refuse_unsupported(child, layer_type, kind, name, label):
    """WeightsError naming the first setting of the torch module the registry says a scenario cannot hold
    (``torch_requires``: ceil_mode, padding_mode, batch_first, …); a dropout rate counts only in train mode."""
    for attribute, required in layer_type.torch_requires:
        value = getattr(child, attribute, required)
        same = value == required or (isinstance(value, (tuple, list)) and all(v == required for v in value))
        if not same and not (attribute == "dropout" and not child.training):
            raise WeightsError(f"{label}: {name} is a {kind} with {attribute}={value!r}, which backproof does not "
                               f"support (only {attribute}={required!r})")


def _layer_of_module(child, kind, name, label):
    """The scenario layer (a dict, arrays as NumPy) of a torch layer module, read by the registry: its parameters, and
    each hyperparameter the registry declares from the module's attribute of that name; WeightsError for a setting
    the registry says a scenario cannot hold (``torch_requires``: ceil_mode, padding_mode, …)."""
    from reference.registry import LAYER_TYPES
    layer_type = LAYER_TYPES[_layer_modules()[kind]]
    _refuse_unsupported(child, layer_type, kind, name, label)
    if layer_type.weight_rank and getattr(child, "weight", None) is not None and \
            child.weight.ndim != layer_type.weight_rank:
        raise WeightsError(f"{label}: {name} is a {kind} over the last {child.weight.ndim} axes "
                           f"{tuple(child.weight.shape)}; backproof's {layer_type.name} normalises over the last one")
    layer = {"type": layer_type.name}
    for key in layer_type.parameters:
        value = getattr(child, key)
        if key == "weight" or value is not None:
            layer[key] = value.detach().numpy().copy()
        else:
            layer[key] = None
    for key in layer_type.options:
        value = getattr(child, key)
        if key == "momentum" and value is None:
            raise WeightsError(f"{label}: {name} is a {kind} with momentum=None (a cumulative average); backproof "
                               f"takes a number, torch's meaning")
        layer[key] = list(value) if isinstance(value, tuple) else value
    for key in layer_type.buffers:                      # a batch norm's running statistics, as they stand
        layer[key] = getattr(child, key).detach().numpy().copy()
    return layer


def _encoder_of_module(child, name, label):
    """The scenario layer of an nn.TransformerEncoderLayer: its parameters under their state_dict names, its heads,
    norm placement, activation and ε; WeightsError for what the registry's layer cannot hold (batch_first False,
    dropout in train mode, an activation other than relu and gelu)."""
    import torch.nn.functional as F
    from reference.registry import LAYER_TYPES
    if not getattr(child.self_attn, "batch_first", False):
        raise WeightsError(f"{label}: {name} is a TransformerEncoderLayer with batch_first=False; backproof takes "
                           f"batch-first sequences (n, T, E)")
    if child.training and child.dropout.p:
        raise WeightsError(f"{label}: {name} is a TransformerEncoderLayer with dropout {child.dropout.p} in train mode "
                           f"(give dropout=0.0, or call .eval())")
    activation = {F.relu: "relu", F.gelu: "gelu"}.get(child.activation)
    if activation is None:
        raise WeightsError(f"{label}: {name} is a TransformerEncoderLayer with activation {child.activation!r}; "
                           f"backproof's takes relu or gelu")
    if child.norm1.eps != child.norm2.eps:
        raise WeightsError(f"{label}: {name} has norms with different eps ({child.norm1.eps}, {child.norm2.eps})")
    layer = {"type": "transformer_encoder_layer", "nhead": child.self_attn.num_heads, "norm_first": child.norm_first,
             "feedforward_activation": activation, "layer_norm_eps": child.norm1.eps}
    for key in LAYER_TYPES["transformer_encoder_layer"].parameters:
        layer[key] = child.get_parameter(key).detach().numpy().copy()
    return layer


def _attention_of_module(child, node, name, label):
    """The scenario layer of an nn.MultiheadAttention called as self-attention (query, key and value the same tensor,
    no mask), batch_first."""
    from reference.registry import LAYER_TYPES
    _refuse_unsupported(child, LAYER_TYPES["multi_head_attention"], "MultiheadAttention", name, label)
    if len(node.args) < 3 or len({id(arg) for arg in node.args[:3]}) != 1 or any(
            node.kwargs.get(key) is not None for key in ("key_padding_mask", "attn_mask")):
        raise WeightsError(f"{label}: {name} is called with other than query = key = value and no mask; backproof's "
                           f"multi_head_attention is self-attention")
    layer = {"type": "multi_head_attention", "num_heads": child.num_heads,
             "causal": bool(node.kwargs.get("is_causal", False))}
    for key in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
        value = child.get_parameter(key) if child.in_proj_bias is not None or "weight" in key else None
        if value is not None:
            layer[key] = value.detach().numpy().copy()
    return layer


def _recurrent_of_module(child, name, label):
    """The scenario layer of an nn.RNN, nn.LSTM or nn.GRU: batch_first, one layer, one direction (and no projection),
    its four parameters as torch stacks them; WeightsError naming the setting otherwise."""
    import torch
    from reference.registry import LAYER_TYPES
    kind = next(cell for cell in ("RNN", "LSTM", "GRU") if isinstance(child, getattr(torch.nn, cell)))
    layer_type = LAYER_TYPES[kind.lower()]
    _refuse_unsupported(child, layer_type, kind, name, label)
    layer = {"type": kind.lower(), **({"nonlinearity": child.nonlinearity} if kind == "RNN" else {})}
    for key in layer_type.parameters:
        value = getattr(child, key, None)
        if value is not None:
            layer[key] = value.detach().numpy().copy()
    return layer


def _unused(graph):
    """The nodes whose value nothing uses: the parts of a returned tuple a forward unpacks and drops (``out, (h, c) =
    lstm(x)``), found from the output backwards."""
    import operator
    unused = set()
    for node in reversed(list(graph.nodes)):
        if node.op == "call_function" and node.target is operator.getitem and all(user in unused
                                                                                  for user in node.users):
            unused.add(node)
    return unused


def from_torch_module(module, label):
    """(layers, dtype, names) of a torch module as it computes: its forward traced with torch.fx, so functional calls
    (``torch.relu(self.fc1(x))``, ``F.gelu``, ``x.flatten(1)``) are seen, not only the children. layers: the scenario
    file's layer dicts (NumPy arrays); names: for each layer, the graph nodes it was read from (the module's own
    names). Anything that is not a chain of supported layers and activations is refused by name (WeightsError)."""
    torch = _require("torch")
    import torch.fx
    if not isinstance(module, torch.nn.Module):
        raise WeightsError(f"{label}: returned a {type(module).__name__}, not a torch.nn.Module")
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as exc:  # data-dependent control flow, an untraceable call: fx says which
        raise WeightsError(f"{label}: torch.fx cannot trace its forward ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); backproof reads a module as fx traces it") from None
    modules = dict(module.named_modules())
    functions, activation_modules = _activation_functions(), _activation_modules()
    layers, names, current = [], [], None
    layer_modules = _layer_modules()
    supported = ", ".join(list(layer_modules) + ["TransformerEncoderLayer", "MultiheadAttention (self-attention)",
                                                 "RNN", "LSTM", "GRU"]
                          + list(activation_modules) + ["Identity", "Dropout in eval mode"])
    import operator
    attention_output = None                 # an nn.MultiheadAttention's (output, weights), an LSTM's (output, state)
    unused = _unused(graph)

    def attach(activation, slope, node_name, what):
        if not layers:
            raise WeightsError(f"{label}: {node_name} ({what}) comes before any layer")
        if layers[-1].get("activation", "identity") != "identity":
            raise WeightsError(f"{label}: {node_name} ({what}) follows another activation; one per layer")
        layers[-1]["activation"] = activation
        if activation == "leaky_relu":
            layers[-1]["negative_slope"] = float(slope)
        names[-1].append(node_name)

    for node in graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise WeightsError(f"{label}: its forward takes more than one input ({node.name})")
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise WeightsError(f"{label}: its forward does not return the last layer's output")
            break
        if node.op == "get_attr":
            raise WeightsError(f"{label}: {node.target} is a tensor used directly in forward, not a layer")
        inputs = [arg for arg in node.all_input_nodes]
        if node in unused:
            continue                            # ``out, _ = attn(x, x, x)``: the weights, unused
        if attention_output is not None:
            if not (node.op == "call_function" and node.target is operator.getitem and node.args == (current, 0)):
                raise WeightsError(f"{label}: {current.name} ({type(modules[current.target]).__name__}) returns a "
                                   f"tuple; backproof reads its output, [0], and nothing else")
            attention_output, current = None, node
            names[-1].append(node.name)
            continue
        if inputs != [current]:
            raise WeightsError(f"{label}: {node.name} ({node.op} {getattr(node.target, '__name__', node.target)}) "
                               f"takes {', '.join(n.name for n in inputs) or 'no tensor'}, not the output before it: "
                               f"backproof holds a chain of layers (no residual adds, no branches)")
        if node.op == "call_module":
            child = modules[node.target]
            kind = type(child).__name__
            if kind in layer_modules:
                layers.append(_layer_of_module(child, kind, node.target, label))
                names.append([node.target])
            elif isinstance(child, torch.nn.TransformerEncoderLayer):
                layers.append(_encoder_of_module(child, node.target, label))
                names.append([node.target])
            elif isinstance(child, torch.nn.RNNBase):
                layers.append(_recurrent_of_module(child, node.target, label))
                names.append([node.target])
                attention_output = node
            elif isinstance(child, torch.nn.MultiheadAttention):
                layers.append(_attention_of_module(child, node, node.target, label))
                names.append([node.target])
                attention_output = node
            elif kind in activation_modules:
                if kind == "Softmax" and child.dim not in (1, -1):
                    raise WeightsError(f"{label}: {node.target} (Softmax) is over dim {child.dim}; backproof takes dim=1")
                activation = _variant(activation_modules[kind], lambda key, default: getattr(child, key, default),
                                      label, node.target)
                attach(activation, getattr(child, "negative_slope", 0.01), node.target, kind)
            elif kind in SKIPPED_MODULES or (kind.startswith("Dropout") and not child.training):
                pass                                    # the identity (Dropout in eval mode)
            else:
                mode = " in train mode (call .eval())" if kind.startswith("Dropout") else ""
                raise WeightsError(f"{label}: {node.target} is a {kind}{mode}, which backproof does not support "
                                   f"(supported: {supported})")
        elif node.op == "call_function" and node.target in functions:
            activation = functions[node.target]
            if activation == "softmax" and _argument(node, "dim", 1, None) not in (1, -1):
                raise WeightsError(f"{label}: {node.name} (softmax) is not over dim 1")
            slope = _argument(node, "negative_slope", 1, 0.01)
            positions = {"beta": 1, "threshold": 2}             # F.softplus(x, beta, threshold); F.gelu's is keyword
            activation = _variant(activation, lambda key, default: _argument(node, key, positions.get(key), default),
                                  label, node.name)
            attach(activation, slope, node.name, node.target.__name__)
        elif (node.op == "call_method" and node.target == "flatten") or \
                (node.op == "call_function" and node.target is torch.flatten):
            start, end = _argument(node, "start_dim", 1, 0), _argument(node, "end_dim", 2, -1)
            if start != 1 or end != -1:
                raise WeightsError(f"{label}: {node.name} flattens from dim {start} to {end}; backproof flattens "
                                   f"from dim 1 to the end (x.flatten(1))")
            layers.append({"type": "flatten"})
            names.append([node.name])
        elif (node.op == "call_method" and node.target == "mean") or \
                (node.op == "call_function" and node.target is torch.mean):
            if _argument(node, "dim", 1, None) not in (1, (1,), [1]) or _argument(node, "keepdim", 2, False):
                raise WeightsError(f"{label}: {node.name} takes a mean other than over the steps (dim=1); backproof's "
                                   f"sequence_pool averages (n, T, E) over T")
            layers.append({"type": "sequence_pool", "mode": "mean"})
            names.append([node.name])
        elif node.op == "call_function" and node.target is operator.getitem:
            if node.args[1:] != ((slice(None), -1),):
                raise WeightsError(f"{label}: {node.name} indexes with {node.args[1:]}; backproof reads x[:, -1], "
                                   f"the last step")
            layers.append({"type": "sequence_pool", "mode": "last"})
            names.append([node.name])
        elif node.op == "call_method" and node.target in functions.values() and node.target != "softmax":
            attach(node.target, 0.01, node.name, f"x.{node.target}()")
        else:
            what = getattr(node.target, "__name__", str(node.target))
            raise WeightsError(f"{label}: {node.name} calls {what} ({node.op}), which backproof does not support "
                               f"(supported: {supported}, and torch.relu/sigmoid/tanh/flatten, "
                               f"F.leaky_relu/elu/gelu/silu/softplus, "
                               f"F.softmax over dim 1)")
        current = node
    if not any("weight" in layer for layer in layers):
        raise WeightsError(f"{label}: holds no nn.Linear or nn.Conv layer")
    dtypes = {str(value.dtype) for layer in layers for key, value in layer.items()
              if isinstance(value, np.ndarray) and key not in ("running_mean", "running_var")}
    if dtypes - {"float64", "float32"} or len(dtypes) != 1:
        raise WeightsError(f"{label}: the weights are {', '.join(sorted(dtypes))}; backproof takes float64 or float32")
    if all(layer["type"] == "linear" for layer in layers):        # a dense stack: the file format of dense networks
        for layer in layers:
            del layer["type"]
            layer.setdefault("activation", "identity")
    return layers, dtypes.pop(), names


def layer_outputs(module, inputs):
    """The output of every node of the module's fx graph on ``inputs`` (node name -> NumPy array), from torch.fx's
    Interpreter: what the import is proved against."""
    import torch
    import torch.fx
    traced = torch.fx.symbolic_trace(module)
    seen = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            if isinstance(value, torch.Tensor):
                seen[node.target if node.op == "call_module" else node.name] = value.detach().numpy().copy()
            return value

    import warnings
    dtype = next(module.parameters()).dtype
    first = next((module.get_submodule(node.target) for node in traced.graph.nodes if node.op == "call_module"), None)
    if isinstance(first, torch.nn.Embedding):           # its inputs are indices: a LongTensor
        dtype = torch.long
    with torch.no_grad(), warnings.catch_warnings():     # torch's note that padding="same" at an even kernel pads a copy
        warnings.filterwarnings("ignore", message="Using padding='same' with even kernel", category=UserWarning)
        Recorder(traced).run(torch.tensor(inputs, dtype=dtype))
    return seen


def scenario_document(name, layers, dtype, inputs, targets, loss="mse", lr=0.01, source=""):
    """A scenario file's document (JSON-ready) from layers, data, loss and SGD's learning rate."""
    def plain(value):
        return np.asarray(value, dtype=np.float64).tolist()
    first = layers[0] if layers and isinstance(layers[0], dict) else {}
    indices = first.get("type") == "embedding"              # an embedding's inputs stay whole numbers
    document = {"name": name, "description": f"imported: {source}" if source else "imported", "dtype": dtype,
                "layers": [], "loss": loss,
                "inputs": np.asarray(inputs).astype(np.int64).tolist() if indices else plain(inputs),
                "targets": np.asarray(targets).tolist() if np.asarray(targets).ndim == 1 else plain(targets),
                "optimizer": {"name": "sgd", "lr": lr}}
    for entry in layers:
        if isinstance(entry, dict):         # a layer read from a module: arrays as NumPy, the rest as the file has it
            document["layers"].append({key: plain(value) if isinstance(value, np.ndarray) else value
                                       for key, value in entry.items()})
            continue
        weight, bias, activation, slope = entry
        layer = {"weight": plain(weight), "bias": None if bias is None else plain(bias), "activation": activation}
        if activation == "leaky_relu":
            layer["negative_slope"] = float(slope)
        document["layers"].append(layer)
    return document
