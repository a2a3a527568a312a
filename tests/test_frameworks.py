"""The one run loop: skipped, failed and concurrent frameworks, each reported, never a crash or a hang."""

import functools

import pytest

from backproof.check import run_scenarios
from backproof.compare import compare_arrays
from backproof.frameworks import run_each
from backproof.scenario_file import load
from conftest import NUMPY_ONLY


def test_an_exception_in_one_framework_is_its_error_and_the_others_run():
    def work(name, module):
        if name == "numpy":
            raise RuntimeError("numpy exploded")
        return name
    runs = run_each(work, ("numpy", "torch", "jax"))
    assert runs.errors == {"numpy": "RuntimeError: numpy exploded"}
    assert set(runs.results) | {s.framework for s in runs.skipped} == {"torch", "jax"}


@pytest.mark.slow       # a worker process imports torch; the fast tier sends work to worker processes below
@pytest.mark.skipif(NUMPY_ONLY, reason="concurrency needs more than one framework")
def test_concurrent_results_equal_serial_ones_in_order():
    work = functools.partial(run_scenarios, scenarios=[load("blog-2-3-3-1")], training=False)
    serial = run_each(work, ("numpy", "torch"))
    concurrent = run_each(work, ("numpy", "torch"), parallel=True)       # the slowest first, then the rest
    assert list(concurrent.results) == ["numpy", "torch"] and not concurrent.errors
    for name in serial.results:        # a worker runs on one thread: compared as any two roundings are
        for key, value in serial.results[name][0].trace.items():
            assert compare_arrays(key, "serial", value, "concurrent", concurrent.results[name][0].trace[key],
                                  "float64").ok, (name, key)


@pytest.mark.skipif(NUMPY_ONLY, reason="concurrency needs more than one framework")
def test_work_that_cannot_travel_to_a_process_is_an_error_not_a_crash():
    runs = run_each(lambda name, module: name, ("numpy", "torch"), parallel=True)
    assert set(runs.errors) == {"numpy", "torch"} and not runs.results
    assert "cannot be sent to a worker process" in runs.errors["numpy"]


@pytest.mark.xdist_group("mutations")
def test_pytest_xdist_keeps_a_group_on_one_worker(request):
    """Under ``--dist loadgroup`` (make test), pytest-xdist adds a test's group to its node id, which is how it keeps
    a built-in scenario's tests, or the mutation runs and the pages made from them, on one worker that computes them
    once. pytest 9 with pytest-xdist 3.8 silently lost that (constraints.txt pins pytest 8.4)."""
    if not request.config.getoption("dist", "no") == "loadgroup" and not request.config.getvalue("loadgroup"):
        pytest.skip("runs under pytest-xdist's --dist loadgroup (make test)")
    assert request.node.nodeid.endswith("@mutations"), request.node.nodeid
