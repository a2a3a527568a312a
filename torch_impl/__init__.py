"""The PyTorch mirror: nn.Linear, torch's activations, autograd and torch.optim.SGD."""

from .network import ACTIVATIONS, LOSSES, Model, forward, gradients, run_step, sgd, train

__all__ = ["ACTIVATIONS", "LOSSES", "Model", "forward", "gradients", "run_step", "sgd", "train"]
