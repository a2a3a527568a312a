"""The one interface between the harness and each implementation: what ``backproof`` may use of ``reference``,
``torch_impl`` and ``jax_impl``, declared here and nowhere else.

Every implementation package exports the members of ``Implementation`` (its ``__init__``); torch_impl and jax_impl
also those of ``Autodiff``. tests/test_implementations.py checks that each package has them and that no module of
``backproof`` reaches past them (no ``torch_impl.network``, no ``module.network.…``). The tables are the
registries' other half: one entry per name that reference/activations.py, reference/losses.py,
reference/registry.py (layer types, optimizers) declare, checked by tests/test_skeleton.py.
"""

from typing import Protocol, runtime_checkable


@runtime_checkable
class Implementation(Protocol):
    """What the harness runs and probes, in every implementation."""

    ACTIVATIONS: dict       # activation name -> the framework's function or module
    LOSSES: dict            # loss name -> L(y, t)
    LAYERS: dict            # layer type -> how the framework builds or applies it
    OPTIMIZERS: dict        # optimizer name -> the framework's optimizer

    def run_step(self, scenario) -> dict:
        """One forward pass, backward pass and optimizer step -> the canonical trace (NumPy arrays)."""

    def train(self, scenario, epochs=None) -> dict:
        """Epochs of optimizer steps -> ``train.loss``, ``trained.*``."""

    def derivative_at_zero(self, activation, negative_slope, dtype) -> float:
        """d activation / dz at z = 0, from the framework's own activation: its convention at a kink."""


@runtime_checkable
class Autodiff(Implementation, Protocol):
    """What the harness also asks of the autodiff frameworks."""

    def loss_function(self, scenario):
        """(f, params): the scenario's loss as a function of its parameters, in float64, for the framework's own
        gradient checker (torch.autograd.gradcheck, jax.test_util.check_grads)."""
