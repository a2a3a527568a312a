"""backproof.verify and `backproof verify`: your gradient code against torch, JAX and finite differences."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backproof
from backproof.cli import main
from backproof.verify import FD
from conftest import NUMPY_ONLY, SMOOTH, require, scenario
from reference.network import loss_and_gradients

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import post001_gradients  # noqa: E402
import spiral_gradients  # noqa: E402

ORACLES = ("numpy",) if NUMPY_ONLY else ("torch", "jax")


def reference_gradients(params, inputs, targets, name="blog-2-3-3-1"):
    """A correct gradient function for any scenario: the reference's own backward pass."""
    sc = scenario(name).with_parameters(params)
    return loss_and_gradients(sc, inputs=inputs, targets=targets)[1]


def test_post_001_formulas_pass_against_every_oracle(dtype):
    result = backproof.verify(post001_gradients.gradients, scenario("grokking-3-4-1", dtype), ORACLES)
    assert result.ok, str(result)
    assert result.oracles == [*ORACLES, FD]
    assert {(c.parameter, c.oracle) for c in result.checks} == {
        (p, o) for p in ("layers.0.weight", "layers.1.weight") for o in result.oracles}
    assert all(c.checked == c.size for c in result.checks)
    assert result.directions is not None and result.directions.ok and len(result.directions.numeric) == 8
    assert "verdict: OK" in str(result)


def test_hand_derived_cross_entropy_passes_and_summing_over_rows_is_caught():
    """Softmax cross-entropy on class indices: the targets arrive as one-hot rows, and the classic slip of summing
    over the 60 rows instead of averaging is wrong in every element that is not 0, against every oracle."""
    sc = scenario("spiral-2-16-3-adam")
    assert backproof.verify(spiral_gradients.gradients, sc, ORACLES).ok
    result = backproof.verify(spiral_gradients.gradients_summed, sc, ORACLES)
    assert not result.ok
    wrong = {c.parameter for c in result.checks if not c.ok}
    assert wrong == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}


def test_relu_slope_one_is_caught_and_located():
    result = backproof.verify(post001_gradients.gradients_relu_slope_one, "grokking-3-4-1", ORACLES)
    assert not result.ok
    assert {c.parameter for c in result.failures} == {"layers.0.weight"}
    assert {c.oracle for c in result.failures} == set(result.oracles)
    # the wrong elements are exactly those whose unit was inactive (z ≤ 0) for some row with x ≠ 0
    sc = scenario("grokking-3-4-1")
    z = sc.inputs @ sc.layers[0].weight.T                       # (4 rows, 4 units)
    expected = {(j, i) for j in range(4) for i in range(3)
                if any(z[r, j] <= 0 and sc.inputs[r, i] != 0 for r in range(4))}
    _, grads = loss_and_gradients(sc)
    wrong = post001_gradients.gradients_relu_slope_one(
        {k: np.array(v) for k, v in sc.parameters().items()}, sc.inputs, sc.targets)["layers.0.weight"]
    # an element with canceling row contributions would look right; none does here
    expected = {e for e in expected if abs(wrong[e] - grads["layers.0.weight"][e]) > 1e-9}
    for check in result.failures:
        assert set(check.wrong) == expected and check.wrong_count == len(expected), check
        assert check.worst_index in expected
    assert "layers.0.weight" in str(result) and "elements wrong" in str(result)
    assert not result.directions.ok


