"""The pytest plugin, registered through the ``pytest11`` entry point: installing backproof is enough.

- Files named ``*.backproof.json`` under the test paths (and any file matching a glob of the ini option
  ``backproof_scenarios``) are collected as tests, one per dtype: ``nets/mynet.backproof.json::float64``
  and ``::float32``. Each runs the whole cross-framework check (``backproof check``: every tensor of one
  step, every printed value, training when the file has a ``train`` block). A failure shows the first
  divergence in one line; ``-v`` adds the full table. A framework that is not installed skips the item
  with the line that installs it. ``--backproof-strict`` makes documented kink conventions and explained
  drifts fail.
- The ``backproof_scenario`` fixture is a factory: ``backproof_scenario("nets/mynet.json", dtype=None)``
  loads and validates a scenario (relative paths from the test's folder).

A scenario file that cannot be loaded is a collection error of one line, naming the file and the field.
"""

import fnmatch
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DTYPES = ("float64", "float32")
SUFFIX = ".backproof.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backproof")
    group.addoption("--backproof-strict", action="store_true", default=False,
                    help="backproof: fail on kink-convention differences and noise-floor drifts too")
    parser.addini("backproof_scenarios", type="linelist", default=[],
                  help="backproof: globs (relative to the rootdir) of scenario files to collect as tests, "
                       "besides *.backproof.json")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> "ScenarioFile | None":
    if file_path.name.endswith(SUFFIX) or _matches_ini(file_path, parent.config):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _matches_ini(path: Path, config: pytest.Config) -> bool:
    globs = config.getini("backproof_scenarios")
    if not globs or path.suffix != ".json":
        return False
    relative = path.relative_to(config.rootpath).as_posix() if path.is_relative_to(config.rootpath) else str(path)
    return any(fnmatch.fnmatch(relative, pattern) for pattern in globs)


class ScenarioLoadError(Exception):
    """A scenario file that cannot be loaded: reported as one line."""


class ScenarioFile(pytest.File):
    def collect(self) -> "Iterator[ScenarioItem]":
        from .scenario_file import ScenarioError, load
        try:
            scenario = load(str(self.path))
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        for dtype in DTYPES:
            yield ScenarioItem.from_parent(self, name=dtype, scenario=scenario, dtype=dtype)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Any, dtype: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario, self.dtype = scenario, dtype
        self.report: Any = None

    def runtest(self) -> None:
        from .frameworks import FRAMEWORKS, INSTALL_HINTS, available
        from .scenario_file import ScenarioError, fit_dtype
        from .testing import assert_agree
        missing = [fw for fw in FRAMEWORKS if not available(fw)]
        if missing:
            pytest.skip("; ".join(f"{fw} is not installed: {INSTALL_HINTS[fw]}" for fw in missing))
        try:
            scenario = fit_dtype(self.scenario, self.dtype, str(self.path))
        except ScenarioError as exc:
            pytest.skip(str(exc))               # e.g. a number float32 cannot hold: no float32 item to run
        strict = self.config.getoption("backproof_strict")
        self.report = assert_agree(scenario, FRAMEWORKS, strict=strict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AssertionError):
            text = str(excinfo.value)
            return text if self.config.get_verbosity() > 0 else text.splitlines()[0]
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> "tuple[Path, None, str]":
        return self.path, None, f"{self.path.name} [{self.dtype}]"


@pytest.fixture
def backproof_scenario(request: pytest.FixtureRequest) -> "Callable[..., Any]":
    """A factory: ``backproof_scenario(name_or_path, dtype=None)`` -> a validated Scenario; a relative path is
    taken from the requesting test's folder, a built-in scenario name as it is."""
    from .scenario_file import builtin_names
    from .testing import load_scenario

    def load(spec: "str | Path", dtype: "str | None" = None) -> Any:
        spec = str(spec)
        if spec not in builtin_names() and not Path(spec).is_absolute():
            spec = str(Path(request.path).parent / spec)
        return load_scenario(spec, dtype)

    return load
