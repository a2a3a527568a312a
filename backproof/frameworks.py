"""The three implementations, imported only when they are used.

NumPy is always there. torch and JAX are optional: when one is missing, the
harness reports it as skipped with the command that installs it.
"""

import importlib
from dataclasses import dataclass

FRAMEWORKS = ("numpy", "torch", "jax")

MODULES = {"numpy": "reference", "torch": "torch_impl", "jax": "jax_impl"}
REQUIRES = {"numpy": "numpy", "torch": "torch", "jax": "jax"}
INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "torch": "pip install 'backproof[torch]' -c constraints.txt   (pins torch==2.13.0, the CPU build)",
    "jax": "pip install 'backproof[jax]' -c constraints.txt",
}


@dataclass(frozen=True)
class Skipped:
    """A framework that could not be imported."""

    framework: str
    reason: str

    @property
    def hint(self):
        return INSTALL_HINTS[self.framework]

    def message(self):
        """The report line: what is missing and the command that installs it."""
        return f"skipped {self.framework}: {self.reason}. Install with: {self.hint}"

    def to_json(self):
        return {"framework": self.framework, "reason": self.reason, "hint": self.hint}


def implementation(framework):
    """The implementation module for ``framework``, or a Skipped if its library is missing."""
    if framework not in MODULES:
        raise ValueError(f"unknown framework {framework!r} (known: {', '.join(FRAMEWORKS)})")
    try:
        importlib.import_module(REQUIRES[framework])
    except ImportError as exc:
        return Skipped(framework, f"{REQUIRES[framework]} is not installed ({exc})")
    return importlib.import_module(MODULES[framework])


def parse_frameworks(text):
    """'numpy,torch' -> ('numpy', 'torch'); raises ValueError for an unknown name."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FRAMEWORKS]
    if unknown or not names:
        raise ValueError(f"--frameworks takes a comma-separated list of {', '.join(FRAMEWORKS)}; got {text!r}")
    return tuple(dict.fromkeys(names))