def test_a_conv_networks_gradients_are_verified_and_a_flipped_kernel_gradient_is_caught():
    """conv-stride2-stem: the reference's own gradients pass against every oracle; the conv weight's gradient flipped
    in both spatial axes (a convolution's where the forward is a cross-correlation) fails at every element that the
    flip moves, and nowhere else."""
    sc = scenario("conv-stride2-stem")

    def correct(params, inputs, targets):
        return loss_and_gradients(sc, params, inputs, targets)[1]

    def flipped(params, inputs, targets):
        grads = correct(params, inputs, targets)
        return dict(grads, **{"layers.0.weight": grads["layers.0.weight"][..., ::-1, ::-1]})

    assert backproof.verify(correct, sc, ORACLES).ok
    result = backproof.verify(flipped, sc, ORACLES)
    assert not result.ok and {c.parameter for c in result.failures} == {"layers.0.weight"}
    true = correct({k: np.array(v) for k, v in sc.parameters().items()}, sc.inputs, sc.targets)["layers.0.weight"]
    moved = {tuple(int(i) for i in index) for index in np.argwhere(~np.isclose(true, true[..., ::-1, ::-1],
                                                                                rtol=1e-6, atol=1e-12))}
    for check in result.failures:           # ``wrong`` lists the first 20 of them
        assert set(check.wrong) <= moved and check.wrong_count == len(moved) and len(check.wrong) == 20


def test_one_element_off_by_1e_4_relative_is_named_by_every_oracle():
    name, index = "layers.1.weight", (0, 0)      # w7; (any element whose gradient is not 0)

    def off_by_one_element(params, inputs, targets):
        grads = reference_gradients(params, inputs, targets)
        grads[name][index] *= 1 + 1e-4
        return grads

    result = backproof.verify(off_by_one_element, "blog-2-3-3-1", ORACLES)
    assert not result.ok
    for check in result.failures:
        assert (check.parameter, check.worst_index, check.wrong) == (name, index, (index,))
    assert {c.oracle for c in result.failures} == set(result.oracles)


def test_large_networks_sample_coordinates_and_still_check_every_element_by_direction():
    def missing_one_bias_row(params, inputs, targets):
        grads = reference_gradients(params, inputs, targets)
        grads["layers.0.bias"] = grads["layers.0.bias"] * 0.5
        return grads

    result = backproof.verify(missing_one_bias_row, "blog-2-3-3-1", ("numpy",), max_coordinates=6)
    fd = [c for c in result.checks if c.oracle == FD]
    assert sum(c.checked for c in fd) < sum(c.size for c in fd)
    assert all(c.checked >= 1 for c in fd)
    assert not result.ok and not result.directions.ok


def test_the_callers_arrays_and_the_scenario_stay_untouched():
    sc = scenario("blog-2-3-3-1")
    before = {k: v.copy() for k, v in sc.parameters().items()}

    def scribbles(params, inputs, targets):
        grads = reference_gradients(params, inputs, targets)
        for value in params.values():
            value += 1.0            # writes to its own copies
        inputs[:] = 0
        return grads

    assert backproof.verify(scribbles, sc, ORACLES).ok
    for k, v in sc.parameters().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("answer, message", [
    (lambda g: [1, 2], "returned list"),
    (lambda g: {k: v for k, v in g.items() if k != "layers.2.bias"}, "layers.2.bias is missing"),
    (lambda g: {**g, "layers.9.weight": g["layers.0.weight"]}, "layers.9.weight is not a parameter"),
    (lambda g: {**g, "layers.0.weight": g["layers.0.weight"].T}, "layers.0.weight has shape (2, 3), expected (3, 2)"),
    (lambda g: {**g, "layers.1.bias": "abc"}, "layers.1.bias is not an array of numbers"),
])
def test_bad_answers_are_one_line_errors(answer, message):
    def grad_fn(params, inputs, targets):
        return answer(reference_gradients(params, inputs, targets))

    with pytest.raises(backproof.VerifyError) as info:
        backproof.verify(grad_fn, "blog-2-3-3-1", ORACLES)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_gradient_function_that_raises_is_a_one_line_error():
    def broken(params, inputs, targets):
        return {"layers.0.weight": params["nope"]}

    with pytest.raises(backproof.VerifyError, match=r"^broken raised KeyError: 'nope'$"):
        backproof.verify(broken, "blog-2-3-3-1", ORACLES)


# --- the command ---------------------------------------------------------------------------

