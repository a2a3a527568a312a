"""The JAX mirror: pure functions over Flax-layout params, jax.grad and a jitted step."""

from .network import from_flax, make_step, make_train, run_step, to_flax, train

__all__ = ["from_flax", "make_step", "make_train", "run_step", "to_flax", "train"]
