"""Bad input: exit code 2, one line naming the file and the field, no traceback, the file untouched."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backproof.cli import main

CORPUS = Path(__file__).parent / "bad_scenarios"
ROOT = Path(__file__).resolve().parent.parent

# file -> the JSON path (or phrase) the one-line message must name
FIELDS = {
    "missing-name.json": "name is missing",
    "missing-layers.json": "layers is missing",
    "missing-loss.json": "loss is missing",
    "missing-inputs.json": "inputs is missing",
    "missing-targets.json": "targets is missing",
    "missing-optimizer.json": "optimizer is missing",
    "missing-weight.json": "layers[1].weight is missing",
    "missing-activation.json": "layers[0].activation is missing",
    "missing-lr.json": "optimizer.lr is missing",
    "wrong-type-layers.json": "layers must be a list",
    "wrong-type-weight.json": "layers[0].weight must be a 2-D list",
    "wrong-type-bias-string.json": "layers[0].bias[1] must be a number",
    "wrong-type-boolean.json": "inputs[0][0] must be a number, not a boolean",
    "ragged-weight.json": "layers[0].weight[1] has 1 entries but row 0 has 2",
    "ragged-inputs.json": "inputs[1] has 1 entries but row 0 has 2",
    "empty-inputs.json": "inputs is empty",
    "empty-layers.json": "layers is empty",
    "shape-chain.json": "layers[1].weight has 2 columns but layers[0] has 3 outputs",
    "bias-length.json": "layers[0].bias has 2 entries",
    "inputs-width.json": "inputs has 3 columns but layers[0].weight has 2",
    "targets-width.json": "targets has 2 columns but the last layer has 1 outputs",
    "targets-rows.json": "targets has 2 rows but inputs has 1",
    "nan.json": "inputs[0][0] must be finite",
    "infinity.json": "layers[1].bias[0] must be finite",
    "unknown-activation.json": "layers[0].activation 'swish' is not a known activation",
    "batch-norm-one-value-per-channel.json": "layers[1].training a batch norm in training needs more than one value "
                                             "per channel",
    "batch-norm-no-bias.json": "layers[0].bias is required: torch's nn.BatchNorm1d always has one",
    "batch-norm-missing-running-var.json": "layers[0].running_var is missing",
    "batch-norm-training-not-boolean.json": "layers[0].training must be true (batch statistics, running ones "
                                            "updated) or false",
    "batch-norm-momentum-range.json": "layers[0].momentum must be a number in [0, 1] (torch's meaning: the batch's "
                                      "share), not 1.5",
    "unknown-loss.json": "loss 'hinge' is not a known loss",
    "unknown-optimizer.json": "optimizer.name 'lbfgs' is not a known optimizer",
    "loss-object-unknown-name.json": "loss.name 'focal' is not a known loss",
    "optimizer-unknown-key.json": "optimizer.momentum is not a field of adam (its fields: lr, betas, eps, weight_decay)",
    "optimizer-betas-range.json": "optimizer.betas[1] is 1.0; a beta must lie in [0, 1)",
    "optimizer-nesterov-no-momentum.json": "optimizer.nesterov needs momentum > 0 and dampening 0",
    "optimizer-negative-weight-decay.json": "optimizer.weight_decay is -0.01; it must be 0 or more",
    "class-index-out-of-range.json": "targets[1] is class 3, out of range: the last layer has 3 outputs",
    "class-index-not-whole.json": "targets[1] must be a class index (a whole number)",
    "class-index-count.json": "targets has 3 class indices but inputs has 2 rows",
    "probabilities-not-summing-to-1.json": "targets[0] sums to 0.9; a probability row must sum to 1",
    "probability-negative.json": "targets[0][0] is 1.2; cross_entropy targets are probabilities in [0, 1]",
    "label-smoothing-range.json": "loss.label_smoothing must lie in [0, 1], not 1.5",
    "label-smoothing-on-mse.json": "loss.label_smoothing applies to cross_entropy only",
    "lr-zero.json": "optimizer.lr must be greater than 0",
    "lr-negative.json": "optimizer.lr must be greater than 0",
    "lr-string.json": "optimizer.lr must be a number, not a string",
    "bad-dtype.json": "dtype must be one of float64, float32",
    "top-level-list.json": "the top level must be a JSON object",
    "not-json.json": "not valid JSON",
    "empty.json": "the file is empty",
    "alias-bad-target.json": "aliases.w1 names 'layers.5.weight'",
    "alias-out-of-range.json": "aliases.w1 index [3,0] is out of range",
    "expected-unknown-key.json": 'expected["grad.w99"] is not a valid key',
    "expected-shape.json": 'expected["layers.0.a"].value has shape (2,)',
    "expected-missing-atol.json": 'expected["loss"].atol is missing',
    "errata-path-not-list.json": "errata[0].path must be a non-empty list of node names",
    "huge-integer-weight.json": "layers[0].weight[0][0] must be finite, not inf",
    "huge-integer-5000-digits.json": "layers[0].weight[0][0] must be finite, not inf",
    "deep-nesting.json": "nests 901 levels deep, over the limit of 32",
    "duplicate-key.json": "the key 'loss' appears twice in one object",
    "lone-surrogate.json": "name holds a lone surrogate",
    "not-utf8.json": "cannot be read: not UTF-8 (byte 5)",
    "float32-overflow.json": "layers[1].weight[0][1] is 1e+39, beyond float32's largest number",
    "alias-not-a-name.json": "aliases.w[1] must be a name of letters, digits and _",
    "node-name-out-of-range.json": "node_names.layers.0.7 is not a unit of this network",
    "errata-unknown-parameter.json": "errata[0].parameter 'w99' is not one element of a parameter",
    "node-names-duplicate.json": "node_names.layers.0.1 names a unit 'n3', as node_names.layers.0.0 does",
    "errata-path-without-parameter.json": "errata[0].path needs errata[0].parameter",
    "errata-path-reversed.json": "errata[0].path must run from w1's unit (layers.0.0) forward through one unit per "
                                 "layer to the output, in that order",
}

SLOWEST_ALLOWED_SECONDS = 5.0             # generous: the slowest corpus file takes well under a second
PEAK_MEMORY_ALLOWED = 300 * 1024 * 1024


def test_hostile_files_take_bounded_time_and_memory():
    """The whole corpus in one fresh process: every file exit 2 within seconds, the peak memory a few hundred MB."""
    # the peak resident set of this process alone: VmHWM (ru_maxrss would carry the forking parent's over exec)
    code = ("import sys, time\nfrom backproof.cli import main\nworst = 0.0\n"
            "for path in sys.argv[1:]:\n"
            "    start = time.perf_counter()\n"
            "    assert main(['check', path, '--frameworks', 'numpy']) == 2, path\n"
            "    worst = max(worst, time.perf_counter() - start)\n"
            "peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]\n"
            "print(worst, int(peak) * 1024)")
    result = subprocess.run([sys.executable, "-c", code, *[str(CORPUS / name) for name in sorted(FIELDS)]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    worst_time, peak = (float(x) for x in result.stdout.split())
    assert worst_time < SLOWEST_ALLOWED_SECONDS and peak < PEAK_MEMORY_ALLOWED, (worst_time, peak)


def test_non_regular_files_are_refused_before_reading(tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        code, _, err = run_cli(["check", str(path)], capsys)
        assert code == 2 and "is not a regular file" in err and len(err.splitlines()) == 1, err


def test_a_file_over_the_byte_cap_is_refused_before_parsing(tmp_path, capsys):
    from backproof.scenario_file import MAX_BYTES
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:                 # sparse: no time or disk spent writing it
        handle.truncate(MAX_BYTES + 1)
    code, _, err = run_cli(["check", str(path)], capsys)
    assert code == 2 and f"over the cap of {MAX_BYTES:,}" in err, err


@pytest.mark.parametrize("args, message", [
    (["train", "xor-2-3-1-tanh", "--epochs", "5000000"], "--epochs 5000000 of 4 steps is over the cap of 500,000"),
    (["verify", "examples/post001_gradients.py:gradients", "grokking-3-4-1", "--directions", "1001"],
     "argument --directions: must be at most 1,000, not 1,001"),
    (["explain", "blog-2-3-3-1", "w1", "--max-paths", "100000"], "argument --max-paths: must be at most 10,000"),
    (["check", "blog-2-3-3-1", "--dtype", "float32", "--frameworks", "numpy"], None),
])
def test_caps_apply_to_command_line_overrides(args, message, capsys):
    try:
        code = main(args)
    except SystemExit as exc:          # argparse refuses a value out of range before main runs
        code = exc.code
    err = capsys.readouterr().err
    if message is None:
        assert code == 0, err
    else:
        assert code == 2 and message in err, err


def test_an_unknown_optimizer_key_is_an_error_not_a_warning(tmp_path, capsys):
    """A key another optimizer has (momentum, for sgd) is an error for adam: ignored, it would silently leave
    torch's default in force. Everywhere else an unknown key stays a warning."""
    doc = json.loads((CORPUS / "missing-name.json").read_text())
    doc.update(name="momentum")
    doc["optimizer"] = {"name": "adam", "lr": 0.01, "momentum": 0.9}
    path = tmp_path / "momentum.json"
    path.write_text(json.dumps(doc))
    code, _, err = run_cli(["check", str(path), "--frameworks", "numpy"], capsys)
    assert code == 2 and err == (f"error: {path}: optimizer.momentum is not a field of adam "
                                 "(its fields: lr, betas, eps, weight_decay)\n")
    doc["optimizer"] = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    doc["layers"][0]["wieght"] = 1
    path.write_text(json.dumps(doc))
    code, _, err = run_cli(["check", str(path), "--frameworks", "numpy"], capsys)
    assert code == 0 and f"warning: {path}: layers[0].wieght is not a known layer field and is ignored" in err


