"""The NumPy reference: every backward pass derived by hand. Imports only NumPy."""

from .activations import ACTIVATIONS
from .losses import LOSSES
from .layers import LAYERS
from .network import Model, derivative_at_zero, forward, gradients, loss_and_gradients, loss_of, loss_value
from .optim import OPTIMIZERS, update
from .scenario import DTYPES, LayerSpec, Loss, Optimizer, Scenario
from .trace import StepValues, canonical_trace
from .train import run_step, train

__all__ = ["ACTIVATIONS", "DTYPES", "LAYERS", "LOSSES", "derivative_at_zero", "LayerSpec", "Loss", "Model",
           "OPTIMIZERS", "Optimizer", "Scenario",
           "StepValues", "canonical_trace", "forward", "gradients", "loss_and_gradients", "loss_of", "loss_value",
           "run_step", "train", "update"]
