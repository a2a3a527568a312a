"""The network built from a Scenario: its forward pass and its hand-derived gradients.

The stages, in the same names and order as ``torch_impl/network.py`` and
``jax_impl/network.py`` (``backproof read`` prints them side by side):

    ACTIVATIONS                           activations.py  name -> (f, f')
    LOSSES                                losses.py       name -> (L, ∂L/∂y)
    Model                                 here            the scenario's layers, weights copied in
    forward(model, x)                     here            -> ([z_0, …], [a_0, …])
    gradients(model, x, t, loss)          here            -> StepValues, the backward pass by hand
    OPTIMIZERS                            optim.py        name -> update rule, written out by hand
    update(params, grads, state, o)       optim.py        -> (new parameters, new optimizer state)
    run_step(scenario)                    train.py        -> the canonical trace of one step
    train(scenario, epochs)               train.py        -> the loss curve, trained parameters and state
"""

import numpy as np

from .layers import Activation, Dense
from .losses import LOSSES
from .trace import StepValues


class Model:
    """A stack of (Dense, Activation) pairs built from a Scenario's layers; the weights are copied in.

    params: canonical name -> array, used as the weights as they are (not copied), for probes
    that only run forward; default: copies of the scenario's own weights.
    """

    def __init__(self, scenario, params=None):
        if params is None:
            self.dense = [Dense(spec.weight, spec.bias) for spec in scenario.layers]
        else:
            self.dense = [Dense(params[f"layers.{i}.weight"], params.get(f"layers.{i}.bias"), copy=False)
                          for i in range(len(scenario.layers))]
        self.names = [(f"layers.{i}.weight", f"layers.{i}.bias") for i in range(len(self.dense))]
        self.activations = [Activation(spec.activation, spec.negative_slope) for spec in scenario.layers]

    def parameters(self):
        """Canonical name -> array: ``layers.{i}.weight`` (out, in) and ``layers.{i}.bias`` (out,)."""
        params = {}
        for (weight, bias), dense in zip(self.names, self.dense):
            params[weight] = dense.weight
            if dense.bias is not None:
                params[bias] = dense.bias
        return params

    def set_parameters(self, params):
        """Take ``params[canonical name]`` as every weight and bias (the arrays are used, not copied)."""
        for (weight, bias), dense in zip(self.names, self.dense):
            dense.weight = params[weight]
            if dense.bias is not None:
                dense.bias = params[bias]


def forward(model, x):
    """x (n, in) -> ([z_0, …], [a_0, …]); the last a is the network's output."""
    zs, acts = [], []
    a = x
    for dense, activation in zip(model.dense, model.activations):
        z = dense.forward(a)                                # z_i = a_{i-1}·W_iᵀ + b_i   (n, out_i)
        a = activation.forward(z)                           # a_i = f(z_i)              (n, out_i)
        zs.append(z)
        acts.append(a)
    return zs, acts


def gradients(model, x, t, loss):
    """Forward, loss and the hand-derived backward pass on one batch -> StepValues.

    loss: the scenario's ``Loss`` (name and options). Backward runs from the loss down:
    ∂L/∂a_last from the loss, then in each layer ∂L/∂z_i = ∂L/∂a_i ⊙ f'(z_i) (softmax:
    its Jacobian, Activation.backward) and ∂L/∂a_{i-1} = ∂L/∂z_i·W_i (Dense.backward,
    which also leaves dW_i and db_i on the layer).
    """
    loss_fn, loss_grad = LOSSES[loss.name]
    options = loss.options()                                # label_smoothing for cross_entropy, else none
    zs, acts = forward(model, x)
    value = loss_fn(acts[-1], t, **options)
    grad = loss_grad(acts[-1], t, **options)                # ∂L/∂a_last             (n, out)
    dzs = []
    for dense, activation in zip(reversed(model.dense), reversed(model.activations)):
        dz = activation.backward(grad)                      # ∂L/∂z_i                (n, out_i)
        grad = dense.backward(dz)                           # ∂L/∂a_{i-1}            (n, in_i)
        dzs.insert(0, dz)
    grads = {}
    for (weight, bias), dense in zip(model.names, model.dense):
        grads[weight] = dense.weight_grad                   # (out_i, in_i)
        if dense.bias is not None:
            grads[bias] = dense.bias_grad                   # (out_i,)
    return StepValues(zs, acts, value, dzs, grads, grad)


# --- plumbing for the harness (not a stage) ----------------------------------------------

def loss_of(scenario, inputs=None, targets=None):
    """params -> the loss on the scenario's batch (or the one given): what finite differences probe."""
    inputs = scenario.inputs if inputs is None else inputs
    targets = scenario.targets if targets is None else targets
    return lambda params: loss_value(scenario, params, inputs, targets)


def loss_value(scenario, params, inputs, targets):
    """The loss alone at ``params`` on a batch: the function finite differences probe."""
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
    x = np.array(scenario.inputs if inputs is None else inputs, copy=True)        # (n, in)
    t = scenario.targets if targets is None else targets                           # (n, out)
    values = gradients(model, x, t, scenario.criterion)
    return values.loss, values.grads