def test_output_that_cannot_be_encoded_is_escaped():
    result = subprocess.run([sys.executable, "-m", "backproof", "check", "blog-2-3-3-1", "--frameworks", "numpy"],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONIOENCODING="ascii"))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "\\u0394" in result.stdout or "\\N" in result.stdout or "\\xce" in result.stdout   # |Δ| escaped


def test_ctrl_c_exits_130_with_one_line():
    import signal
    import time
    # a shell that runs `make test` in the background ignores SIGINT, and children inherit that: the child puts
    # Python's own handler back before running `python -m backproof` (no preexec_fn: forking JAX's test process warns)
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "sys.argv = ['backproof', 'train', 'xor-2-3-1-tanh', '--epochs', '100000', '--frameworks', 'numpy']; "
             "runpy.run_module('backproof', run_name='__main__')")
    process = subprocess.Popen([sys.executable, "-c", start], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)                  # started and training: 400,000 steps take the reference a quarter of a minute
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "interrupted", err


def test_every_corpus_file_has_an_expectation():
    assert sorted(p.name for p in CORPUS.glob("*.json")) == sorted(FIELDS)


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_bad_file_exits_2_naming_the_field(name, capsys):
    path = CORPUS / name
    before = path.read_bytes()
    code, out, err = run_cli(["check", str(path), "--frameworks", "numpy"], capsys)
    assert code == 2, f"{name}: exit {code}, stderr {err!r}"
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{name}: expected one line on stderr, got {lines}"
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert FIELDS[name] in lines[0], f"{name}: {lines[0]!r} does not name {FIELDS[name]!r}"
    assert path.read_bytes() == before, f"{name} was modified"


