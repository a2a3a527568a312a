"""Shared fixtures: frameworks, scenarios and dtypes, and one cached run per combination."""

import functools
import importlib
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one pytest worker per core (make test): each computes on one thread, or torch's and XLA's thread pools
    # fight over the same cores. Set before torch or JAX is imported; the networks are far too small to care.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# JAX's persistent compilation cache, shared by the workers and kept between runs (git-ignored): most of the suite's
# JAX time is compiling the same small programs again. Keyed by JAX on the program, the backend, the flags and
# jaxlib's version, so a cached program is the program it would compile.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                                               ".pytest_cache", "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest
from hypothesis import settings

import backproof
from backproof import perturb
from backproof.frameworks import FRAMEWORKS, INSTALL_HINTS, MODULES, REQUIRES

NUMPY_ONLY = bool(os.environ.get("BACKPROOF_NUMPY_ONLY"))

# Hypothesis profiles: "ci" is the default (fits the suite's time budget), "long" is for a soak
# (pytest --hypothesis-profile=long). Example counts per property; float32 runs half as many.
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True)
# "fast": make test's tier, 30 examples a property (the float64 numpy ↔ torch one gets 18, the JAX ones 1 each); make
# test-all (CI) runs the ci profile
settings.register_profile("fast", max_examples=30, deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
DTYPES = ("float64", "float32")
# Two computations of one value that round differently (another framework, another BLAS kernel, another summation
# order) are compared with the one tolerance table, never at the rounding level: the last bits depend on the CPU's
# vector unit, the BLAS and the thread count (docs/development.md, "What a test may pin").
STEP_ATOL, STEP_RTOL = backproof.compare.TOLERANCES["float64"]["step"]
PAIRS = (("numpy", "torch"), ("numpy", "jax"), ("torch", "jax"))


def require(framework):
    """The implementation module, or skip the test with the reason and the install hint."""
    for library in REQUIRES[framework]:
        pytest.importorskip(library, reason=f"{library} is not installed; {INSTALL_HINTS[framework]}")
    return perturb.apply(framework, importlib.import_module(MODULES[framework]))


@pytest.fixture(params=FRAMEWORKS)
def framework(request):
    """Each framework's implementation module (skipped when the library is missing)."""
    require(request.param)
    return request.param


@pytest.fixture(params=PAIRS, ids=["numpy-torch", "numpy-jax", "torch-jax"])
def pair(request):
    for name in request.param:
        require(name)
    return request.param


@pytest.fixture(params=backproof.builtin_names())
def scenario_name(request):
    return request.param


def _smooth_names():
    from backproof.kink_conventions import has_exact_kinks
    return [name for name in backproof.builtin_names() if not has_exact_kinks(backproof.load(name))]


SMOOTH = _smooth_names()


@pytest.fixture(params=SMOOTH)
def smooth_scenario_name(request):
    """The built-in scenarios with no pre-activation exactly on a kink: where finite differences are an oracle."""
    return request.param


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


@functools.lru_cache(maxsize=None)
def scenario(name, dtype="float64"):
    """A built-in scenario in ``dtype`` (cached: scenarios are immutable)."""
    return backproof.load(name).with_dtype(dtype)


@functools.lru_cache(maxsize=None)
def trace(framework, name, dtype):
    """One framework's trace of one built-in scenario (cached: each runs once per session)."""
    return require(framework).run_step(scenario(name, dtype))


BUILTINS = set(backproof.builtin_names())

# The files whose tests pin values, trajectories, verdicts or generated pages: `make test-portable` runs them again
# under another machine's rounding (one thread everywhere, torch's generic kernels, each framework moved by a few ulps)
PORTABLE = {"test_agreement.py", "test_training.py", "test_docs.py", "test_expected.py", "test_classification.py",
            "test_explain.py", "test_exact_kinks.py", "test_weights.py", "test_cli.py", "test_verify.py",
            "test_kinks_within_rounding.py", "test_portable.py"}


# make test runs the float32 half of the per-scenario matrix on these (between them: sigmoid, relu, leaky_relu at an
# exact kink, tanh, softmax, identity; mse, half_sse, cross_entropy; sgd, adam, rmsprop); make test-all on every one
FLOAT32_QUICK = {"blog-2-3-3-1", "kink-leaky-relu-2-2-1", "softmax-2-3-3", "spiral-2-16-3-adam", "mixed-3-4-3-2-rmsprop"}

# ... and the float64 half, and the mutation runs, on these: FLOAT32_QUICK, plus the errata (grokking), the kinks
# drawn in training (deep), relu at an exact kink (kink-relu), Nesterov (xor-nesterov), and every layer type (cnn:
# conv2d, both pools, flatten; conv1d-dropout: conv1d, per-side padding, dilation, dropout; layernorm-gelu: layer_norm,
# gelu, silu; batchnorm-mlp: batch_norm1d in training, its running statistics; transformer-prenorm: attention, causal
# mask, residuals, sequence_pool; lstm-gru: both cells' backpropagation through time). Every planted bug shows in
# one of them (tests/test_mutations.py checks it). The six others (rmsprop-defaults, xor-2-3-1-tanh, mixed-3-4-3-2,
# conv-same-even-kernel, conv-stride2-stem, lstm-scalar-3-steps) repeat what these exercise, and their registry rows
# are measured in every tier; make test-all (CI) runs every test on every built-in.
QUICK = FLOAT32_QUICK | {"grokking-3-4-1", "deep-1-2-2-1", "kink-relu-2-2-1", "xor-2-3-1-tanh-nesterov",
                         "cnn-1x8x8-strokes", "conv1d-dropout", "layernorm-gelu-4-6-3", "batchnorm-mlp-3-8-2",
                         "transformer-prenorm-2-heads", "lstm-gru-count-bits"}


def pytest_collection_modifyitems(config, items):
    """Marks the PORTABLE files' tests ``portable``, and the per-scenario tests of the scenarios outside QUICK
    (outside FLOAT32_QUICK in float32) ``slow``. Under pytest-xdist (--dist loadgroup), the tests of one built-in scenario run on one worker: its traces
    and trainings are cached per process, so they are then computed (and JAX compiles them) once, not once per
    worker."""
    for item in items:
        if item.path.name in PORTABLE:
            item.add_marker(pytest.mark.portable)
        params = getattr(getattr(item, "callspec", None), "params", {})
        name = next((params[key] for key in ("scenario_name", "smooth_scenario_name")
                     if isinstance(params.get(key), str)), None)
        quick = FLOAT32_QUICK if params.get("dtype") == "float32" else QUICK
        if name is not None and name not in quick:
            item.add_marker(pytest.mark.slow)
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        name = next((params[key] for key in ("scenario_name", "smooth_scenario_name", "name")
                     if isinstance(params.get(key), str) and params[key] in BUILTINS), None)
        if name and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(f"scenario-{name}"))


