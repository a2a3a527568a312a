"""Scenario: the description of one network, its data and one SGD step.

A Scenario is what all three implementations are built from. It holds plain
NumPy arrays in the canonical layout, already validated (``backproof.scenario``
reads and checks the JSON files). Its arrays are read-only: an implementation
that wants to change weights must copy them first, which is the point.

Layout conventions, the same everywhere in this project:

    weight  (out, in)    as torch's nn.Linear and the posts' W·x
    bias    (out,)       or None for a layer without bias
    inputs  (n, in)      one example per row
    targets (n, out)
    z = x·Wᵀ + b         for a batch x of shape (n, in)

Class targets: a scenario whose file gives class indices keeps ``targets`` as one-hot rows
(n, out) and says so in ``target_format = "indices"``; torch and JAX are handed the indices
(``targets.argmax(1)``, exact for one-hot rows), the reference works with the rows.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .registry import LAYER_TYPES, OPTIMIZER_TYPES, Optimizer, normalize

# torch.optim's defaults of each optimizer's fields beyond lr (reference/registry.py declares them)
OPTIMIZER_DEFAULTS = {name: kind.defaults() for name, kind in OPTIMIZER_TYPES.items()}

DTYPES = ("float64", "float32")
IGNORE_INDEX = -100         # torch's default ignore_index: a sequence step whose class is this counts in no loss

def frozen_array(values, dtype):
    """A read-only copy of ``values`` as ``dtype``."""
    array = np.array(values, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class LayerSpec:
    """One layer followed by its activation.

    type: a name in ``reference.registry.LAYER_TYPES`` ("linear" for the dense layers of older files);
    weight: (out, in) for linear, (out, in/groups, kH, kW) for conv2d, None for a layer without
    parameters; bias: (out,) or None; activation: a name in ``reference.activations.ACTIVATIONS``,
    negative_slope used by leaky_relu; options: the type's hyperparameters as (name, value) pairs,
    normalized by ``registry.normalize``; mask: dropout's 0/1 mask, shaped like its input.
    """

    weight: "np.ndarray | None"
    bias: "np.ndarray | None"
    activation: str = "identity"
    negative_slope: float = 0.01
    type: str = "linear"
    options: tuple = ()
    mask: "np.ndarray | None" = None
    running_mean: "np.ndarray | None" = None        # a batch norm's running statistics (C,), not parameters
    running_var: "np.ndarray | None" = None
    tensors: tuple = ()     # (name, array) for the parameters of a type named otherwise: in_proj_weight, linear1.bias…
    h0: "np.ndarray | None" = None                  # a recurrent layer's initial states (n, H): inputs, not parameters
    c0: "np.ndarray | None" = None

    @property
    def shape(self):
        """The weight's shape: (out, in) for linear."""
        return self.weight.shape

    @property
    def hyper(self):
        """The hyperparameters as a dict."""
        return dict(self.options)

    def parameter(self, name):
        """The parameter ``name`` (torch's name inside the module: weight, bias, in_proj_weight, linear1.bias) or
        None."""
        if name in ("weight", "bias"):
            return getattr(self, name)
        return dict(self.tensors).get(name)

    def parameters(self):
        """{name: array} of the parameters it holds, in state_dict order (reference.registry declares the names)."""
        return {name: value for name in LAYER_TYPES[self.type].parameters
                if (value := self.parameter(name)) is not None}

    def arrays(self):
        """(field, array) for each array the layer holds: weight, bias, mask, running statistics, named parameters."""
        return [(key, getattr(self, key)) for key in ("weight", "bias", "mask", "running_mean", "running_var", "h0", "c0")
                if getattr(self, key) is not None] + list(self.tensors)

    def with_arrays(self, arrays):
        """The same layer with the arrays given ({field or parameter name: array}) in place of its own."""
        named = {key: value for key, value in arrays.items() if key in dict(self.tensors)}
        plain = {key: value for key, value in arrays.items() if key not in named}
        tensors = tuple((key, named.get(key, value)) for key, value in self.tensors)
        return replace(self, tensors=tensors, **plain)


@dataclass(frozen=True)
class Loss:
    """The loss and its options, as the implementations' ``gradients`` stage takes it (hashable)."""

    name: str
    label_smoothing: float = 0.0

    def options(self):
        """Keyword arguments of ``LOSSES[name]`` beyond (y, t): label_smoothing for cross_entropy only."""
        return {"label_smoothing": self.label_smoothing} if self.name == "cross_entropy" else {}


