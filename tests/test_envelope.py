"""The one JSON envelope: every command's --json validates against the schema file, is strict JSON,
is deterministic apart from `seconds`, and the Python API gives the CLI's verdict."""

import functools
import json
import math
import warnings

import numpy as np
import pytest

import backproof
import backproof.scenario_file
from backproof.cli import main
from backproof.envelope import schema_path
from conftest import NUMPY_ONLY
from tools.mutations import MUTANTS, Patch

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test dependency: pip install 'backproof[test]'")

EXAMPLE = "examples/post001_gradients.py"
ORACLES = "numpy" if NUMPY_ONLY else "torch,jax"


def strict(text):
    """Parse as a strict parser would (JavaScript's JSON.parse, jq): NaN and Infinity literals are errors."""
    def refuse(literal):
        raise ValueError(f"non-standard JSON literal {literal}")
    return json.loads(text, parse_constant=refuse)


@functools.cache
def validator():
    """The schema file's validator, built once: ``jsonschema.validate`` checks the schema itself against its
    metaschema on every call, a cost far above the document's own (test_the_schema_file_is_a_valid_schema checks
    the schema once)."""
    schema = json.loads(schema_path().read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def run_json(args, capsys):
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    document = strict(out)
    validator().validate(document)
    assert document["ok"] == (code == 0), (code, args)
    return code, document


COMMANDS = {
    "check-blog": ["check", "blog-2-3-3-1"],
    "check-kink-convention": ["check", "kink-leaky-relu-2-2-1"],
    "check-training": ["check", "grokking-3-4-1", "--dtype", "float32"],
    "check-two": ["check", "blog-2-3-3-1", "examples/sigmoid-2-3-2.json", "--serial"],
    "train-kinks": ["train", "deep-1-2-2-1", "--epochs", "5"],
    "train-fd": ["train", "grokking-3-4-1", "--epochs", "3", "--finite-differences"],
    "verify-ok": ["verify", f"{EXAMPLE}:gradients", "grokking-3-4-1", "--frameworks", ORACLES],
    "verify-wrong": ["verify", f"{EXAMPLE}:gradients_relu_slope_one", "grokking-3-4-1", "--frameworks", ORACLES],
    "verify-gradcheck": ["verify", f"{EXAMPLE}:gradients", "grokking-3-4-1", "--frameworks", ORACLES,
                         "--oracles", "gradcheck"],
    "verify-at-a-kink": ["verify", "tests/kink_gradients.py:gradients", "kink-relu-2-2-1", "--frameworks", ORACLES],
    "explain-paths": ["explain", "blog-2-3-3-1", "w1", "--frameworks", ORACLES],
    "explain-recursion": ["explain", "mixed-3-4-3-2", "layers.0.weight[0,0]", "--max-paths", "1"],
    "explain-softmax": ["explain", "softmax-2-3-3", "layers.0.weight[0,0]", "--frameworks", "numpy"],
    "check-optimizer-state": ["check", "rmsprop-defaults-2-3-1", "--frameworks", "numpy,torch"],
    "train-noise-floor": ["train", "mixed-3-4-3-2-rmsprop", "--dtype", "float32", "--frameworks", "numpy,jax"],
    "verify-layer-wrong": ["verify-layer", "examples/layer_backward.py:affine_backward_averaged", "spiral-2-16-3-adam",
                           "--layer", "1", "--frameworks", "numpy" if NUMPY_ONLY else "torch"],
    "verify-layer-course": ["verify-layer", "examples/layer_backward.py:relu_backward", "spiral-2-16-3-adam",
                            "--layer", "0", "--part", "activation", "--forward", "relu_forward",
                            "--frameworks", "numpy" if NUMPY_ONLY else "torch"],
}


RUNS = {}
pytestmark = pytest.mark.xdist_group("envelope")       # on one worker, so the tests that read a document share it


def run_named(name, capsys):
    """run_json of COMMANDS[name], once per process: the tests that only read a document share it."""
    if name not in RUNS:
        RUNS[name] = run_json(COMMANDS[name], capsys)
    return RUNS[name]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_validates_against_the_schema(name, capsys):
    code, document = run_named(name, capsys)
    assert document["schema"] == "backproof/1" and document["command"] == COMMANDS[name][0]
    for result in document["results"]:
        present = [key for key in ("step", "training", "verify", "explain", "verify_layer") if result[key] is not None]
        assert present, result.keys()


def test_the_schema_rejects_what_it_should(capsys):
    _, document = run_named("check-blog", capsys)
    broken = json.loads(json.dumps(document))
    broken["results"][0]["frameworks"]["torch (autograd)"] = broken["results"][0]["frameworks"]["numpy"]
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(broken)                  # a display label is not a framework key
    broken = json.loads(json.dumps(document))
    del broken["results"][0]["training"]
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(broken)                  # absent is null, never missing


def test_the_schema_file_is_a_valid_schema():
    schema = json.loads(schema_path().read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    broken = dict(schema, type="no-such-type")
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.validators.validator_for(broken).check_schema(broken)


def without_seconds(value):
    if isinstance(value, dict):
        return {k: without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_seconds(v) for v in value]
    return value


@pytest.mark.parametrize("name", ["check-training", "verify-wrong", "explain-paths"])
def test_two_runs_give_identical_json_apart_from_seconds(name, capsys):
    _, first = run_named(name, capsys)
    _, second = run_json(COMMANDS[name], capsys)            # a second, fresh run
    assert json.dumps(without_seconds(first)) == json.dumps(without_seconds(second))


def test_non_finite_values_are_spelled_as_strings(tmp_path, capsys):
    """A trace that overflows to inf is still strict JSON: "Infinity", never a bare Infinity."""
    document = json.loads(backproof.scenario_file.builtin_dir().joinpath("grokking-3-4-1.json").read_text())
    document["inputs"] = [[1e300, 1e300, 1e300]] * 4             # relu, then identity: the sse overflows
    document.pop("train", None)
    path = tmp_path / "overflow.json"
    path.write_text(json.dumps(document))
    code, doc = run_json(["check", str(path), "--frameworks", "numpy"], capsys)
    values = json.dumps(doc["results"][0]["step"]["tensors"])
    assert "Infinity" in values or "NaN" in values


def test_the_encoder_spells_every_non_finite_kind():
    from backproof.envelope import dumps
    text = dumps({"a": [math.nan, math.inf, -math.inf, np.float32(1.5), np.int64(3)]})
    assert strict(text) == {"a": ["NaN", "Infinity", "-Infinity", 1.5, 3]}


# --- the Python API and the CLI give the same verdict ------------------------------------------------

def sign_flipped(patch, scenario):
    mutant = next(m for m in MUTANTS if m.id == "sgd-sign-flipped")
    mutant.apply(patch, scenario)


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "sgd-sign-flipped"])
def test_check_and_train_verdicts_are_the_same_from_python_and_the_cli(broken, capsys):
    frameworks = ("numpy",) if NUMPY_ONLY else ("numpy", "torch")
    patch = Patch()
    # the ascent diverges and NumPy warns about the overflow; the CLI reports warnings as lines on stderr,
    # so the API runs under the same rule here (pytest would otherwise turn them into errors)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            if broken:
                sign_flipped(patch, None)
            api_check = backproof.check("grokking-3-4-1", frameworks).ok
            cli_check = main(["check", "grokking-3-4-1", "--frameworks", ",".join(frameworks)]) == 0
            api_train = backproof.train("grokking-3-4-1", frameworks, epochs=4).ok
            cli_train = main(["train", "grokking-3-4-1", "--epochs", "4", "--frameworks", ",".join(frameworks)]) == 0
        finally:
            patch.undo()
    capsys.readouterr()
    assert api_check == cli_check and api_train == cli_train
    if not NUMPY_ONLY:      # with one framework nothing can disagree
        assert api_check is (not broken) and api_train is (not broken)


