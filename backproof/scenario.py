"""Reading and validating scenario files.

``load(path_or_name)`` returns a ``reference.Scenario``. Every problem raises
``ScenarioError`` whose message is one line naming the file and the JSON path
of the field, e.g. ``bad.json: layers[1].weight has 2 columns but layers[0]
has 3 outputs``. The file itself is only ever read.
"""

import json
import math
import warnings
from dataclasses import replace
from importlib import resources
from pathlib import Path

from reference import DTYPES, Scenario
from reference.activations import ACTIVATIONS
from reference.losses import LOSSES

from .names import PARAMETER_RE, check_index, parse_element, resolve, tensor_shapes

OPTIMIZERS = ("sgd",)
MAX_PARAMETERS = 1_000_000      # the size cap: weights + biases over all layers
MAX_ROWS = 100_000

TOP_LEVEL = {"name", "description", "source", "dtype", "layers", "loss", "inputs", "targets",
             "optimizer", "aliases", "expected", "train", "node_names", "init", "errata"}
TRAIN_KEYS = {"epochs", "batch_size"}
MAX_STEPS = 10_000_000          # epochs × steps per epoch
LAYER_KEYS = {"weight", "bias", "activation", "negative_slope"}
EXPECTED_KEYS = {"value", "atol", "erratum", "note"}
ERRATUM_KEYS = {"id", "text", "parameter", "path"}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; str() is the one-line message."""


class ScenarioWarning(UserWarning):
    """Something in a scenario file that is ignored, such as an unknown key."""


def builtin_dir():
    return Path(str(resources.files("backproof") / "scenarios"))


def builtin_names():
    """Names of the built-in scenarios, sorted."""
    return sorted(p.stem for p in builtin_dir().glob("*.json"))


def load(spec):
    """A built-in scenario name or a path to a JSON file -> a validated Scenario."""
    path = Path(spec)
    if not path.suffix and spec in builtin_names():
        path = builtin_dir() / f"{spec}.json"
    label = str(spec)
    if path.is_dir():
        raise ScenarioError(f"{label}: is a directory, not a scenario file")
    if not path.exists():
        hint = f" (built-in scenarios: {', '.join(builtin_names())})" if not path.suffix else ""
        raise ScenarioError(f"{label}: no such file or built-in scenario{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{label}: cannot be read: {exc}") from None
    if not text.strip():
        raise ScenarioError(f"{label}: the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{label}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return parse(data, label)


def parse(data, label="<scenario>"):
    """A decoded JSON document -> a validated Scenario; ``label`` names it in errors."""
    return _Parser(label).scenario(data)


class _Parser:
    def __init__(self, label):
        self.label = label

    def fail(self, field, message):
        raise ScenarioError(f"{self.label}: {field} {message}")

    def warn(self, field, message):
        warnings.warn(f"{self.label}: {field} {message}", ScenarioWarning, stacklevel=4)

    # --- small typed readers ------------------------------------------------

    def string(self, data, key, field, required=True, default=""):
        if key not in data:
            if required:
                self.fail(field, "is missing")
            return default
        value = data[key]
        if not isinstance(value, str):
            self.fail(field, f"must be a string, not {_kind(value)}")
        return value

    def number(self, value, field):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(field, f"must be a number, not {_kind(value)}")
        if not math.isfinite(value):
            self.fail(field, f"must be finite, not {value}")
        return float(value)

    def matrix(self, value, field, what):
        """A non-empty rectangular 2-D list of finite numbers."""
        if not isinstance(value, list):
            self.fail(field, f"must be a 2-D list of numbers ({what}), not {_kind(value)}")
        if not value:
            self.fail(field, f"is empty; it must have at least one row ({what})")
        width = None
        for r, row in enumerate(value):
            if not isinstance(row, list):
                self.fail(f"{field}[{r}]", f"must be a list of numbers ({what}), not {_kind(row)}")
            if not row:
                self.fail(f"{field}[{r}]", "is empty")
            if width is None:
                width = len(row)
            elif len(row) != width:
                self.fail(f"{field}[{r}]", f"has {len(row)} entries but row 0 has {width} (ragged array)")
            for c, item in enumerate(row):
                self.number(item, f"{field}[{r}][{c}]")
        return value

    def vector(self, value, field):
        if not isinstance(value, list):
            self.fail(field, f"must be a list of numbers, not {_kind(value)}")
        if not value:
            self.fail(field, "is empty")
        for i, item in enumerate(value):
            self.number(item, f"{field}[{i}]")
        return value

    # --- the document ---------------------------------------------------------

    def scenario(self, data):
        if not isinstance(data, dict):
            self.fail("the top level", f"must be a JSON object, not {_kind(data)}")
        for key in data:
            if key not in TOP_LEVEL:
                self.warn(key, "is not a known scenario field and is ignored")
        name = self.string(data, "name", "name")
        if not name.strip():
            self.fail("name", "is empty")
        dtype = self.string(data, "dtype", "dtype", required=False, default="float64")
        if dtype not in DTYPES:
            self.fail("dtype", f"must be one of {', '.join(DTYPES)}, not {dtype!r}")

        layers = self.layers(data)
        loss = self.string(data, "loss", "loss")
        if loss not in LOSSES:
            self.fail("loss", f"{loss!r} is not a known loss (known: {', '.join(LOSSES)})")

        if "inputs" not in data:
            self.fail("inputs", "is missing")
        inputs = self.matrix(data["inputs"], "inputs", "shape (n, in)")
        if len(inputs) > MAX_ROWS:
            self.fail("inputs", f"has {len(inputs)} rows, over the cap of {MAX_ROWS}")
        in_width = len(layers[0]["weight"][0])
        if len(inputs[0]) != in_width:
            self.fail("inputs", f"has {len(inputs[0])} columns but layers[0].weight has {in_width} (in)")
        if "targets" not in data:
            self.fail("targets", "is missing")
        targets = self.matrix(data["targets"], "targets", "shape (n, out)")
        out_width = len(layers[-1]["weight"])
        if len(targets) != len(inputs):
            self.fail("targets", f"has {len(targets)} rows but inputs has {len(inputs)}")
        if len(targets[0]) != out_width:
            self.fail("targets", f"has {len(targets[0])} columns but the last layer has {out_width} outputs")

        lr = self.optimizer(data)
        extra = {
            "description": self.string(data, "description", "description", required=False),
            "source": self.string(data, "source", "source", required=False),
            "train": self.train(data, len(inputs)),
            "errata": self.errata(data),
            "init": self.init(data),
            "node_names": self.node_names(data),
        }
        scenario = Scenario.build(name, layers, loss, inputs, targets, lr, dtype, **extra)
        aliases = self.aliases(data, scenario)
        scenario = replace(scenario, aliases=aliases)
        return replace(scenario, expected=self.expected(data, scenario))

    def layers(self, data):
        if "layers" not in data:
            self.fail("layers", "is missing")
        layers = data["layers"]
        if not isinstance(layers, list):
            self.fail("layers", f"must be a list of layer objects, not {_kind(layers)}")
        if not layers:
            self.fail("layers", "is empty; a network needs at least one layer")
        total = 0
        for i, layer in enumerate(layers):
            field = f"layers[{i}]"
            if not isinstance(layer, dict):
                self.fail(field, f"must be an object, not {_kind(layer)}")
            for key in layer:
                if key not in LAYER_KEYS:
                    self.warn(f"{field}.{key}", "is not a known layer field and is ignored")
            if "weight" not in layer:
                self.fail(f"{field}.weight", "is missing")
            weight = self.matrix(layer["weight"], f"{field}.weight", "shape (out, in)")
            out_features, in_features = len(weight), len(weight[0])
            if i > 0:
                previous_out = len(layers[i - 1]["weight"])
                if in_features != previous_out:
                    self.fail(f"{field}.weight", f"has {in_features} columns but layers[{i - 1}] has {previous_out} outputs")
            bias = layer.get("bias")
            if bias is not None:
                self.vector(bias, f"{field}.bias")
                if len(bias) != out_features:
                    self.fail(f"{field}.bias", f"has {len(bias)} entries but {field}.weight has {out_features} rows (out)")
            activation = self.string(layer, "activation", f"{field}.activation")
            if activation not in ACTIVATIONS:
                self.fail(f"{field}.activation", f"{activation!r} is not a known activation (known: {', '.join(ACTIVATIONS)})")
            if "negative_slope" in layer:
                self.number(layer["negative_slope"], f"{field}.negative_slope")
                if activation != "leaky_relu":
                    self.warn(f"{field}.negative_slope", f"is ignored by {activation}")
            total += out_features * in_features + (0 if bias is None else out_features)
            if total > MAX_PARAMETERS:
                self.fail("layers", f"hold more than {MAX_PARAMETERS:,} parameters, the size cap (at {field})")
        return layers

    def optimizer(self, data):
        if "optimizer" not in data:
            self.fail("optimizer", "is missing")
        optimizer = data["optimizer"]
        if not isinstance(optimizer, dict):
            self.fail("optimizer", f"must be an object like {{\"name\": \"sgd\", \"lr\": 0.01}}, not {_kind(optimizer)}")
        name = self.string(optimizer, "name", "optimizer.name")
        if name not in OPTIMIZERS:
            self.fail("optimizer.name", f"{name!r} is not a known optimizer (known: {', '.join(OPTIMIZERS)})")
        if "lr" not in optimizer:
            self.fail("optimizer.lr", "is missing")
        lr = self.number(optimizer["lr"], "optimizer.lr")
        if lr <= 0:
            self.fail("optimizer.lr", f"must be greater than 0, not {optimizer['lr']}")
        return lr

    def train(self, data, rows):
        train = data.get("train")
        if train is None:
            return None
        if not isinstance(train, dict):
            self.fail("train", f"must be an object like {{\"epochs\": 60, \"batch_size\": 1}}, not {_kind(train)}")
        for key in train:
            if key not in TRAIN_KEYS:
                self.warn(f"train.{key}", "is not a known train field and is ignored")
        if "epochs" not in train:
            self.fail("train.epochs", "is missing")
        epochs = self.count(train["epochs"], "train.epochs")
        batch_size = self.count(train.get("batch_size", rows), "train.batch_size")
        if rows % batch_size:
            self.fail("train.batch_size", f"{batch_size} does not divide the {rows} rows into equal batches")
        if epochs * (rows // batch_size) > MAX_STEPS:
            self.fail("train.epochs", f"{epochs} epochs of {rows // batch_size} steps is over the cap of {MAX_STEPS:,} steps")
        return {"epochs": epochs, "batch_size": batch_size}

    def count(self, value, field):
        """A whole number ≥ 1."""
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.fail(field, f"must be a whole number, not {_kind(value) if not isinstance(value, float) else value}")
        if value < 1:
            self.fail(field, f"must be 1 or more, not {value}")
        return value

    def errata(self, data):
        errata = data.get("errata", [])
        if not isinstance(errata, list):
            self.fail("errata", f"must be a list of {{\"id\", \"text\"}} objects, not {_kind(errata)}")
        for i, item in enumerate(errata):
            if not isinstance(item, dict):
                self.fail(f"errata[{i}]", f"must be an object with id and text, not {_kind(item)}")
            self.string(item, "id", f"errata[{i}].id")
            self.string(item, "text", f"errata[{i}].text")
            # optional: the parameter whose derivation is wrong and the one path the source followed
            if "parameter" in item:
                self.string(item, "parameter", f"errata[{i}].parameter")
            if "path" in item and not (isinstance(item["path"], list) and item["path"]
                                       and all(isinstance(n, str) for n in item["path"])):
                self.fail(f"errata[{i}].path", "must be a non-empty list of node names")
            for key in item:
                if key not in ERRATUM_KEYS:
                    self.warn(f"errata[{i}].{key}", "is not a known errata field and is ignored")
        return [dict(item) for item in errata]

    def init(self, data):
        init = data.get("init")
        if init is not None and not isinstance(init, dict):
            self.fail("init", f"must be an object describing how the weights were drawn, not {_kind(init)}")
        return init

    def node_names(self, data):
        names = data.get("node_names", {})
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            self.fail("node_names", "must be an object mapping element references to names")
        return dict(names)

    def aliases(self, data, scenario):
        aliases = data.get("aliases", {})
        if not isinstance(aliases, dict):
            self.fail("aliases", f"must be an object mapping names to parameter elements, not {_kind(aliases)}")
        params = {name: value.shape for name, value in scenario.parameters().items()}
        shapes = tensor_shapes(scenario)
        for alias, target in aliases.items():
            field = f"aliases.{alias}"
            if not isinstance(target, str):
                self.fail(field, f"must be a string such as \"layers.0.weight[0,0]\", not {_kind(target)}")
            if alias in shapes or PARAMETER_RE.match(alias) or alias.startswith(("grad.", "updated.")):
                self.fail(field, "clashes with a canonical tensor name")
            try:
                base, index = parse_element(target)
            except ValueError as exc:
                self.fail(field, str(exc))
            if base not in params:
                self.fail(field, f"names {base!r}, which is not a parameter of this scenario (parameters: {', '.join(params)})")
            if index is None:
                self.fail(field, f"must name one element, e.g. \"{base}[0,0]\"")
            try:
                check_index(index, params[base])
            except ValueError as exc:
                self.fail(field, str(exc))
        return dict(aliases)

    def expected(self, data, scenario):
        expected = data.get("expected", {})
        if not isinstance(expected, dict):
            self.fail("expected", f"must be an object, not {_kind(expected)}")
        shapes = tensor_shapes(scenario)
        params = {name: value.shape for name, value in scenario.parameters().items()}
        checked = {}
        for key, entry in expected.items():
            field = f'expected["{key}"]'
            try:
                tensor, index = resolve(key, shapes, params, scenario.aliases)
            except ValueError as exc:
                self.fail(field, f"is not a valid key: {exc}")
            if not isinstance(entry, dict):
                self.fail(field, f"must be an object with value and atol, not {_kind(entry)}")
            for extra in entry:
                if extra not in EXPECTED_KEYS:
                    self.warn(f"{field}.{extra}", "is not a known field and is ignored")
            if "value" not in entry:
                self.fail(f"{field}.value", "is missing")
            shape = () if index is not None else shapes.get(tensor, params.get(tensor))
            value = self.nested(entry["value"], f"{field}.value")
            if _shape(value) != tuple(shape):
                self.fail(f"{field}.value", f"has shape {_shape(value)} but {key} has shape {tuple(shape)}")
            if "atol" not in entry:
                self.fail(f"{field}.atol", "is missing")
            atol = self.number(entry["atol"], f"{field}.atol")
            if atol < 0:
                self.fail(f"{field}.atol", f"must be 0 or more, not {entry['atol']}")
            result = {"value": value, "atol": atol, "tensor": tensor, "index": index}
            for text in ("erratum", "note"):
                if text in entry:
                    result[text] = self.string(entry, text, f"{field}.{text}")
            checked[key] = result
        return checked

    def nested(self, value, field):
        """A number or a rectangular nested list of numbers."""
        if isinstance(value, list):
            if not value:
                self.fail(field, "is empty")
            items = [self.nested(item, f"{field}[{i}]") for i, item in enumerate(value)]
            if len({_shape(item) for item in items}) != 1:
                self.fail(field, "is ragged")
            return items
        return self.number(value, field)


def _shape(value):
    if isinstance(value, list):
        return (len(value),) + _shape(value[0])
    return ()


def _kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
