"""`backproof verify` cannot be fooled: a gradient function that exits, interrupts, hangs, prints, or returns
complex, integer, object or non-finite values gets a named verdict, never exit 0 (tests/bad_functions/)."""

import json
from pathlib import Path

import pytest

from backproof.cli import main
from conftest import NUMPY_ONLY

CORPUS = Path(__file__).parent / "bad_functions"
ORACLES = "numpy"       # the answer is the subject, not the oracle: the reference judges it (torch and JAX: test_verify.py)

# file -> (exit code, what the one line on stderr or the verdict must say)
CASES = {
    "exits.py": (2, "exits.py:gradients called sys.exit(0) instead of returning"),
    "interrupts.py": (2, "interrupts.py:gradients raised KeyboardInterrupt"),
    "hangs.py": (2, "hangs.py:gradients did not return within 0.5 s"),
    "hangs_on_import.py": (2, "hangs_on_import.py: cannot be imported: "),
    "complex.py": (2, "the gradient for layers.0.weight is complex (complex128)"),
    "integer.py": (2, "the gradient for layers.0.weight has the int64 dtype"),
    "objects.py": (2, "the gradient for layers.0.weight is not an array of numbers"),
    "infinite.py": (1, "your gradient for layers.1.weight is not finite: layers.1.weight[0,2] = inf"),
    "nan.py": (1, "your gradient for layers.0.weight is not finite: layers.0.weight[1,1] = nan"),
}


def verify(filename, capsys, *extra):
    """The CLI's verify of the corpus file's gradients: half a second for the ones that hang (the timeout is what
    they test), and room for a loaded machine for the others, whose verdict must not depend on it."""
    timeout = "0.5" if filename.startswith("hangs") else "30"
    code = main(["verify", f"{CORPUS / filename}:gradients", "grokking-3-4-1", "--frameworks", ORACLES,
                 "--timeout", timeout, *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("filename", sorted(CASES))
def test_a_hostile_function_gets_a_named_verdict(filename, capsys):
    expected_code, message = CASES[filename]
    source = (CORPUS / filename).read_text()
    code, out, err = verify(filename, capsys)
    assert code == expected_code, out + err
    if code == 2:
        lines = [line for line in err.splitlines() if not line.startswith("warning:")]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
        assert out == ""
    else:
        assert message in out and "verdict: FAIL" in out, out
    assert (CORPUS / filename).read_text() == source


def test_what_the_function_prints_never_reaches_the_json(capsys):
    code, out, err = verify("prints.py", capsys, "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    assert "debugging output that must not reach --json" in err


def test_a_non_finite_gradient_fails_in_the_json_too(capsys):
    code, out, err = verify("infinite.py", capsys, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert any("not finite" in note for note in doc["results"][0]["verify"]["notes"])


@pytest.mark.slow       # the child imports torch itself: the fast tier converts the same tensors in-process below
def test_torch_tensors_that_require_grad_are_accepted(capsys):
    pytest.importorskip("torch", reason="torch is not installed")
    code, out, err = verify("torch_tensors.py", capsys, "--timeout", "30")   # the child imports torch itself
    assert code == 0, out + err
    assert "verdict: OK" in out


@pytest.mark.slow       # the child imports JAX: the fast tier names a float32 answer in-process below
def test_a_float32_answer_for_a_float64_scenario_is_named(capsys):
    pytest.importorskip("jax", reason="jax is not installed")
    code, out, err = verify("jax_float32.py", capsys, "--timeout", "30")     # the child imports JAX itself
    assert code == 1, out + err
    assert "your gradient for layers.0.weight is float32, the scenario float64" in out


def test_tensors_and_lower_dtypes_are_converted_and_named_in_process(monkeypatch):
    """The conversion the child applies (sandbox.as_array), from Python: torch tensors that require grad and a float32
    answer for a float64 scenario."""
    import backproof
    monkeypatch.syspath_prepend(str(CORPUS))
    from _correct import correct
    torch = pytest.importorskip("torch", reason="torch is not installed")

    def tensors(params, inputs, targets):
        return {name: torch.tensor(value, requires_grad=True) * 1.0 for name, value in
                correct(params, inputs, targets).items()}

    def float32(params, inputs, targets):
        return {name: value.astype("float32") for name, value in correct(params, inputs, targets).items()}

    assert backproof.verify(tensors, "grokking-3-4-1", ORACLES).ok
    result = backproof.verify(float32, "grokking-3-4-1", ORACLES)
    assert "your gradient for layers.0.weight is float32, the scenario float64" in str(result)