@pytest.mark.parametrize("function", ["gradients", "gradients_relu_slope_one"])
def test_verify_verdicts_are_the_same_from_python_and_the_cli(function, capsys):
    import post001_gradients
    api = backproof.verify(getattr(post001_gradients, function), "grokking-3-4-1", ORACLES.split(",")).ok
    cli = main(["verify", f"{EXAMPLE}:{function}", "grokking-3-4-1", "--frameworks", ORACLES]) == 0
    capsys.readouterr()
    assert api == cli == (function == "gradients")


def test_explain_values_are_the_same_from_python_and_the_cli(capsys):
    api = backproof.explain("blog-2-3-3-1", "w17", ORACLES.split(","))
    _, doc = run_json(["explain", "blog-2-3-3-1", "w17", "--frameworks", ORACLES], capsys)
    assert doc["results"][0]["explain"]["gradient"] == api.total
    assert doc["results"][0]["explain"]["oracles"] == api.oracles


@pytest.mark.skipif(NUMPY_ONLY, reason="a drift needs two frameworks; the noise floor needs JAX's float32 Adam")
def test_the_new_fields_carry_what_they_say(capsys):
    """explain through a softmax: update and softmax_layers, no paths; check: optimizer state among the tensors;
    train in float32: a drift explained by the noise floor, with the floor."""
    _, document = run_named("explain-softmax", capsys)
    body = document["results"][0]["explain"]
    assert body["softmax_layers"] == [1] and body["paths"] is None and body["sgd"]["lr"] == 0.5
    assert body["update"]["optimizer"] == {"name": "sgd", "lr": 0.5, "momentum": 0.0, "dampening": 0.0,
                                           "nesterov": False, "weight_decay": 0.0}
    _, document = run_named("check-optimizer-state", capsys)
    assert "state.layers.0.weight.square_avg" in document["results"][0]["step"]["order"]
    _, document = run_named("train-noise-floor", capsys)
    (drift,) = document["results"][0]["training"]["drift"]
    assert drift["ok"] is False and drift["explained_by_noise"] is True and document["ok"] is True
    assert drift["noise_floor"]["train.loss"] > 1e-4


