"""The PyTorch mirror: torch's layers, activations and losses, autograd and torch.optim."""

from .network import (ACTIVATIONS, LAYERS, LOSSES, OPTIMIZERS, Model, derivative_at_zero, forward, gradients,
                      loss_function, run_step, sequential, settings, train, update)

__all__ = ["ACTIVATIONS", "LAYERS", "LOSSES", "OPTIMIZERS", "Model", "derivative_at_zero", "forward", "gradients",
           "loss_function", "run_step", "sequential", "settings", "train", "update"]