# What every xdist worker imports sooner or later: torch (torch.optim's first step brings torch._dynamo), JAX, optax,
# Flax and the three implementations. (matplotlib is not: the report's tests are one xdist group, on one worker.)
LIBRARIES = ("torch", "torch._dynamo", "torch.fx", "jax", "optax", "flax.linen", "flax.nnx", "safetensors.numpy",
             "reference.network", "torch_impl.network", "jax_impl.network")


def pytest_configure(config):
    """An xdist worker imports the libraries first, then freezes what they allocated (gc.freeze): those objects live
    as long as the process, and every full collection of the garbage collector would traverse them all again."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import gc
        for library in LIBRARIES:
            try:
                importlib.import_module(library)
            except ImportError:             # the NumPy-only environment: the tests that need it skip
                pass
        gc.collect()
        gc.freeze()
        gc.set_threshold(500_000, 50, 1_000)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """An xdist worker has sent every result by now: it skips torch's and JAX's teardown at exit (as
    backproof/worker.py does). Registered last, this atexit handler runs first.

    Before that, pytest looks for exceptions raised in finalizers (unraisableexception) with five full collections;
    one here finds them all the same (what it frees is reported), and the frozen rest leaves the five nothing to
    traverse."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import atexit
        import gc
        import sys
        gc.collect()
        gc.freeze()
        atexit.register(lambda: (sys.stdout.flush(), sys.stderr.flush(), os._exit(int(exitstatus))))
