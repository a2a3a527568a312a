"""The JAX mirror: pure functions over Flax-layout params, jax.value_and_grad, optax, jit and lax.scan."""

from .network import (ACTIVATIONS, LOSSES, OPTIMIZERS, Model, forward, from_flax, gradients, run_step, to_flax,
                      train, update)

__all__ = ["ACTIVATIONS", "LOSSES", "OPTIMIZERS", "Model", "forward", "from_flax", "gradients", "run_step",
           "to_flax", "train", "update"]