@pytest.mark.parametrize("target, message", [
    ("missing.json", "no such file or built-in scenario"),
    ("no-such-builtin", "no such file or built-in scenario (built-in scenarios: "),
    (".", "is a directory"),
])
def test_missing_file_and_directory(target, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["check", target], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_size_cap_is_named(tmp_path, capsys):
    path = tmp_path / "huge.json"
    doc = {"name": "huge", "layers": [{"weight": [[0] * 1001] * 1000, "activation": "relu"}],
           "loss": "mse", "inputs": [[0] * 1001], "targets": [[0] * 1000], "optimizer": {"name": "sgd", "lr": 0.1}}
    path.write_text(json.dumps(doc, separators=(",", ":")))
    code, _, err = run_cli(["check", str(path)], capsys)
    assert code == 2 and "more than 1,000,000 parameters, the size cap" in err, err


def test_unknown_top_level_key_is_a_warning_naming_it(tmp_path, capsys):
    doc = json.loads((CORPUS / "missing-name.json").read_text())
    doc.update(name="typo", lerning_rate=0.1)
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(doc))
    code, _, err = run_cli(["check", str(path), "--frameworks", "numpy"], capsys)
    assert code == 0, err
    assert f"warning: {path}: lerning_rate is not a known scenario field and is ignored" in err


@pytest.mark.parametrize("args", [["check", "--frameworks", "numpy,tensorflow"], ["check", "--dtype", "float16"], ["frobnicate"]])
def test_bad_usage_exits_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(args)
        raise SystemExit(code)
    assert exc.value.code == 2


def test_real_process_prints_no_traceback():
    path = CORPUS / "shape-chain.json"
    result = subprocess.run([sys.executable, "-m", "backproof", "check", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {path}: layers[1].weight has 2 columns but layers[0] has 3 outputs"


def test_a_recurrent_layers_initial_state_is_checked_by_shape_and_against_mini_batches(tmp_path, capsys):
    """h0 and c0 are one row per input row, (n, H): another shape is named, and so is a train block that would split
    the rows into batches the state does not follow."""
    import numpy as np
    document = json.loads((ROOT / "backproof" / "scenarios" / "lstm-gru-count-bits.json").read_text())
    rows = len(document["inputs"])
    bad = dict(document, layers=[dict(document["layers"][0], h0=np.zeros((rows, 3)).tolist())] + document["layers"][1:])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert main(["check", str(path)]) == 2
    assert f"layers[0].h0 has shape ({rows}, 3); the initial state is (n, H) = ({rows}, 4)" in capsys.readouterr().err
    split = dict(document, layers=[dict(document["layers"][0], c0=np.zeros((rows, 4)).tolist())] + document["layers"][1:],
                 train={"epochs": 2, "batch_size": 4})
    path.write_text(json.dumps(split))
    assert main(["check", str(path)]) == 2
    assert "train.batch_size 4 splits the rows, but layers[0].c0 gives one initial state per row" in \
        capsys.readouterr().err


def test_a_named_parameter_of_the_wrong_shape_is_named_as_a_field(tmp_path, capsys):
    """An LSTM's weight_ih_l0 whose rows are not 4 gates' worth: the line names layers[0].weight_ih_l0, as any field."""
    document = {"name": "x", "loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1}, "inputs": [[[1.0]]],
                "targets": [[1.0]], "layers": [{"type": "lstm", "weight_ih_l0": [[1.0]] * 3,
                                                "weight_hh_l0": [[1.0]] * 4}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err == (f"error: {path}: layers[0].weight_ih_l0 has 3 rows, not a multiple of the 4 "
                                       f"gates\n")