EXAMPLE = str(ROOT / "examples" / "post001_gradients.py")


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def frameworks():
    return ["--frameworks", ",".join(ORACLES)]


def test_cli_passes_post_001_and_fails_the_wrong_relu(capsys):
    code, out, err = run(["verify", f"{EXAMPLE}:gradients", "grokking-3-4-1", *frameworks()], capsys)
    assert code == 0, out + err
    assert "verdict: OK" in out
    code, out, err = run(["verify", f"{EXAMPLE}:gradients_relu_slope_one", "grokking-3-4-1", *frameworks(), "--json"],
                         capsys)
    assert code == 1, out + err
    doc = json.loads(out)
    assert doc["ok"] is False
    checks = doc["results"][0]["verify"]["checks"]
    failing = {parameter for parameter, by_oracle in checks.items() if not all(c["ok"] for c in by_oracle.values())}
    assert failing == {"layers.0.weight"}
    assert all(len(c["worst_index"]) == 2 for c in checks["layers.0.weight"].values() if not c["ok"])


def test_code_run_in_the_child_may_import_backproof_itself(tmp_path, capsys):
    """The child starts without backproof's __init__ (backproof/sandbox.py, CHILD); a user's module that imports the
    package gets the whole of it."""
    (tmp_path / "uses_backproof.py").write_text(
        "import backproof\n"
        "from reference.network import loss_and_gradients\n"
        "SCENARIO = backproof.load('grokking-3-4-1')\n"
        "def gradients(params, inputs, targets):\n"
        "    assert callable(backproof.check) and callable(backproof.compare_arrays)\n"
        "    return loss_and_gradients(SCENARIO, params, inputs, targets)[1]\n")
    code, out, err = run(["verify", f"{tmp_path / 'uses_backproof.py'}:gradients", "grokking-3-4-1",
                          "--frameworks", "numpy"], capsys)
    assert code == 0 and "verdict: OK" in out, out + err


BAD_MODULES = {
    "syntax.py": ("def gradients(params, inputs, targets)\n    return {}\n", "cannot be imported: SyntaxError"),
    "raises.py": ("raise RuntimeError('no import for you')\n", "cannot be imported: RuntimeError: no import for you"),
    "missing_import.py": ("import no_such_module_anywhere\n", "cannot be imported: ModuleNotFoundError"),
    "exits.py": ("import sys\nsys.exit(3)\n", "cannot be imported: SystemExit"),
    "exits_in_function.py": ("import sys\ndef gradients(params, inputs, targets):\n    sys.exit(0)\n",
                             "gradients called sys.exit(0) instead of returning"),
    "raises_system_exit.py": ("def gradients(params, inputs, targets):\n    raise SystemExit\n",
                              "gradients called sys.exit(None) instead of returning"),
    "not_callable.py": ("gradients = 42\n", "gradients is a int, not a function"),
    "shape.py": ("import numpy as np\ndef gradients(params, inputs, targets):\n"
                 "    return {k: np.zeros(v.T.shape) for k, v in params.items()}\n",
                 "layers.0.weight has shape (3, 4), expected (4, 3)"),
    "missing_name.py": ("import numpy as np\ndef gradients(params, inputs, targets):\n"
                        "    return {'layers.0.weight': np.zeros((4, 3))}\n", "layers.1.weight is missing"),
}


@pytest.mark.parametrize("filename", sorted(BAD_MODULES))
def test_cli_bad_targets_exit_2_with_one_line(filename, tmp_path, capsys):
    source, message = BAD_MODULES[filename]
    path = tmp_path / filename
    path.write_text(source)
    code, out, err = run(["verify", f"{path}:gradients", "grokking-3-4-1", *frameworks()], capsys)
    assert code == 2, out + err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert path.read_text() == source


