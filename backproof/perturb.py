"""Another machine's rounding, simulated: ``BACKPROOF_PERTURB=torch:4`` (``make test-portable``).

A correct framework on another CPU, BLAS or thread count computes the same tensors to within a few ulps of
what it computes here. With this variable set, every array that one framework's ``run_step`` and ``train``
return is moved by up to that many ulps, elementwise (u·k·ε·|x| with u drawn from {−1, 0, +1}, seeded, so the
same on every run). A test whose verdict changes under it pins the machine, not the math. Unset (the
default), nothing here touches anything.

The hook wraps the implementation module's two entry points once, where the harness loads it
(``frameworks.implementation``, which the worker processes use too, and the tests' ``require``); the
teaching files never see it.
"""

import functools
import os

import numpy as np

VARIABLE = "BACKPROOF_PERTURB"
ENTRY_POINTS = ("run_step", "train")


def setting():
    """(framework, ulps) from BACKPROOF_PERTURB ("torch:4"), or None when it is unset or empty."""
    text = os.environ.get(VARIABLE, "").strip()
    if not text:
        return None
    framework, _, ulps = text.partition(":")
    if not ulps.isdigit():
        raise ValueError(f"{VARIABLE}={text!r}: give FRAMEWORK:ULPS, e.g. torch:4")
    return framework, int(ulps)


def perturbed(value, ulps, rng):
    """``value`` with every floating-point NumPy array moved by up to ``ulps`` ulps (dicts, lists and tuples are
    walked; anything else, Python floats included, is returned as it is)."""
    if isinstance(value, dict):
        return {key: perturbed(item, ulps, rng) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(perturbed(item, ulps, rng) for item in value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        step = ulps * np.finfo(value.dtype).eps * rng.integers(-1, 2, value.shape)
        with np.errstate(invalid="ignore", over="ignore"):
            return np.asarray(value * (1 + step), dtype=value.dtype)      # a 0-d array stays an array
    return value


def apply(framework, module):
    """Wrap ``module``'s entry points when BACKPROOF_PERTURB names ``framework`` (once); returns the module."""
    chosen = setting()
    if chosen is None or chosen[0] != framework or getattr(module, "_backproof_perturbed", False):
        return module
    ulps = chosen[1]
    for name in ENTRY_POINTS:
        original = getattr(module, name)

        @functools.wraps(original)
        def wrapper(*args, _original=original, **kwargs):
            return perturbed(_original(*args, **kwargs), ulps, np.random.default_rng(0))
        setattr(module, name, wrapper)
    module._backproof_perturbed = True
    return module
