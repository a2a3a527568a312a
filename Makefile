# The two quick-start commands. Each creates .venv if it is missing and installs
# the pinned dependencies (constraints.txt) before it runs.
#   make compare   run `backproof check` on every built-in scenario
#   make test      run the test suite's fast tier (every feature at least once)
# For developers (docs/development.md):
#   make docs        regenerate docs/ (side-by-side page, tables, evidence) from the code and measurements
#   make calibrate   re-measure the disagreement behind the tolerance table (writes docs/measurements.json)
#   make bench       the speed goals, measured side by side (writes docs/measurements.json)
#   make mutants     the mutation table: planted bugs and where the harness catches them
#   make soak        the random-architecture properties with the long Hypothesis profile
#   make lint        mypy --strict on the public API (CI runs it)
#   make test-all    the whole suite: the fast tier, the tests marked slow and the ci Hypothesis profile (CI runs it)
#   make test-portable  the tests that pin values, trajectories and pages, again under another machine's rounding
PYTHON ?= python3
VENV ?= .venv
NUMPY_VENV ?= .venv-numpy
PIP_FLAGS = --quiet --disable-pip-version-check -c constraints.txt
# Python may cache compiled bytecode (and pytest its rewritten test modules) even where the environment says
# PYTHONDONTWRITEBYTECODE: otherwise every test worker and every `python -m backproof` a test starts compiles
# every module again (make bench measures the suite's time). The caches are git-ignored.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: compare test test-all test-portable test-numpy-only lint docs calibrate bench mutants soak clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[all,docs,test]'
	touch $@

compare: $(VENV)/.installed
	$(VENV)/bin/backproof check

# -n auto: one pytest worker per core (pytest-xdist). The fast tier's budget and its measured time: make bench
# (docs/evidence.md, "Speed").
test: $(VENV)/.installed
	HYPOTHESIS_PROFILE=fast $(VENV)/bin/python -m pytest -q -n auto --dist loadgroup -m "not slow"

test-all: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -n auto --dist loadgroup

# The tests marked portable (they pin values, trajectories or generated pages), under what changes rounding the way
# another machine does: one thread in every BLAS, OpenMP and XLA pool with torch's generic CPU kernels, then each
# framework's every computed value moved by a few ulps (backproof/perturb.py), in float64 and float32 alike.
PORTABLE = $(VENV)/bin/python -m pytest -q -n auto --dist loadgroup -m portable -p no:cacheprovider
test-portable: $(VENV)/.installed
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default \
		XLA_FLAGS=--xla_cpu_multi_thread_eigen=false $(PORTABLE)
	BACKPROOF_PERTURB=torch:4 $(PORTABLE)
	BACKPROOF_PERTURB=jax:4 $(PORTABLE)
	BACKPROOF_PERTURB=numpy:4 $(PORTABLE)

# The public API's type hints, checked strictly: backproof (its re-exports), backproof.testing, the pytest plugin
lint: $(VENV)/.installed
	$(VENV)/bin/python -m mypy --strict --follow-imports=silent --ignore-missing-imports \
		backproof/__init__.py backproof/testing.py backproof/pytest_plugin.py

# The suite in an environment with NumPy and no torch or JAX: their tests must skip, not error.
$(NUMPY_VENV)/.installed: pyproject.toml constraints.txt
	test -x $(NUMPY_VENV)/bin/python || $(PYTHON) -m venv $(NUMPY_VENV)
	$(NUMPY_VENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[test]'
	touch $@

test-numpy-only: $(NUMPY_VENV)/.installed
	BACKPROOF_NUMPY_ONLY=1 $(NUMPY_VENV)/bin/python -m pytest -q -n auto --dist loadgroup

docs: $(VENV)/.installed
	$(VENV)/bin/python -m tools.docs docs

calibrate: $(VENV)/.installed
	$(VENV)/bin/python -m tools.calibrate --write docs/measurements.json
	$(VENV)/bin/python -m tools.calibrate --fd --write docs/measurements.json
	$(VENV)/bin/python -m tools.calibrate --kink-band --write docs/measurements.json

bench: $(VENV)/.installed
	$(VENV)/bin/python -m tools.bench --write docs/measurements.json

mutants: $(VENV)/.installed
	$(VENV)/bin/python -m tools.mutations

soak: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q tests/test_random_architectures.py --hypothesis-profile=long

clean:
	rm -rf $(VENV) $(NUMPY_VENV) *.egg-info .pytest_cache .hypothesis
