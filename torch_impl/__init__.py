"""The PyTorch mirror: nn.Linear, torch's activations, autograd and torch.optim.SGD."""

from .network import Network, run_step, train

__all__ = ["Network", "run_step", "train"]
