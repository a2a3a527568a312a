"""backproof: one small network in NumPy, PyTorch and JAX, proven to agree.

    >>> import backproof
    >>> report = backproof.check_scenario(backproof.load("blog-2-3-3-1"))
    >>> report.ok
    True
"""

from .check import ScenarioReport, check_scenario
from .compare import TOLERANCES, Comparison, compare_arrays, compare_traces, first_divergence
from .names import tensor_shapes
from .scenario import ScenarioError, builtin_names, load, parse
from .explain import ExplainError, explain
from .verify import VerifyError, VerifyResult, verify

__all__ = [
    "TOLERANCES", "Comparison", "ExplainError", "ScenarioError", "ScenarioReport", "builtin_names", "check_scenario",
    "VerifyError", "VerifyResult", "compare_arrays", "compare_traces", "explain", "first_divergence", "load",
    "parse",
    "tensor_shapes", "verify",
]