def test_the_schemas_enums_are_the_registries():
    """The optimizer names in backproof/envelope.schema.json are written by `make docs` from reference/registry.py: a
    name added there and not regenerated fails here."""
    from reference.registry import OPTIMIZER_TYPES
    from tools.docs import schema_text
    assert schema_path().read_text(encoding="utf-8") == schema_text(), "run `make docs`"
    assert json.loads(schema_path().read_text())["$defs"]["optimizer_name"]["enum"] == list(OPTIMIZER_TYPES)


def test_a_diagnosed_verify_validates_and_carries_the_diagnosis(tmp_path, capsys):
    """A gradient function that sums over the rows where the loss averages: verify --json names the ratio."""
    (tmp_path / "summed.py").write_text(
        "import reference, backproof\n"
        "SPIRAL = backproof.load('spiral-2-16-3-adam')\n"
        "def gradients(params, inputs, targets):\n"
        "    grads = reference.loss_and_gradients(SPIRAL, params, inputs, targets)[1]\n"
        "    return {k: 60 * v for k, v in grads.items()}\n")
    code, document = run_json(["verify", f"{tmp_path / 'summed.py'}:gradients", "spiral-2-16-3-adam", "--frameworks",
                               "numpy"], capsys)
    assert code == 1
    diagnoses = document["results"][0]["verify"]["diagnoses"]
    assert {d["parameter"] for d in diagnoses} == {"layers.0.weight", "layers.0.bias", "layers.1.weight",
                                                     "layers.1.bias"}
    assert all(d["kind"] == "ratio" and "the batch size, 60" in d["text"] for d in diagnoses)
