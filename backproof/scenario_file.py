"""Scenario files: JSON -> a validated ``reference.Scenario``.

``load(path_or_name)`` reads a file (or a built-in scenario by name) and ``parse(document)``
validates a decoded one. Every problem raises ``ScenarioError``, whose message is one line
naming the file and the JSON path of the field, e.g. ``bad.json: layers[1].weight has 2
columns but layers[0] has 3 outputs``. A key nobody reads is a ``ScenarioWarning`` in one
wording: ``bad.json: layers[0].wieght is not a known layer field and is ignored``. The file
itself is only ever read. The format is documented in docs/scenario-format.md.
"""

import json
import unicodedata
import os
import math
import warnings
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from reference import DTYPES, Optimizer, Scenario
from reference.activations import ACTIVATIONS
from reference.losses import CLASSIFICATION, LOSSES
from reference.registry import BOUNDS, LAYER_TYPES, normalize
from reference.scenario import IGNORE_INDEX
from reference.scenario import OPTIMIZER_DEFAULTS

from .names import PARAMETER_RE, check_index, parse_element, resolve, tensor_shapes

OPTIMIZERS = tuple(OPTIMIZER_DEFAULTS)
PROBABILITY_SUM_ATOL = 1e-6     # a probability row of cross_entropy targets must sum to 1 within this
MAX_PARAMETERS = 1_000_000      # the size cap: weights + biases over all layers
MAX_ROWS = 100_000
# epochs × steps per epoch, and epochs × rows × parameters (the multiply-adds of a run): set from the measured cost of
# the slowest framework so that a run that passes the caps ends within minutes (docs/scenario-format.md)
MAX_STEPS = 500_000
MAX_WORK = 20_000_000_000
MAX_BYTES = 32 * 1024 * 1024    # refused before reading: parsed, 32 MiB of short numbers is ~300 MB of Python floats
MAX_DEPTH = 32                  # JSON nesting deeper than this is refused before it is parsed
FLOAT32_MAX = 3.4028234663852886e38

