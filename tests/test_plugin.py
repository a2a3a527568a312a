"""The pytest plugin (pytest's own pytester) and backproof.testing, on a user's project."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from backproof.frameworks import FRAMEWORKS, available
from backproof.scenario_file import builtin_dir

PROJECT = Path(__file__).resolve().parent.parent / "examples" / "pytest-project"
ALL_THREE = all(available(fw) for fw in FRAMEWORKS)
needs_all = pytest.mark.skipif(not ALL_THREE, reason="the cross-framework items need torch and JAX")
pytestmark = pytest.mark.xdist_group("plugin")


def project(pytester):
    shutil.copytree(PROJECT, pytester.path, dirs_exist_ok=True)
    return pytester


@pytest.fixture(autouse=True, scope="module")
def frameworks_warmed_up_before_pytester():
    """pytester's in-process runs put sys.modules back as they found it, and torch's lazily imported parts
    (torch.optim brings torch._dynamo) cannot be imported twice in one process. One run of the example's
    workload here imports them all before the first pytester run takes its snapshot."""
    if ALL_THREE:
        from backproof.testing import assert_agree
        assert_agree(str(PROJECT / "scenarios" / "tiny-2-2-1.json"))
        assert_agree("kink-leaky-relu-2-2-1")


@needs_all
def test_the_example_project_collects_scenarios_per_dtype_and_passes(pytester):
    result = project(pytester).runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*nets/blog.backproof.json::float64 PASSED*",
                                 "*nets/blog.backproof.json::float32 PASSED*",
                                 "*scenarios/tiny-2-2-1.json::float64 PASSED*",
                                 "*test_gradients.py::test_my_gradients_are_right PASSED*"])


@needs_all
def test_a_failure_names_the_first_divergence_and_v_shows_the_table(pytester):
    project(pytester)
    shutil.copy(builtin_dir() / "kink-leaky-relu-2-2-1.json", pytester.path / "nets" / "kink.backproof.json")
    pytester.runpytest("nets/kink.backproof.json", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    result = pytester.runpytest("nets/kink.backproof.json", "--backproof-strict", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*first divergence: kink-leaky-relu-2-2-1: layers.0.dz (backward), numpy vs jax, "
                                 "max |Δ| *"])
    assert "numpy↔torch" not in result.stdout.str()              # one line without -v …
    verbose = pytester.runpytest("nets/kink.backproof.json", "--backproof-strict", "-v", "-p", "no:cacheprovider")
    assert "numpy↔torch" in verbose.stdout.str()                  # … the table with it


@needs_all
def test_a_missed_printed_value_fails_naming_it(pytester):
    project(pytester)
    path = pytester.path / "nets" / "blog.backproof.json"
    document = json.loads(path.read_text())
    document["expected"]["loss"]["value"] = 0.4
    path.write_text(json.dumps(document))
    result = pytester.runpytest("nets/blog.backproof.json", "-k", "float64", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*printed value missed: loss -> loss: printed 0.4, computed 0.3148*"])


def test_a_bad_scenario_file_is_one_collection_error(pytester):
    (pytester.path / "bad.backproof.json").write_text(
        (Path(__file__).parent / "bad_scenarios" / "shape-chain.json").read_text())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "bad.backproof.json: layers[1].weight has 2 columns but layers[0] has 3 outputs\n" in result.stdout.str()


def test_without_a_framework_the_items_skip_with_the_install_line(pytester):
    if ALL_THREE:
        pytest.skip("torch and JAX are installed here; `make test-numpy-only` runs this where they are missing")
    result = project(pytester).runpytest("nets", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    assert "torch is not installed: pip install 'backproof[torch]'" in result.stdout.str()


@needs_all
def test_the_assertions_raise_with_the_reports_first_line():
    from backproof.testing import assert_agree, assert_gradients, assert_printed_values
    assert assert_agree("blog-2-3-3-1").ok and assert_printed_values("blog-2-3-3-1")
    with pytest.raises(AssertionError, match=r"^first divergence: kink-leaky-relu-2-2-1: layers\.0\.dz"):
        assert_agree("kink-leaky-relu-2-2-1", strict=True)
    spec = importlib.util.spec_from_file_location("user_gradients", PROJECT / "test_gradients.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scenario = str(PROJECT / "scenarios" / "tiny-2-2-1.json")
    assert assert_gradients(module.gradients, scenario).ok
    halved = lambda p, x, t: {k: v / 2 for k, v in module.gradients(p, x, t).items()}      # noqa: E731
    with pytest.raises(AssertionError, match=r"^verdict: FAIL — layers\.0\.weight: 4 of 4 elements wrong"):
        assert_gradients(halved, scenario)
