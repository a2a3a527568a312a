"""The JAX mirror: pure functions over Flax-layout params, jax.value_and_grad, jit and lax.scan."""

from .network import (ACTIVATIONS, LOSSES, Model, forward, from_flax, gradients, run_step, sgd, to_flax,
                      train)

__all__ = ["ACTIVATIONS", "LOSSES", "Model", "forward", "from_flax", "gradients", "run_step", "sgd", "to_flax",
           "train"]