# the fields each block knows; anything else is warned about by name and ignored
KNOWN = {
    "scenario": {"name", "description", "source", "dtype", "layers", "loss", "inputs", "targets",
                 "optimizer", "aliases", "expected", "train", "node_names", "init", "errata"},
    "layer": {"type", "weight", "bias", "activation", "negative_slope"}
             | {key for layer in LAYER_TYPES.values() for key in (*layer.options, *layer.buffers, *layer.parameters,
                                                                *layer.states)},
    "optimizer": {"name", "lr"} | {key for fields in OPTIMIZER_DEFAULTS.values() for key in fields},
    "loss": {"name", "label_smoothing"},
    "train": {"epochs", "batch_size"},
    "errata": {"id", "text", "parameter", "path"},
    "expected": {"value", "atol", "erratum", "note"},
}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; str() is the one-line message."""


class ScenarioWarning(UserWarning):
    """Something in a scenario file that is ignored, such as an unknown key."""


def builtin_dir():
    return Path(str(resources.files("backproof") / "scenarios"))


def builtin_names() -> "list[str]":
    """Names of the built-in scenarios, sorted."""
    return sorted(p.stem for p in builtin_dir().glob("*.json"))


def as_scenario(value: "Scenario | str | os.PathLike[str]") -> Scenario:
    """A Scenario as it is; a built-in name, a path string or a Path loaded (ScenarioError if it cannot be)."""
    return value if isinstance(value, Scenario) else load(value)


def load(spec: "str | os.PathLike[str]") -> Scenario:
    """A built-in scenario name or a path to a JSON file -> a validated Scenario."""
    spec = str(spec)
    if not spec.strip():
        raise ScenarioError(f"{spec!r}: an empty scenario: give a built-in name or a path to a JSON file")
    if "\0" in spec or any(ord(c) < 32 for c in spec):
        raise ScenarioError(f"{spec!r}: a scenario path cannot hold a control character")
    path = Path(spec)
    if not path.suffix and spec in builtin_names():
        path = builtin_dir() / f"{spec}.json"
    if path.is_dir():
        raise ScenarioError(f"{spec}: is a directory, not a scenario file")
    if not path.exists():
        hint = f" (built-in scenarios: {', '.join(builtin_names())})" if not path.suffix else ""
        raise ScenarioError(f"{spec}: no such file or built-in scenario{hint}")
    return parse(read_document(path, spec), spec)


def read_document(path, label):
    """The decoded JSON of a regular file, refusing before reading what could hang or exhaust memory:
    FIFOs and devices, files over MAX_BYTES, nesting deeper than MAX_DEPTH, duplicate keys."""
    import stat
    try:
        info = path.stat()
    except OSError as exc:
        raise ScenarioError(f"{label}: cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ScenarioError(f"{label}: is not a regular file (a FIFO, a device or a socket); give a JSON file")
    if info.st_size > MAX_BYTES:
        raise ScenarioError(f"{label}: is {info.st_size:,} bytes, over the cap of {MAX_BYTES:,}")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{label}: cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ScenarioError(f"{label}: is over the cap of {MAX_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{label}: cannot be read: not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise ScenarioError(f"{label}: the file is empty")
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise ScenarioError(f"{label}: nests {depth} levels deep, over the limit of {MAX_DEPTH}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_int_or_float)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{label}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _Duplicate as exc:
        raise ScenarioError(f"{label}: the key {exc.args[0]!r} appears twice in one object") from None


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


def _int_or_float(text):
    """JSON integers beyond any float (and beyond Python's int-string limit) become inf, which the
    readers then refuse by field name, instead of crashing the parser."""
    return int(text) if len(text) < 300 else float("inf") if not text.startswith("-") else float("-inf")


def nesting_depth(text):
    """The deepest nesting of [ and { outside strings: a linear scan, no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest





def parse(data: object, label: str = "<scenario>") -> Scenario:
    """A decoded JSON document -> a validated Scenario; ``label`` names it in errors."""
    r = Reader(label)
    r.object(data, "the top level", "a JSON object")
    r.unknown_keys(data, "scenario", "")
    name = r.string(data, "name")
    if not name.strip():
        r.fail("name", "is empty")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        r.fail("name", "holds a control character (it names files and report pages): "
                       f"{name.encode('unicode_escape').decode('ascii')[:80]}")
    dtype = r.string(data, "dtype", required=False, default="float64")
    if dtype not in DTYPES:
        r.fail("dtype", f"must be one of {', '.join(DTYPES)}, not {dtype!r}")
    layers = read_layers(r, data)
    loss, label_smoothing = read_loss(r, data, layers)
    inputs, targets, target_format = read_data(r, data, layers, loss)
    optimizer = read_optimizer(r, data)
    extra = {
        "optimizer": optimizer,
        "label_smoothing": label_smoothing,
        "target_format": target_format,
        "description": r.string(data, "description", required=False),
        "source": r.string(data, "source", required=False),
        "errata": read_errata(r, data),
        "init": read_init(r, data),
        "node_names": read_node_names(r, data),
    }
    scenario = Scenario.build(name, layers, loss, inputs, targets, optimizer.lr, "float64", **extra)
    work = multiply_adds(scenario)
    if len(inputs) * work > MAX_WORK:
        r.fail("inputs", f"take {len(inputs) * work:,} multiply-adds through the layers in one step, over the cap "
                         f"of {MAX_WORK:,}")
    scenario = fit_dtype(replace(scenario, train=read_train(r, data, len(inputs), work)), dtype, label)
    scenario = replace(scenario, aliases=read_aliases(r, data, scenario))
    check_node_names(r, scenario)
    check_errata(r, scenario)
    return replace(scenario, expected=read_expected(r, data, scenario))


def fit_dtype(scenario: Scenario, dtype: str, label: str) -> Scenario:
    """The scenario in ``dtype`` (the file's, or the CLI's --dtype), refusing by field a number that float32
    cannot hold: 1e39 would silently become inf."""
    if dtype == "float32":
        fields = [(f"layers[{i}].{kind}", array) for i, spec in enumerate(scenario.layers)
                  for kind, array in spec.arrays()]
        for field, array in fields + [("inputs", scenario.inputs), ("targets", scenario.targets)]:
            over = np.argwhere(np.abs(array) > FLOAT32_MAX)
            if over.size:
                index = tuple(int(k) for k in over[0])
                raise ScenarioError(f"{label}: {field}{''.join(f'[{k}]' for k in index)} is {array[index]:g}, "
                                    f"beyond float32's largest number {FLOAT32_MAX:.4g}: it would become inf")
    return scenario.with_dtype(dtype)


def check_node_names(r, scenario):
    """node_names keys are inputs.{i} or layers.{i}.{unit} of this network; names are non-empty."""
    widths = [shape[0] if len(shape) == 1 else 0 for shape in scenario.layer_shapes()]
    for key, value in scenario.node_names.items():
        field = f"node_names.{key}"
        parts = key.split(".")
        ok = (len(parts) == 2 and parts[0] == "inputs" and parts[1].isdigit() and scenario.inputs.ndim == 2
              and int(parts[1]) < scenario.inputs.shape[1]) or \
             (len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit() and parts[2].isdigit()
              and int(parts[1]) < len(widths) and int(parts[2]) < widths[int(parts[1])])
        if not ok:
            r.fail(field, "is not a unit of this network (write inputs.I or layers.L.UNIT, in range)")
        if not value.strip():
            r.fail(field, "is empty")
    seen = {}
    for key, value in scenario.node_names.items():
        if value in seen:
            r.fail(f"node_names.{key}", f"names a unit {value!r}, as node_names.{seen[value]} does: one name per unit")
        seen[value] = key


def check_errata(r, scenario):
    """An erratum's parameter must name one parameter element; its path, units of the network."""
    params = scenario.parameters()
    units = set(scenario.node_names.values())
    for i, item in enumerate(scenario.errata):
        if "parameter" in item:
            field = f"errata[{i}].parameter"
            try:
                base, index = parse_element(item["parameter"])
            except ValueError as exc:
                r.fail(field, str(exc))
            if base in scenario.aliases and index is None:
                base, index = parse_element(scenario.aliases[base])
            if base not in params or index is None:
                r.fail(field, f"{item['parameter']!r} is not one element of a parameter or an alias of this scenario")
            try:
                check_index(index, params[base].shape)
            except ValueError as exc:
                r.fail(field, str(exc))
        if "path" in item:
            unknown = [name for name in item["path"] if name not in units]
            if unknown:
                r.fail(f"errata[{i}].path", f"names {unknown[0]!r}, which is not in node_names")
            if "parameter" not in item:
                r.fail(f"errata[{i}].path", f"needs errata[{i}].parameter: the parameter whose derivation followed it")
            layer, unit = int(base.split(".")[1]), index[0]
            by_name = {name: key for key, name in scenario.node_names.items()}
            steps = [by_name[name].split(".") for name in item["path"]]
            expected = [("layers", str(layer + k)) for k in range(len(scenario.layers) - layer)]
            if [tuple(s[:2]) for s in steps] != expected or steps[0][2] != str(unit):
                r.fail(f"errata[{i}].path", f"must run from {item['parameter']}'s unit (layers.{layer}.{unit}) "
                                            f"forward through one unit per layer to the output, in that order")


class Reader:
    """Typed reads of a decoded JSON document; every failure is one line naming the field."""

    def __init__(self, label):
        self.label = label

    def fail(self, field, message):
        raise ScenarioError(f"{self.label}: {field} {message}")

    def unknown_keys(self, data, block, prefix):
        """Warn once per key that ``block`` does not know; prefix is the block's JSON path."""
        for key in data:
            if key not in KNOWN[block]:
                where = f"{prefix}.{key}" if prefix else key
                warnings.warn(f"{self.label}: {where} is not a known {block} field and is ignored",
                              ScenarioWarning, stacklevel=3)

    def object(self, value, field, like):
        if not isinstance(value, dict):
            self.fail(field, f"must be {like}, not {kind(value)}")
        return value

    def required(self, data, key, field):
        if key not in data:
            self.fail(field, "is missing")
        return data[key]

    def string(self, data, key, field=None, required=True, default=""):
        field = field or key
        if key not in data:
            if required:
                self.fail(field, "is missing")
            return default
        value = data[key]
        if not isinstance(value, str):
            self.fail(field, f"must be a string, not {kind(value)}")
        if any("\ud800" <= char <= "\udfff" for char in value):
            self.fail(field, "holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is no character "
                             "and cannot be written as UTF-8")
        return value

    def number(self, value, field):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(field, f"must be a number, not {kind(value)}")
        if not math.isfinite(value):
            self.fail(field, f"must be finite, not {value}")
        return float(value)

    def count(self, value, field):
        """A whole number ≥ 1."""
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.fail(field, f"must be a whole number, not {kind(value) if not isinstance(value, float) else value}")
        if value < 1:
            self.fail(field, f"must be 1 or more, not {value}")
        return value

    def matrix(self, value, field, what):
        """A non-empty rectangular 2-D list of finite numbers."""
        if not isinstance(value, list):
            self.fail(field, f"must be a 2-D list of numbers ({what}), not {kind(value)}")
        if not value:
            self.fail(field, f"is empty; it must have at least one row ({what})")
        width = None
        for r, row in enumerate(value):
            if not isinstance(row, list):
                self.fail(f"{field}[{r}]", f"must be a list of numbers ({what}), not {kind(row)}")
            if not row:
                self.fail(f"{field}[{r}]", "is empty")
            if width is None:
                width = len(row)
            elif len(row) != width:
                self.fail(f"{field}[{r}]", f"has {len(row)} entries but row 0 has {width} (ragged array)")
            if not {type(item) for item in row} <= {int, float} or not all(map(math.isfinite, row)):
                for c, item in enumerate(row):              # something is wrong in this row: name the entry
                    self.number(item, f"{field}[{r}][{c}]")
        return value

    def vector(self, value, field):
        if not isinstance(value, list):
            self.fail(field, f"must be a list of numbers, not {kind(value)}")
        if not value:
            self.fail(field, "is empty")
        for i, item in enumerate(value):
            self.number(item, f"{field}[{i}]")
        return value

    def nested(self, value, field):
        """A number or a rectangular nested list of numbers."""
        if isinstance(value, list):
            if not value:
                self.fail(field, "is empty")
            items = [self.nested(item, f"{field}[{i}]") for i, item in enumerate(value)]
            if len({shape_of(item) for item in items}) != 1:
                self.fail(field, "is ragged")
            return items
        return self.number(value, field)


# --- one function per section ----------------------------------------------------------------

def read_layers(r, data):
    """The layer list, each layer checked on its own; how the shapes chain is checked with the inputs (``walk``).
    A layer without ``type`` is linear, as in the first files: weight (out, in), bias, activation (required)."""
    layers = r.required(data, "layers", "layers")
    if not isinstance(layers, list):
        r.fail("layers", f"must be a list of layer objects, not {kind(layers)}")
    if not layers:
        r.fail("layers", "is empty; a network needs at least one layer")
    typed = any(isinstance(layer, dict) and "type" in layer for layer in layers)
    total = 0
    for i, layer in enumerate(layers):
        field = f"layers[{i}]"
        r.object(layer, field, "an object")
        type_name = r.string(layer, "type", f"{field}.type", required=False, default="linear")
        if type_name not in LAYER_TYPES:
            r.fail(f"{field}.type", f"{type_name!r} is not a known layer type (known: {', '.join(LAYER_TYPES)})")
        r.unknown_keys(layer, "layer", field)
        for key in layer:
            if key in KNOWN["layer"] - {"type", "weight", "bias", "activation", "negative_slope"} \
                    and key not in LAYER_TYPES[type_name].options and key not in LAYER_TYPES[type_name].buffers \
                    and key not in LAYER_TYPES[type_name].parameters and key not in LAYER_TYPES[type_name].states:
                warnings.warn(f"{r.label}: {field}.{key} is not a field of a {type_name} layer and is ignored",
                              ScenarioWarning, stacklevel=2)
        holds = LAYER_TYPES[type_name].parameters
        for key in ("weight", "bias"):
            if key in layer and key not in holds:
                r.fail(f"{field}.{key}", f"is not a parameter of {type_name}: " + (
                    f"its parameters are {', '.join(holds)}" if holds else "it has none"))
        if LAYER_TYPES[type_name].named:
            read_named_parameters(r, layer, field, type_name)
        elif type_name == "linear" and not typed:
            weight = r.matrix(r.required(layer, "weight", f"{field}.weight"), f"{field}.weight", "shape (out, in)")
            if i > 0:
                in_features, previous_out = len(weight[0]), len(layers[i - 1]["weight"])
                if in_features != previous_out:
                    r.fail(f"{field}.weight", f"has {in_features} columns but layers[{i - 1}] has {previous_out} outputs")
        elif "weight" in holds:
            weight = r.nested(r.required(layer, "weight", f"{field}.weight"), f"{field}.weight")
            # (out, in) and one axis per spatial axis, unless the type says otherwise (a norm's (features,))
            rank = LAYER_TYPES[type_name].weight_rank or max(LAYER_TYPES[type_name].spatial, 0) + 2
            if len(shape_of(weight)) != rank:
                r.fail(f"{field}.weight", f"has shape {shape_of(weight)}; a {type_name} weight has {rank} axes ("
                                          f"{ {1: '(features,)', 2: '(out, in)', 3: '(out, in/groups, k)', 4: '(out, in/groups, kH, kW)'}[rank]})")
        bias = layer.get("bias")
        if bias is None and LAYER_TYPES[type_name].bias_required and "bias" in holds:
            r.fail(f"{field}.bias", f"is required: torch's {LAYER_TYPES[type_name].torch} always has one")
        if bias is not None:
            r.vector(bias, f"{field}.bias")
            if len(bias) != len(weight):
                r.fail(f"{field}.bias", f"has {len(bias)} entries but {field}.weight has {len(weight)} rows (out)")
        for key in LAYER_TYPES[type_name].buffers:          # a batch norm's running statistics, one per channel
            buffer = r.vector(r.required(layer, key, f"{field}.{key}"), f"{field}.{key}")
            if len(buffer) != len(weight):
                r.fail(f"{field}.{key}", f"has {len(buffer)} entries but {field}.weight has {len(weight)} (channels)")
            if key == "running_var" and min(buffer) < 0:
                r.fail(f"{field}.{key}", f"holds {min(buffer)}; a variance is 0 or more")
        activation = r.string(layer, "activation", f"{field}.activation", required=not typed, default="identity")
        if activation not in ACTIVATIONS:
            r.fail(f"{field}.activation", f"{activation!r} is not a known activation (known: {', '.join(ACTIVATIONS)})")
        if "negative_slope" in layer:
            r.number(layer["negative_slope"], f"{field}.negative_slope")
            if activation != "leaky_relu":
                warnings.warn(f"{r.label}: {field}.negative_slope is ignored by {activation}", ScenarioWarning,
                              stacklevel=2)
        options = {key: value for key, value in layer.items() if key in LAYER_TYPES[type_name].options}
        if type_name == "dropout":
            r.required(layer, "mask", f"{field}.mask")
        try:
            normalize(type_name, options)
        except ValueError as exc:
            key, _, why = str(exc).partition(": ")
            r.fail(f"{field}.{key}", why)
        total += parameter_count([layer])
        if total > MAX_PARAMETERS:
            r.fail("layers", f"hold more than {MAX_PARAMETERS:,} parameters, the size cap (at {field})")
    return layers


def read_named_parameters(r, layer, field, type_name):
    """The parameters of a type that names them as torch's module does (attention's in_proj_weight (3E, E), a
    transformer block's linear1.weight …): each a matrix or a vector (a bias, a norm's weight); the biases optional
    unless torch's module always has them. Their shapes are checked against the input's width in ``walk``."""
    kind = LAYER_TYPES[type_name]
    for name in kind.parameters:
        key = f"{field}.{name}"
        optional = "bias" in name.rsplit(".", 1)[-1] and not kind.bias_required
        if name not in layer and optional:
            continue
        value = r.nested(r.required(layer, name, key), key)
        rank = 1 if "bias" in name or name.startswith("norm") else 2
        if len(shape_of(value)) != rank:
            r.fail(key, f"has shape {shape_of(value)}; it has {rank} ax{'is' if rank == 1 else 'es'}")


def walk(r, layers, in_shape, rows):
    """Each layer's output shape (without the batch axis) from the input's, failing at the first layer whose
    hyperparameters or weight do not fit what reaches it; a dropout mask must be 0s and 1s shaped like its input."""
    shapes, shape = [], tuple(in_shape)
    sequence = next((f"layers[{i}]" for i, layer in enumerate(layers)
                     if LAYER_TYPES[layer.get("type", "linear")].sequence), None)
    for i, layer in enumerate(layers):
        field = f"layers[{i}]"
        type_name = layer.get("type", "linear")
        spatial = LAYER_TYPES[type_name].spatial
        if sequence and len(shape) > 1 and (spatial > 0 or type_name in ("flatten", "batch_norm1d", "group_norm")):
            # sequences are (n, T, E) in torch and Flax alike, channels (n, C, L) move to (n, L, C) in Flax: one
            # network holds one of the two layouts
            r.fail(f"{field}.type", f"{type_name} on (n, {', '.join(map(str, shape))}) in a network with sequence "
                                    f"layers ({sequence}) is not supported: pool the sequence first "
                                    "(sequence_pool)")
        if spatial >= 0 and len(shape) != spatial + 1 and not (spatial == 0 and len(shape) == 1) \
                and not (type_name == "linear" and sequence and len(shape) == 2):       # every step of a sequence
            what = "(n, features)" if spatial == 0 else {1: "(n, C, L)", 2: "(n, C, H, W)"}[spatial]
            r.fail(f"{field}.type", f"{type_name} takes {what}, but what reaches it has shape (n, "
                                    f"{', '.join(map(str, shape))}){' (add a flatten before it)' if spatial == 0 else ''}")
        options = normalize(type_name, {key: value for key, value in layer.items()
                                        if key in LAYER_TYPES[type_name].options})
        weight_shape = shape_of(layer["weight"]) if "weight" in layer else None
        if LAYER_TYPES[type_name].named:
            weight_shape = {name: shape_of(layer[name]) for name in LAYER_TYPES[type_name].parameters
                            if name in layer}
        for key in LAYER_TYPES[type_name].states:          # a recurrent layer's initial state: (n, H), given or 0s
            if key in layer:
                hidden = shape_of(layer["weight_hh_l0"])[1]
                state = r.nested(layer[key], f"{field}.{key}")
                if shape_of(state) != (rows, hidden):
                    r.fail(f"{field}.{key}", f"has shape {shape_of(state)}; the initial state is (n, H) = "
                                             f"{(rows, hidden)}")
        if type_name == "dropout":
            mask = r.nested(layer["mask"], f"{field}.mask")
            if shape_of(mask) != (rows,) + shape:
                r.fail(f"{field}.mask", f"has shape {shape_of(mask)}, but its input has shape {(rows,) + shape}")
            if any(value not in (0.0, 1.0) for value in np.ravel(mask)):
                r.fail(f"{field}.mask", "must hold only 0s and 1s (1 keeps a unit)")
        try:
            shape = LAYER_TYPES[type_name].output_shape(dict(options), shape, weight_shape)
        except ValueError as exc:
            name, _, why = str(exc).partition(": ")         # "in_proj_weight: has shape …" names its parameter
            if name in LAYER_TYPES[type_name].parameters:
                r.fail(f"{field}.{name}", why)
            r.fail(f"{field}.weight" if type_name == "linear" else field, str(exc))
        if LAYER_TYPES[type_name].buffers and dict(options)["training"] and rows * int(np.prod(shape[1:])) < 2:
            r.fail(f"{field}.training", "a batch norm in training needs more than one value per channel (torch "
                                        "refuses one); give more rows, or training false")
        shapes.append(shape)
    return shapes


def read_loss(r, data, layers):
    """(name, label_smoothing): ``"loss": "mse"`` or ``"loss": {"name": "cross_entropy", "label_smoothing": 0.1}``."""
    loss = r.required(data, "loss", "loss")
    field = "loss"
    label_smoothing = 0.0
    if isinstance(loss, dict):
        r.unknown_keys(loss, "loss", "loss")
        field = "loss.name"
        name = r.string(loss, "name", field)
        if "label_smoothing" in loss:
            label_smoothing = r.number(loss["label_smoothing"], "loss.label_smoothing")
            if name != "cross_entropy":
                r.fail("loss.label_smoothing", f"applies to cross_entropy only, not to {name}")
            if not 0.0 <= label_smoothing <= 1.0:
                r.fail("loss.label_smoothing", f"must lie in [0, 1], not {loss['label_smoothing']}")
    else:
        name = r.string(data, "loss")
    if name not in LOSSES:
        r.fail(field, f"{name!r} is not a known loss (known: {', '.join(LOSSES)})")
    last = layers[-1].get("activation", "identity")
    squash = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(name)
    if squash and last != "identity":
        warnings.warn(f"{r.label}: layers[{len(layers) - 1}].activation is {last}, but {name} takes logits and "
                      f"applies {squash} itself: the output is squashed twice (use identity)",
                      ScenarioWarning, stacklevel=2)
    return name, label_smoothing


def read_data(r, data, layers, loss):
    """(inputs (n, in) or (n, C, …), targets (n, out), target format), checked against the layers and the loss:
    cross_entropy takes class indices (a list of n integers) or probability rows."""
    typed = any("type" in layer for layer in layers)
    raw_inputs = r.required(data, "inputs", "inputs")
    if layers[0].get("type") == "embedding":
        inputs = embedding_indices(r, raw_inputs, len(layers[0]["weight"]))
    elif typed:
        inputs = r.nested(raw_inputs, "inputs")
        if len(shape_of(inputs)) < 2:
            r.fail("inputs", "must be a list of rows, (n, features), (n, C, L) or (n, C, H, W)")
    else:
        inputs = r.matrix(raw_inputs, "inputs", "shape (n, in)")
    if len(inputs) > MAX_ROWS:
        r.fail("inputs", f"has {len(inputs)} rows, over the cap of {MAX_ROWS}")
    if typed:
        out_shape = walk(r, layers, shape_of(inputs)[1:], len(inputs))[-1]
        sequence = any(LAYER_TYPES[layer.get("type", "linear")].sequence for layer in layers)
        if len(out_shape) != 1 and not (sequence and len(out_shape) == 2):
            r.fail(f"layers[{len(layers) - 1}]", f"outputs shape (n, {', '.join(map(str, out_shape))}); the last "
                                                 "layer must output (n, out), or (n, T, out) at every step of a "
                                                 "sequence: add a flatten and a linear layer")
        if len(out_shape) == 2:
            return (inputs,) + sequence_targets(r, r.required(data, "targets", "targets"), len(inputs), out_shape,
                                                loss)
        out_width = out_shape[0]
    else:
        in_width = len(layers[0]["weight"][0])
        if len(inputs[0]) != in_width:
            r.fail("inputs", f"has {len(inputs[0])} columns but layers[0].weight has {in_width} (in)")
        out_width = len(layers[-1]["weight"])
    raw = r.required(data, "targets", "targets")
    if loss == "cross_entropy" and isinstance(raw, list) and raw and not isinstance(raw[0], list):
        return inputs, class_rows(r, raw, len(inputs), out_width), "indices"
    targets = r.matrix(raw, "targets", "shape (n, out)" + (", or a list of n class indices"
                                                           if loss == "cross_entropy" else ""))
    if len(targets) != len(inputs):
        r.fail("targets", f"has {len(targets)} rows but inputs has {len(inputs)}")
    if len(targets[0]) != out_width:
        r.fail("targets", f"has {len(targets[0])} columns but the last layer has {out_width} outputs")
    if loss in CLASSIFICATION:
        for i, row in enumerate(targets):
            for j, value in enumerate(row):
                if not 0.0 <= value <= 1.0:
                    r.fail(f"targets[{i}][{j}]", f"is {value}; {loss} targets are probabilities in [0, 1]")
            if loss == "cross_entropy" and abs(math.fsum(row) - 1.0) > PROBABILITY_SUM_ATOL:
                r.fail(f"targets[{i}]", f"sums to {math.fsum(row):.9g}; a probability row must sum to 1 "
                                        f"(within {PROBABILITY_SUM_ATOL:g})")
    return inputs, targets, "rows"


def embedding_indices(r, raw, rows_of_weight):
    """An embedding's inputs: n indices, or n rows of T indices, each a whole number naming a row of its weight."""
    if not isinstance(raw, list) or not raw:
        r.fail("inputs", f"must be a list of indices (n,) or of rows of indices (n, T) into layers[0]'s "
                         f"{rows_of_weight} embeddings, not {kind(raw)}")
    nested = isinstance(raw[0], list)
    rows = raw if nested else [raw]
    steps = len(rows[0])
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != steps or not row:
            r.fail(f"inputs[{i}]" if nested else "inputs", f"must hold {steps} indices like the first row")
        for t, value in enumerate(row):
            field = f"inputs[{i}][{t}]" if nested else f"inputs[{t}]"
            if isinstance(value, bool) or not isinstance(value, int):
                r.fail(field, f"must be an index (a whole number) into layers[0]'s embeddings, not {kind(value)}")
            if not 0 <= value < rows_of_weight:
                r.fail(field, f"is {value}, not a row of layers[0]'s {rows_of_weight} embeddings (0 to "
                              f"{rows_of_weight - 1})")
    return raw


def sequence_targets(r, raw, rows, out_shape, loss):
    """(targets (n, T, out), format) for a network that outputs at every step: class indices (n, T) for cross_entropy,
    an index torch's ignore_index (-100) leaving that step out of the loss, or values shaped like the output."""
    steps, width = out_shape
    if loss == "cross_entropy" and isinstance(raw, list) and raw and isinstance(raw[0], list) and raw[0] \
            and isinstance(raw[0][0], int):
        if len(raw) != rows or any(not isinstance(row, list) or len(row) != steps for row in raw):
            r.fail("targets", f"must be {rows} rows of {steps} class indices, one per step (the output is (n, {steps}, "
                              f"{width}))")
        onehot = np.zeros((rows, steps, width))
        for i, row in enumerate(raw):
            for t, value in enumerate(row):
                if class_index(r, value, f"targets[{i}][{t}]", width, ignorable=True) != IGNORE_INDEX:
                    onehot[i, t, value] = 1.0
        if not onehot.any():
            r.fail("targets", f"has every step {IGNORE_INDEX} (ignored): the loss would average over no step")
        return onehot.tolist(), "indices"
    targets = r.nested(raw, "targets")
    if shape_of(targets) != (rows, steps, width):
        r.fail("targets", f"has shape {shape_of(targets)}; the output is (n, T, out) = {(rows, steps, width)}"
                          + (f", or give ({rows}, {steps}) class indices" if loss == "cross_entropy" else ""))
    if loss in CLASSIFICATION:
        values = np.asarray(targets, dtype=float)
        if values.min() < 0 or values.max() > 1:
            r.fail("targets", f"{loss} targets are probabilities in [0, 1]")
        if loss == "cross_entropy" and np.any(np.abs(values.sum(axis=-1) - 1.0) > PROBABILITY_SUM_ATOL):
            r.fail("targets", "a probability row (each step's) must sum to 1")
    return targets, "rows"


def class_rows(r, indices, rows, classes):
    """A list of class indices -> one-hot rows (n, classes), each index checked to be a whole number in range."""
    if len(indices) != rows:
        r.fail("targets", f"has {len(indices)} class indices but inputs has {rows} rows")
    onehot = [[0.0] * classes for _ in indices]
    for i, value in enumerate(indices):
        onehot[i][class_index(r, value, f"targets[{i}]", classes)] = 1.0
    return onehot


def class_index(r, value, field, classes, ignorable=False):
    """A target class index checked: a whole number in [0, classes), or with ``ignorable`` torch's ignore_index."""
    if isinstance(value, bool) or not isinstance(value, int):
        r.fail(field, f"must be a class index (a whole number), not {kind(value)}")
    if not 0 <= value < classes and not (ignorable and value == IGNORE_INDEX):
        r.fail(field, f"is class {value}, out of range: the last layer has {classes} outputs (classes 0 to "
                      f"{classes - 1}" + (f", or {IGNORE_INDEX} to leave the step out)" if ignorable else ")"))
    return value


def read_optimizer(r, data):
    """The optimizer and every hyperparameter (torch's defaults for those not given) -> its Optimizer dataclass. Each
    field is read by the type of its default (reference/registry.py): booleans, [β₁, β₂], numbers within BOUNDS."""
    optimizer = r.object(r.required(data, "optimizer", "optimizer"), "optimizer",
                         'an object like {"name": "sgd", "lr": 0.01}')
    name = r.string(optimizer, "name", "optimizer.name")
    if name not in OPTIMIZERS:
        r.fail("optimizer.name", f"{name!r} is not a known optimizer (known: {', '.join(OPTIMIZERS)})")
    fields = OPTIMIZER_DEFAULTS[name]
    for key in optimizer:
        if key not in fields and key not in ("name", "lr"):
            # an error, not a warning: a misspelt hyperparameter would silently take torch's default
            r.fail(f"optimizer.{key}", f"is not a field of {name} (its fields: lr, {', '.join(fields)})")
    lr = r.number(r.required(optimizer, "lr", "optimizer.lr"), "optimizer.lr")
    if lr <= 0:
        r.fail("optimizer.lr", f"must be greater than 0, not {optimizer['lr']}")
    given = {}
    for key, value in optimizer.items():
        field = f"optimizer.{key}"
        if key in ("name", "lr"):
            continue
        default = fields[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                r.fail(field, f"must be true or false, not {kind(value)}")
            given[key] = value
        elif isinstance(default, tuple):
            if not (isinstance(value, list) and len(value) == len(default)):
                r.fail(field, f"must be a list of {len(default)} numbers, not {kind(value)}")
            for k, beta in enumerate(value):
                if not 0.0 <= r.number(beta, f"{field}[{k}]") < 1.0:
                    r.fail(f"{field}[{k}]", f"is {beta}; a beta must lie in [0, 1)")
            given[key] = tuple(float(beta) for beta in value)
        else:
            number = r.number(value, field)
            low, high = BOUNDS.get(key, (0.0, math.inf))
            if not low <= number <= high:
                r.fail(field, f"is {value}; it must lie in [{low:g}, {high:g}]" if high < math.inf
                       else f"is {value}; it must be {low:g} or more")
            given[key] = number
    result = Optimizer.of(name, lr, **given)
    problem = result.problem()
    if problem:
        key, _, why = problem.partition(": ")
        r.fail(f"optimizer.{key}", why)
    return result


def parameter_count(layers):
    """Weights and biases over all layers (LayerSpecs, or the file's layer objects)."""
    def size(layer):
        named = layer.parameters() if not isinstance(layer, dict) else {
            key: layer.get(key) for key in LAYER_TYPES.get(layer.get("type", "linear"), LAYER_TYPES["linear"]).parameters}
        return sum(int(np.size(value)) for value in named.values() if value is not None)
    return sum(size(layer) for layer in layers)


def multiply_adds(scenario):
    """The multiply-adds of one row through the scenario's layers: a layer's weight at every output position (a
    linear layer's once: as many as its parameters), plus its bias; a pool's window at every output position."""
    total = 0
    for spec, out in zip(scenario.layers, scenario.layer_shapes()):
        positions = int(np.prod(out[1:]))                  # 1 for a linear layer's (out,)
        if LAYER_TYPES[spec.type].named:                   # each step through every matrix, and q·kᵀ, p·v
            steps, width = out
            total += steps * sum(value.size for value in spec.parameters().values()) + 2 * steps * steps * width
        elif spec.weight is not None:
            total += positions * spec.weight.size + (0 if spec.bias is None else int(np.prod(out)))
        else:
            total += int(np.prod(out)) * int(np.prod(spec.hyper.get("kernel_size", 1)))
    return total


def read_train(r, data, rows, parameters):
    """The train block; ``parameters``: the multiply-adds of one row's forward pass (the parameter count for a
    dense network)."""
    train = data.get("train")
    if train is None:
        return None
    for i, layer in enumerate(data["layers"]):
        if layer.get("type") == "dropout":
            r.fail("train", f"cannot train through layers[{i}], a dropout: its mask is fixed for the one step the "
                            "scenario traces, and training would need a new one per step")
    r.object(train, "train", 'an object like {"epochs": 60, "batch_size": 1}')
    r.unknown_keys(train, "train", "train")
    epochs = r.count(r.required(train, "epochs", "train.epochs"), "train.epochs")
    batch_size = r.count(train.get("batch_size", rows), "train.batch_size")
    if rows % batch_size:
        r.fail("train.batch_size", f"{batch_size} does not divide the {rows} rows into equal batches")
    for i, layer in enumerate(data["layers"]):
        given = [key for key in LAYER_TYPES[layer.get("type", "linear")].states if key in layer]
        if given and batch_size != rows:
            r.fail("train.batch_size", f"{batch_size} splits the rows, but layers[{i}].{given[0]} gives one initial "
                                       f"state per row of the whole batch: train on full batches (omit batch_size)")
    over = over_step_cap(epochs, rows // batch_size, rows, parameters)
    if over:
        r.fail("train.epochs", f"{epochs} epochs {over}")
    return {"epochs": epochs, "batch_size": batch_size}


def over_step_cap(epochs, steps, rows=0, parameters=0):
    """'' when epochs × steps is within MAX_STEPS and epochs × rows × parameters within MAX_WORK, else the end of the
    message that says which is not."""
    if epochs * steps > MAX_STEPS:
        return f"of {steps} steps is over the cap of {MAX_STEPS:,} steps"
    if epochs * rows * parameters > MAX_WORK:
        return (f"of {rows:,} rows through {parameters:,} parameters is over the cap of {MAX_WORK:,} multiply-adds "
                f"(epochs × rows × parameters)")
    return ""


def read_errata(r, data):
    errata = data.get("errata", [])
    if not isinstance(errata, list):
        r.fail("errata", f"must be a list of {{\"id\", \"text\"}} objects, not {kind(errata)}")
    for i, item in enumerate(errata):
        r.object(item, f"errata[{i}]", "an object with id and text")
        r.unknown_keys(item, "errata", f"errata[{i}]")
        r.string(item, "id", f"errata[{i}].id")
        r.string(item, "text", f"errata[{i}].text")
        # optional: the parameter whose derivation is wrong and the one path the source followed
        if "parameter" in item:
            r.string(item, "parameter", f"errata[{i}].parameter")
        if "path" in item and not (isinstance(item["path"], list) and item["path"]
                                   and all(isinstance(n, str) for n in item["path"])):
            r.fail(f"errata[{i}].path", "must be a non-empty list of node names")
    return [dict(item) for item in errata]


def read_init(r, data):
    init = data.get("init")
    if init is not None:
        r.object(init, "init", "an object describing how the weights were drawn")
    return init


def read_node_names(r, data):
    names = data.get("node_names", {})
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        r.fail("node_names", "must be an object mapping element references to names")
    return dict(names)


def read_aliases(r, data, scenario):
    aliases = r.object(data.get("aliases", {}), "aliases", "an object mapping names to parameter elements")
    params = {name: value.shape for name, value in scenario.parameters().items()}
    shapes = tensor_shapes(scenario)
    for alias, target in aliases.items():
        field = f"aliases.{alias}"
        if not alias.isidentifier():
            r.fail(field, "must be a name of letters, digits and _ (it is used in keys such as grad.w1), "
                          "not an element reference")
        if not isinstance(target, str):
            r.fail(field, f"must be a string such as \"layers.0.weight[0,0]\", not {kind(target)}")
        if alias in shapes or PARAMETER_RE.match(alias) or alias.startswith(("grad.", "updated.")):
            r.fail(field, "clashes with a canonical tensor name")
        try:
            base, index = parse_element(target)
        except ValueError as exc:
            r.fail(field, str(exc))
        if base not in params:
            r.fail(field, f"names {base!r}, which is not a parameter of this scenario (parameters: {', '.join(params)})")
        if index is None:
            r.fail(field, f"must name one element, e.g. \"{base}[0,0]\"")
        try:
            check_index(index, params[base])
        except ValueError as exc:
            r.fail(field, str(exc))
    return dict(aliases)


def read_expected(r, data, scenario):
    expected = r.object(data.get("expected", {}), "expected", "an object")
    shapes = tensor_shapes(scenario)
    params = {name: value.shape for name, value in scenario.parameters().items()}
    checked = {}
    for key, entry in expected.items():
        field = f'expected["{key}"]'
        try:
            tensor, index = resolve(key, shapes, params, scenario.aliases)
        except ValueError as exc:
            r.fail(field, f"is not a valid key: {exc}")
        r.object(entry, field, "an object with value and atol")
        r.unknown_keys(entry, "expected", field)
        shape = () if index is not None else shapes.get(tensor, params.get(tensor))
        value = r.nested(r.required(entry, "value", f"{field}.value"), f"{field}.value")
        if shape_of(value) != tuple(shape):
            r.fail(f"{field}.value", f"has shape {shape_of(value)} but {key} has shape {tuple(shape)}")
        atol = r.number(r.required(entry, "atol", f"{field}.atol"), f"{field}.atol")
        if atol < 0:
            r.fail(f"{field}.atol", f"must be 0 or more, not {entry['atol']}")
        result = {"value": value, "atol": atol, "tensor": tensor, "index": index}
        for text in ("erratum", "note"):
            if text in entry:
                result[text] = r.string(entry, text, f"{field}.{text}")
        checked[key] = result
    return checked


def shape_of(value):
    if isinstance(value, list):
        return (len(value),) + shape_of(value[0])
    return ()


def kind(value):
    """How a JSON value is named in messages."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