@pytest.mark.parametrize("target, message", [
    ("nowhere/at_all.py:gradients", "nowhere/at_all.py: no such file"),
    (f"{EXAMPLE}:no_such_function", "has no function 'no_such_function'"),
    (EXAMPLE, "give the function as MODULE.py:FUNCTION"),
    ("no_such_package_xyz:gradients", "cannot be imported: ModuleNotFoundError"),
])
def test_cli_bad_target_spellings_exit_2(target, message, capsys):
    code, out, err = run(["verify", target, "grokking-3-4-1"], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_cli_bad_scenario_exits_2(capsys):
    code, out, err = run(["verify", f"{EXAMPLE}:gradients", "no-such-scenario"], capsys)
    assert code == 2 and "no-such-scenario: no such file or built-in scenario" in err


def test_infinite_gradients_fail_even_where_finite_differences_are_left_out(capsys, tmp_path):
    """On an exact-kink scenario only autodiff judges: an inf must not 'agree' with its finite values."""
    path = tmp_path / "infinite.py"
    path.write_text("import numpy as np\ndef gradients(params, inputs, targets):\n"
                    "    return {k: np.full(v.shape, np.inf) for k, v in params.items()}\n")
    code, out, err = run(["verify", f"{path}:gradients", "kink-relu-2-2-1", *frameworks()], capsys)
    assert code == 1, out + err
    assert "verdict: FAIL" in out and "finite differences left out" in out


# --- the established checkers: torch.autograd.gradcheck and jax.test_util.check_grads ---------------------

@pytest.mark.parametrize("smooth_scenario_name", SMOOTH)
def test_gradcheck_passes_on_every_smooth_built_in(smooth_scenario_name):
    """torch.autograd.gradcheck on torch_impl's loss as a function of the parameters, float64: it passes on every
    built-in scenario where finite differences are an oracle (make test: the QUICK ones)."""
    from backproof.verify import torch_gradcheck
    passed, detail = torch_gradcheck(require("torch").network.loss_function, scenario(smooth_scenario_name))
    assert passed, detail


@pytest.mark.parametrize("name", ["blog-2-3-3-1", pytest.param("softmax-2-3-3", marks=pytest.mark.slow),
                                  pytest.param("spiral-2-16-3-adam", marks=pytest.mark.slow)])
def test_check_grads_passes(name):
    """jax.test_util.check_grads (order 1, reverse mode) on jax_impl's loss: on the sigmoid/relu network, the
    softmax layer and the cross-entropy classifier (each check compiles for ~0.5 s: three, not every smooth
    built-in, to keep within the suite's time budget; `backproof verify --oracles check_grads` runs it on any)."""
    from backproof.verify import jax_check_grads
    from conftest import require
    passed, detail = jax_check_grads(require("jax").network.loss_function, scenario(name))
    assert passed, detail


def test_each_established_checker_flags_a_planted_wrong_backward_pass():
    """A tanh whose backward forgets (1 − tanh²), fed through the same checks: a torch.autograd.Function for
    gradcheck, a jax.custom_vjp for check_grads. Both fail, and verify's verdict says so."""
    from conftest import require
    torch = require("torch") and __import__("torch")
    from backproof.verify import jax_check_grads, torch_gradcheck

    class WrongTanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            return torch.tanh(z)

        @staticmethod
        def backward(ctx, grad):
            return grad                              # bug: tanh' taken as 1

    def torch_loss_function(sc):
        f, params = require("torch").network.loss_function(sc)
        return (lambda *values: f(*values) + WrongTanh.apply(values[0]).sum()), params

    passed, detail = torch_gradcheck(torch_loss_function, scenario("xor-2-3-1-tanh"))
    assert not passed and detail.startswith("torch.autograd.gradcheck: Jacobian mismatch")

    jax = require("jax") and __import__("jax")

    @jax.custom_vjp
    def wrong_tanh(z):
        return jax.numpy.tanh(z)

    wrong_tanh.defvjp(lambda z: (jax.numpy.tanh(z), None), lambda _, grad: (grad,))

    def jax_loss_function(sc):
        f, params = require("jax").network.loss_function(sc)
        return (lambda p: f(p) + wrong_tanh(p[0]["kernel"]).sum()), params

    passed, detail = jax_check_grads(jax_loss_function, scenario("xor-2-3-1-tanh"))
    assert not passed and detail.startswith("jax.test_util.check_grads:")


# --- what kind of mistake ---------------------------------------------------------------------

def planted(name, change):
    """A gradient function: the reference's own gradients of built-in ``name``, then ``change(grads)``."""
    sc = scenario(name)

    def gradients(params, inputs, targets):
        return change(dict(loss_and_gradients(sc, params, inputs, targets)[1]))
    return gradients


@pytest.mark.parametrize("name, change, parameter, kind, words", [
    ("spiral-2-16-3-adam", lambda g: {k: 60 * v for k, v in g.items()}, "layers.1.weight", "ratio",
     "the batch size, 60: summed over the rows where the loss averages them"),
    ("blog-2-3-3-1", lambda g: dict(g, **{"layers.1.weight": g["layers.1.weight"].T}), "layers.1.weight",
     "transpose", "the true gradient transposed"),
    ("blog-2-3-3-1", lambda g: {k: -v for k, v in g.items()}, "layers.0.weight", "ratio", "the sign is flipped"),
    ("mixed-3-4-3-2", lambda g: {k: 2 * v for k, v in g.items()}, "layers.2.bias", "ratio", "a factor 2 too many"),
    ("blog-2-3-3-1", lambda g: dict(g, **{"layers.0.bias": g["layers.1.bias"], "layers.1.bias": g["layers.0.bias"]}),
     "layers.0.bias", "other-parameter", "the true gradient of layers.1.bias"),
])
def test_a_planted_mistake_is_diagnosed_by_name(name, change, parameter, kind, words):
    result = backproof.verify(planted(name, change), name, ORACLES)
    assert not result.ok
    found = {d.parameter: d for d in result.diagnoses}
    assert found[parameter].kind == kind and words in found[parameter].text, result.diagnoses
    assert f"diagnosis: {parameter}: " in str(result)


def test_no_diagnosis_on_a_right_gradient():
    result = backproof.verify(planted("blog-2-3-3-1", lambda g: g), "blog-2-3-3-1", ORACLES)
    assert result.ok and result.diagnoses == [] and "diagnosis" not in str(result)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["float64", "float32"]))