@dataclass(frozen=True)
class Scenario:
    """A network, a batch and one SGD step, in the canonical layout.

    ``expected``, ``aliases`` and the text fields are carried along for the
    harness; the implementations only use layers, loss, inputs, targets and lr.
    """

    name: str
    layers: tuple
    loss: str
    inputs: np.ndarray
    targets: np.ndarray
    lr: float
    dtype: str = "float64"
    description: str = ""
    source: str = ""
    aliases: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    train: "dict | None" = None
    node_names: dict = field(default_factory=dict)
    errata: list = field(default_factory=list)
    init: "dict | None" = None
    optimizer: "Optimizer | None" = None     # None: plain SGD at ``lr``
    label_smoothing: float = 0.0             # cross_entropy only
    target_format: str = "rows"              # "indices": targets are one-hot rows of class indices

    def __post_init__(self):
        if self.optimizer is None:
            object.__setattr__(self, "optimizer", Optimizer.of("sgd", self.lr))
        elif self.optimizer.lr != self.lr:
            raise ValueError(f"lr {self.lr} differs from optimizer.lr {self.optimizer.lr}")

    @property
    def criterion(self):
        """The loss as the ``gradients`` stage takes it: ``Loss(name, label_smoothing)``."""
        return Loss(self.loss, self.label_smoothing)

    def class_indices(self):
        """(n,) or, per step of a sequence, (n, T) int64 class indices for ``target_format == "indices"`` (exact: the
        rows are one-hot); an ignored step (a row of zeros) is torch's ignore_index, IGNORE_INDEX."""
        return np.where(np.any(self.targets != 0, axis=-1), np.argmax(self.targets, axis=-1),
                        IGNORE_INDEX).astype(np.int64)

    @staticmethod
    def build(name, layers, loss, inputs, targets, lr, dtype="float64", **extra):
        """Make a Scenario from nested lists or arrays, copying every array.

        layers: a list of dicts as in the JSON file: weight, bias (optional), activation,
        negative_slope (optional), and for a typed layer ``type`` and its hyperparameters.
        """
        specs = tuple(layer_spec(layer, dtype) for layer in layers)
        return Scenario(
            name=name,
            layers=specs,
            loss=loss,
            inputs=frozen_array(inputs, "int64" if specs[0].type == "embedding" else dtype),
            targets=frozen_array(targets, dtype),
            lr=float(lr),
            dtype=dtype,
            **extra,
        )

    @property
    def indexed(self):
        """True when the inputs are integer indices into an embedding (its first layer): they get no gradient."""
        return bool(self.layers) and self.layers[0].type == "embedding"

    @property
    def sequence(self):
        """True when a layer takes batch-first sequences (n, T, E): their layout is the same in torch and Flax, so the
        JAX mirror moves no axis (no NCHW -> NHWC)."""
        return any(LAYER_TYPES[spec.type].sequence for spec in self.layers)

    @property
    def typed(self):
        """True when a layer is anything but linear on (n, in) rows: the network is not a dense stack."""
        return self.inputs.ndim != 2 or any(spec.type != "linear" for spec in self.layers)

    def layer_shapes(self):
        """Each layer's output shape without the batch axis, e.g. [(4, 8, 8), (4, 4, 4), (64,), (3,)]."""
        shapes, shape = [], self.inputs.shape[1:]
        for spec in self.layers:
            kind = LAYER_TYPES[spec.type]
            given = ({name: value.shape for name, value in spec.parameters().items()} if kind.named
                     else None if spec.weight is None else spec.weight.shape)
            shape = kind.output_shape(spec.hyper, shape, given)
            shapes.append(shape)
        return shapes

    def with_dtype(self, dtype):
        """The same scenario with every array cast to ``dtype``."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
        if dtype == self.dtype:
            return self
        layers = tuple(spec.with_arrays({key: frozen_array(value, dtype) for key, value in spec.arrays()})
                       for spec in self.layers)
        return replace(
            self,
            layers=layers,
            inputs=self.inputs if self.indexed else frozen_array(self.inputs, dtype),     # indices stay integers
            targets=frozen_array(self.targets, dtype),
            dtype=dtype,
        )

    def schedule(self, epochs=None):
        """(epochs, batch_size) for training: the ``train`` block's, or ``epochs`` if given.

        batch_size defaults to every row; rows are visited in file order.
        """
        train = self.train or {}
        epochs = train.get("epochs") if epochs is None else epochs
        if epochs is None:
            raise ValueError(f"scenario {self.name!r} has no train block; give epochs")
        return int(epochs), int(train.get("batch_size", self.inputs.shape[0]))

    def parameters(self):
        """Canonical name -> array, e.g. ``layers.0.weight``; layers without a bias or without parameters are
        skipped."""
        return {f"layers.{i}.{name}": value for i, spec in enumerate(self.layers)
                for name, value in spec.parameters().items()}

    def buffers(self):
        """Canonical name -> array of each batch norm's running statistics, ``layers.{i}.running_mean`` and
        ``layers.{i}.running_var`` (torch's state_dict names): state a forward pass in training updates."""
        return {f"layers.{i}.{key}": getattr(spec, key) for i, spec in enumerate(self.layers)
                for key in LAYER_TYPES[spec.type].buffers}

    def with_parameters(self, params):
        """The same scenario with its weights and biases (and running statistics, where ``params`` has them)
        replaced by ``params``."""
        layers = tuple(
            spec.with_arrays({key: frozen_array(params[f"layers.{i}.{key}"], self.dtype)
                              for key, _ in spec.arrays() if key in spec.parameters()
                              or f"layers.{i}.{key}" in params and key not in ("mask", "h0", "c0")})
            for i, spec in enumerate(self.layers)
        )
        return replace(self, layers=layers)


def layer_spec(layer, dtype):
    """A layer dict as in the JSON file -> a LayerSpec with copied, read-only arrays in ``dtype``."""
    type_name = layer.get("type", "linear")
    options = {key: value for key, value in layer.items() if key in LAYER_TYPES[type_name].options}
    array = (lambda key: None if layer.get(key) is None else frozen_array(layer[key], dtype))
    tensors = tuple((name, array(name)) for name in LAYER_TYPES[type_name].parameters
                    if name not in ("weight", "bias") and layer.get(name) is not None)
    return LayerSpec(weight=array("weight"), bias=array("bias"), activation=layer.get("activation", "identity"),
                     negative_slope=float(layer.get("negative_slope", 0.01)), type=type_name,
                     options=normalize(type_name, options), mask=array("mask"), running_mean=array("running_mean"),
                     running_var=array("running_var"), tensors=tensors, h0=array("h0"), c0=array("c0"))
