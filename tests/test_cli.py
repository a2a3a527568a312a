"""The check command end to end: the table, --json, exit codes, skipped frameworks."""

import json
import subprocess
import sys
from pathlib import Path

from backproof.cli import main
from conftest import NUMPY_ONLY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sigmoid-2-3-2.json"


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# where torch and JAX are missing (make test-numpy-only) a check of all three compares nothing: NOT COMPARED, exit 4
EXPECTED_CODE, EXPECTED_VERDICT = (4, "verdict: NOT COMPARED") if NUMPY_ONLY else (0, "verdict: OK")


def test_check_blog_prints_table_expected_and_verdict(capsys):
    code, out, err = run(["check", "blog-2-3-3-1"], capsys)
    assert code == EXPECTED_CODE, out + err
    assert "== blog-2-3-3-1 ==" in out
    assert "grad.layers.0.weight" in out and "updated.layers.2.bias" in out
    assert "grad.w17" in out and "erratum confirmed" in out
    assert EXPECTED_VERDICT in out


def test_check_json_for_a_hand_written_scenario(capsys):
    """Sigmoid hidden layers, two outputs, half_sse: written by hand, not a built-in."""
    code, out, err = run(["check", str(EXAMPLE), "--json"], capsys)
    doc = json.loads(out)
    assert code == (0 if doc["ok"] else EXPECTED_CODE if NUMPY_ONLY else 1)
    (report,) = doc["results"]
    assert report["scenario"] == "sigmoid-2-3-2"
    assert set(report) >= {"scenario", "ok", "frameworks", "step", "expected", "training"}
    assert list(report["frameworks"]) == ["numpy", "torch", "jax"]
    step = report["step"]
    assert len(step["tensors"]["output"]["numpy"][0]) == 2
    for cs in step["comparisons"].values():
        for c in cs:
            assert set(c) >= {"a", "b", "max_abs", "max_rel", "ok"}
    assert doc["ok"] is (not NUMPY_ONLY) and step["first_divergence"] is None
    assert report["coverage"] == ("not compared" if NUMPY_ONLY else "compared")
    assert code == EXPECTED_CODE


def test_float32_override(capsys):
    code, out, _ = run(["check", "blog-2-3-3-1", "--dtype", "float32", "--json"], capsys)
    doc = json.loads(out)
    assert code == EXPECTED_CODE and doc["results"][0]["dtype"] == "float32"


def test_a_missed_printed_value_exits_1(tmp_path, capsys):
    doc = json.loads(EXAMPLE.read_text())
    doc["expected"] = {"loss": {"value": 123.0, "atol": 1e-3}}
    path = tmp_path / "miss.json"
    path.write_text(json.dumps(doc))
    code, out, _ = run(["check", str(path)], capsys)
    assert code == 1
    assert "printed values missed: loss" in out


