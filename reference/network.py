"""The network built from a Scenario: its forward pass and its hand-derived gradients.

The stages, in the same names and order as ``torch_impl/network.py`` and
``jax_impl/network.py`` (``backproof read`` prints them side by side):

    ACTIVATIONS                           activations.py  name -> (f, f')
    LOSSES                                losses.py       name -> (L, ∂L/∂y)
    LAYERS                                layers.py       name -> layer class, forward and backward by hand
    Model                                 here            the scenario's layers, weights copied in
    forward(model, x)                     here            -> ([z_0, …], [a_0, …])
    gradients(model, x, t, loss)          here            -> StepValues, the backward pass by hand
    OPTIMIZERS                            optim.py        name -> update rule, written out by hand
    update(params, grads, state, o)       optim.py        -> (new parameters, new optimizer state)
    run_step(scenario)                    train.py        -> the canonical trace of one step
    train(scenario, epochs)               train.py        -> the loss curve, trained parameters and state
"""

import numpy as np

from .layers import Activation, build
from .losses import LOSSES
from .trace import StepValues


class Model:
    """The scenario's layers, each followed by its activation (layers.py, one class per layer type); the
    weights are copied in.

    params: canonical name -> array, used as the weights as they are (not copied), for probes
    that only run forward; default: copies of the scenario's own weights.
    """

    def __init__(self, scenario, params=None):
        if params is None:
            self.layers = [build(spec) for spec in scenario.layers]
        else:
            self.layers = [build(spec, {name: params[f"layers.{i}.{name}"] for name in spec.parameters()
                                        if f"layers.{i}.{name}" in params}, copy=False)
                           for i, spec in enumerate(scenario.layers)]
        self.activations = [Activation(spec.activation, spec.negative_slope) for spec in scenario.layers]
        # canonical name -> (the layer object holding it, its attribute): layers.0.weight -> (Dense, "weight"),
        # layers.1.self_attn.in_proj_weight -> (the attention's in_proj Dense, "weight")
        self.slots = [(f"layers.{i}.{name}", owner, key) for i, layer in enumerate(self.layers)
                      for name, (owner, key) in layer.parts().items()]
        # the parameters the layers hold (a layer without bias has none), with their gradients' attribute
        self.present = [(name, owner, key, f"{key}_grad") for name, owner, key in self.slots
                        if getattr(owner, key, None) is not None]

    def parameters(self):
        """Canonical name -> array: ``layers.{i}.weight``, ``layers.{i}.bias`` (``layers.{i}.self_attn.in_proj_weight``
        …: torch's names inside the layer) in torch's layout."""
        return {name: getattr(owner, key) for name, owner, key, _ in self.present}

    def buffers(self):
        """Canonical name -> array of each batch norm's running statistics as they stand (a forward pass in training
        moves them): ``layers.{i}.running_mean``, ``layers.{i}.running_var``."""
        return {f"layers.{i}.{key}": getattr(layer, key) for i, layer in enumerate(self.layers)
                for key in ("running_mean", "running_var") if hasattr(layer, key)}

    def set_parameters(self, params):
        """Take ``params[canonical name]`` as every parameter it names (the arrays are used, not copied)."""
        for name, owner, key in self.slots:
            if name in params:
                setattr(owner, key, params[name])


def forward(model, x):
    """x (n, in) or (n, C, H, W) -> ([z_0, …], [a_0, …]); the last a is the network's output."""
    zs, acts = [], []
    a = x
    for layer, activation in zip(model.layers, model.activations):
        z = layer.forward(a)                                # z_i = layer_i(a_{i-1}), e.g. a_{i-1}·W_iᵀ + b_i
        a = activation.forward(z)                           # a_i = f(z_i)              same shape as z_i
        zs.append(z)
        acts.append(a)
    return zs, acts


