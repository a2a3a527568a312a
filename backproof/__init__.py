"""backproof: one small network in NumPy (hand-derived), PyTorch and JAX, proven to agree.

    >>> import backproof
    >>> backproof.check("blog-2-3-3-1").ok
    True

The public API: ``load``/``parse`` (scenario files), ``check``, ``train``, ``verify``,
``verify_layer`` (one layer's hand-written backward pass), ``explain``, ``compare_arrays`` with the one ``TOLERANCES`` table, and ``envelope`` (the
versioned JSON every command prints with ``--json``).
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .check import ScenarioReport, check, check_all, check_scenario
from .compare import TOLERANCES, Comparison, compare_arrays, compare_traces, first_divergence
from .envelope import SCHEMA
from .explain import ExplainError, explain
from .layer_verify import LayerVerifyError, LayerVerifyResult, verify_layer
from .names import tensor_shapes
from .scenario_file import ScenarioError, builtin_names, load, parse
from .training import TrainReport, train
from .verify import VerifyError, VerifyResult, verify

try:
    __version__ = _version("backproof")
except PackageNotFoundError:        # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__", "SCHEMA", "TOLERANCES", "Comparison", "ExplainError", "ScenarioError", "ScenarioReport", "TrainReport",
    "VerifyError", "VerifyResult", "builtin_names", "check", "check_all", "check_scenario", "compare_arrays",
    "compare_traces", "explain", "first_divergence", "load", "parse", "tensor_shapes", "train",
    "verify", "verify_layer", "LayerVerifyError", "LayerVerifyResult",
]
