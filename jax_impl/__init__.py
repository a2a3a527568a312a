"""The JAX mirror: pure functions over Flax-layout params, jax.value_and_grad, optax, jit and lax.scan."""

from .network import (ACTIVATIONS, LAYERS, LOSSES, OPTIMIZERS, Model, derivative_at_zero, flatten, forward,
                      from_flax, gradients, loss_function, lowered_step, run_step, to_flax, train, update)

__all__ = ["ACTIVATIONS", "LAYERS", "LOSSES", "OPTIMIZERS", "Model", "derivative_at_zero", "flatten", "forward",
           "from_flax", "gradients", "loss_function", "lowered_step", "run_step", "to_flax", "train", "update"]