def test_missing_frameworks_are_skipped_with_an_install_hint_and_nothing_compared_is_not_ok():
    """torch and JAX made unimportable for this process only: the check still runs, with a hint, and the printed
    values are still checked; but nothing was compared, so it never says "agree" and exits 4 (NOT COMPARED). Asking
    for NumPy alone is OK (exit 0); requiring torch fails (exit 1)."""
    code = ("import sys, io, contextlib; sys.modules['torch'] = None; sys.modules['jax'] = None\n"
            "from backproof.cli import main\n"
            "for argv in (['check', 'blog-2-3-3-1'], ['check', 'blog-2-3-3-1', '--frameworks', 'numpy'],\n"
            "             ['check', 'blog-2-3-3-1', '--require', 'numpy,torch'],\n"
            "             ['train', 'grokking-3-4-1', '--epochs', '2']):\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out):\n"
            "        code = main(argv)\n"
            "    print(repr((code, out.getvalue())))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    import ast
    (default, out), (alone, out_alone), (required, out_required), (trained, out_trained) = [
        ast.literal_eval(line) for line in result.stdout.splitlines()]
    assert default == 4, out
    assert "skipped torch: torch is not installed" in out
    assert "pip install 'backproof[torch]' -c constraints.txt" in out
    assert "skipped jax" in out
    assert "verdict: NOT COMPARED — only numpy ran" in out and "agree" not in out
    assert "15 printed values match" in out                  # the printed values are checked all the same
    assert alone == 0 and "verdict: OK — only numpy ran, as asked" in out_alone, out_alone
    assert required == 1 and "required but did not run: torch" in out_required, out_required
    assert trained == 4 and "verdict: NOT COMPARED" in out_trained, out_trained


def test_the_api_refuses_what_the_cli_refuses():
    """An empty or unknown framework list is a ValueError from every entry point, never ok=True with nothing
    compared (hostile probe: check(path, frameworks=[]) was OK with a wrong printed value)."""
    import pytest

    import backproof
    for frameworks in ([], (), "", "numpy,tensorflow", [None]):
        with pytest.raises(ValueError, match="frameworks"):
            backproof.check("blog-2-3-3-1", frameworks=frameworks)
        with pytest.raises(ValueError, match="frameworks"):
            backproof.train("grokking-3-4-1", frameworks=frameworks, epochs=1)
    with pytest.raises(ValueError, match="frameworks"):
        backproof.verify(lambda p, x, t: {}, "blog-2-3-3-1", frameworks=[])


def test_numpy_only_environment_really_lacks_torch_and_jax():
    """Run by `make test-numpy-only`: prove the environment is what it claims to be."""
    if not NUMPY_ONLY:
        import pytest
        pytest.skip("only meaningful in the NumPy-only environment (make test-numpy-only)")
    import importlib.util
    assert importlib.util.find_spec("torch") is None
    assert importlib.util.find_spec("jax") is None


def test_check_never_writes_the_scenario_file(tmp_path, capsys):
    path = tmp_path / "copy.json"
    path.write_bytes(EXAMPLE.read_bytes())
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    run(["check", str(path), "--json"], capsys)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_train_command_json_and_table(capsys):
    frameworks = ["--frameworks", "numpy"] if NUMPY_ONLY else []
    code, out, err = run(["train", "grokking-3-4-1", "--json", "--finite-differences", *frameworks], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["ok"]
    training = doc["results"][0]["training"]
    assert training["epochs"] == 60 and training["batch_size"] == 1
    assert len(training["tensors"]["train.loss"]["numpy"]) == 60
    assert len(training["tensors"]["train.loss"]["numpy+fd"]) == 60
    code, out, _ = run(["train", "deep-1-2-2-1", "--epochs", "20", "--frameworks", "numpy"], capsys)
    assert code == 0
    assert "mean loss per epoch" in out and "kinks" in out and "before training" in out


def test_train_needs_epochs_somewhere(capsys):
    code, _, err = run(["train", "blog-2-3-3-1"], capsys)
    assert code == 2 and "train is missing" in err


def test_version_is_one_line_with_the_libraries_found(capsys):
    import importlib.metadata
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"backproof {importlib.metadata.version('backproof')} (numpy ")
    from backproof import __version__
    assert __version__ == importlib.metadata.version("backproof")


def test_the_python_reports_print_what_the_cli_prints_and_repr_in_one_line(capsys):
    """str(report) is the CLI's text; repr is one short line; .verdict is the verdict line (issue: a notebook cell
    showed a 27,000-character dataclass dump)."""
    import backproof
    report = backproof.check("blog-2-3-3-1", frameworks="numpy")
    assert main(["check", "blog-2-3-3-1", "--frameworks", "numpy"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(report) + "\n") and out.endswith("1 of 1 scenarios OK\n")
    assert repr(report) == "<ScenarioReport blog-2-3-3-1 float64: OK, 24 tensors, 1 framework>"
    assert report.verdict.startswith("verdict: OK") and report.verdict in str(report)
    trained = backproof.train("deep-1-2-2-1", frameworks="numpy", epochs=3)
    assert main(["train", "deep-1-2-2-1", "--frameworks", "numpy", "--epochs", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(trained).strip()
    assert repr(trained) == "<TrainReport deep-1-2-2-1 float64: OK, 3 epochs, 1 framework>"
    assert trained.verdict in str(trained)


def test_list_keeps_its_columns_aligned_whatever_the_longest_name(capsys):
    """Each column of `backproof list` starts at one offset on every line: the name column is as wide as the longest
    built-in's name (transformer-prenorm-2-heads overflowed a fixed 24), the shape column as the longest shape."""
    from backproof.scenario_file import builtin_names
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(builtin_names())
    names = max(len(name) for name in builtin_names())
    assert all(line[names] == " " and line[names + 1] != " " for line in lines), lines


def test_read_takes_stage_names_in_any_case_and_suggests_the_near_one(capsys):
    """`read optimizers` is OPTIMIZERS; a misspelt stage is refused with the near one named (exit 2, one line)."""
    assert main(["read", "optimizers", "--width", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== OPTIMIZERS ==") and "Adagrad" in out.splitlines()[0]
    assert main(["read", "optimiser"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'optimiser' is not a stage; did you mean OPTIMIZERS?" in err
