"""The JAX mirror: pure functions over Flax-layout params, jax.value_and_grad, optax, jit and lax.scan."""

from .network import (ACTIVATIONS, GATES, LAYERS, LOSSES, OPTIMIZERS, Model, derivative_at_zero, flatten, forward,
                      from_flax, gradients, loss_function, lowered_step, run_step, to_flax, to_flax_cell, train,
                      update)

__all__ = ["ACTIVATIONS", "GATES", "LAYERS", "LOSSES", "OPTIMIZERS", "Model", "derivative_at_zero", "flatten",
           "forward", "from_flax", "gradients", "loss_function", "lowered_step", "run_step", "to_flax", "to_flax_cell",
           "train", "update"]