def test_no_diagnosis_fires_on_a_right_gradient_or_on_noise(seed, dtype):
    """diagnose() on random true gradients: yours equal to them within the tolerance (right) or independent noise of
    the same size (wrong without a signature) gives no diagnosis; yours = r × truth always gives the ratio r."""
    from backproof.compare import TOLERANCES
    from backproof.diagnose import diagnose
    rng = np.random.default_rng(seed)
    sc = scenario("blog-2-3-3-1", dtype)
    truth = {name: rng.standard_normal(value.shape) for name, value in sc.parameters().items()}
    atol, rtol = TOLERANCES[dtype]["step"]
    right = {k: v + rng.uniform(-0.5, 0.5, v.shape) * (atol + rtol * np.abs(v)) for k, v in truth.items()}
    noise = {k: rng.standard_normal(v.shape) for k, v in truth.items()}
    assert diagnose(right, truth, sc, list(truth)) == []
    assert diagnose(noise, truth, sc, list(truth)) == []
    r = float(rng.choice([2.0, -1.0, 0.5]))             # a named cause: every parameter, a single number included
    scaled = diagnose({k: r * v for k, v in truth.items()}, truth, sc, list(truth))
    assert [d.kind for d in scaled] == ["ratio"] * len(truth) and all(f"{r:.6g} ×" in d.text for d in scaled)
    several = [k for k, v in truth.items() if v.size > 1]    # any other constant: where more than one element says so
    scaled = diagnose({k: 3.0 * v for k, v in truth.items()}, truth, sc, list(truth))
    assert sorted(d.parameter for d in scaled) == sorted(several) and all("3 ×" in d.text for d in scaled)
