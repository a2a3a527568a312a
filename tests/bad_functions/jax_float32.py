import jax.numpy as jnp

from _correct import correct


def gradients(params, inputs, targets):
    """Right values, silently computed in float32 (JAX's default) for a float64 scenario."""
    return {name: jnp.asarray(value) for name, value in correct(params, inputs, targets).items()}
