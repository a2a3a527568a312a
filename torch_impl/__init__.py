"""The PyTorch mirror: nn.Linear, torch's activations and losses, autograd and torch.optim."""

from .network import ACTIVATIONS, LOSSES, OPTIMIZERS, Model, forward, gradients, run_step, train, update

__all__ = ["ACTIVATIONS", "LOSSES", "OPTIMIZERS", "Model", "forward", "gradients", "run_step", "train", "update"]
