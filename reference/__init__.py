"""The NumPy reference: every backward pass derived by hand. Imports only NumPy."""

from .network import Network, loss_and_gradients, loss_value, run_step
from .train import train
from .scenario import DTYPES, LayerSpec, Scenario

__all__ = ["DTYPES", "LayerSpec", "Network", "Scenario", "loss_and_gradients", "loss_value", "run_step", "train"]