def gradients(model, x, t, loss):
    """Forward, loss and the hand-derived backward pass on one batch -> StepValues.

    loss: the scenario's ``Loss`` (name and options). Backward runs from the loss down:
    ∂L/∂a_last from the loss, then in each layer ∂L/∂z_i = ∂L/∂a_i ⊙ f'(z_i) (softmax:
    its Jacobian, Activation.backward) and ∂L/∂a_{i-1} from the layer's own backward
    (Dense: ∂L/∂z_i·W_i; layers.py derives each type's), which also leaves dW_i and db_i
    on the layer.
    """
    loss_fn, loss_grad = LOSSES[loss.name]
    options = loss.options()                                # label_smoothing for cross_entropy, else none
    zs, acts = forward(model, x)
    value = loss_fn(acts[-1], t, **options)
    grad = loss_grad(acts[-1], t, **options)                # ∂L/∂a_last             (n, out)
    dzs = []
    for layer, activation in zip(reversed(model.layers), reversed(model.activations)):
        dz = activation.backward(grad)                      # ∂L/∂z_i                shape of z_i
        grad = layer.backward(dz)                           # ∂L/∂a_{i-1}            shape of a_{i-1}
        dzs.insert(0, dz)
    grads = {name: getattr(owner, grad) for name, owner, _, grad in model.present}     # dW_i, db_i, …
    return StepValues(zs, acts, value, dzs, grads, grad)


# --- plumbing for the harness (not a stage) ----------------------------------------------

def loss_of(scenario, inputs=None, targets=None, anchor=None):
    """params -> the loss on the scenario's batch (or the one given): what finite differences probe. The elements whose
    gradient is 0 by definition (``frozen``) are held at ``anchor``'s values (default: the scenario's), so that a
    probe moving them moves nothing, and the difference quotient there is the 0 the frameworks define."""
    inputs = scenario.inputs if inputs is None else inputs
    targets = scenario.targets if targets is None else targets
    anchor = scenario.parameters() if anchor is None else anchor
    return lambda params: loss_value(scenario, held(scenario, params, anchor), inputs, targets)


def frozen(scenario):
    """{canonical parameter: row} of the rows whose gradient is 0 by definition rather than by the calculus: an
    embedding's padding_idx row, looked up like any other and never trained (torch's nn.Embedding)."""
    return {f"layers.{i}.weight": spec.hyper["padding_idx"] % spec.weight.shape[0]
            for i, spec in enumerate(scenario.layers) if spec.type == "embedding"
            and spec.hyper["padding_idx"] is not None}


def held(scenario, params, anchor):
    """``params`` with each frozen row replaced by ``anchor``'s (copies: neither is changed)."""
    rows = frozen(scenario)
    if not rows:
        return params
    params = dict(params)
    for name, row in rows.items():
        params[name] = np.array(params[name], copy=True)
        params[name][row] = anchor[name][row]
    return params


def loss_value(scenario, params, inputs, targets):
    """The loss alone at ``params`` on a batch."""
    _, acts = forward(Model(scenario, params), inputs)
    return LOSSES[scenario.loss][0](acts[-1], targets, **scenario.criterion.options())


def loss_and_gradients(scenario, params=None, inputs=None, targets=None):
    """(loss, ∂L/∂params under canonical names) on a batch; nothing is changed.

    params, inputs, targets default to the scenario's own; pass them to evaluate
    elsewhere (a training step, a finite-difference probe).
    """
    model = Model(scenario)
    if params is not None:
        model.set_parameters({name: np.array(value, copy=True) for name, value in params.items()})
    x = np.array(scenario.inputs if inputs is None else inputs, copy=True)        # (n, in) or (n, C, H, W)
    t = scenario.targets if targets is None else targets                           # (n, out)
    values = gradients(model, x, t, scenario.criterion)
    return values.loss, values.grads


def derivative_at_zero(activation, negative_slope, dtype):
    """The hand-derived f'(0) of ``activation`` (reference/activations.py): the reference's convention at a kink."""
    from .layers import Activation
    return float(Activation(activation, negative_slope).derivative(np.zeros(1, dtype=dtype))[0])
