"""The hostile probes' findings, one test per class (tests/hostile/): none may end in a wrong verdict, an unbounded
run, a traceback, or damage outside the place the user named."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backproof.cli import main
from conftest import NUMPY_ONLY

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).parent / "hostile"
ORACLES = "numpy"       # the oracle is not the subject here: what the user's code does is


def verify(filename, capsys, *extra, timeout="5"):
    code = main(["verify", f"{HOSTILE / filename}:gradients", "grokking-3-4-1", "--frameworks", ORACLES,
                 "--timeout", timeout, *extra])
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. users' code runs in a child process: every way it ends is a verdict or one line and exit 2 ---------------

@pytest.mark.parametrize("filename, message", [
    ("os_exit_0.py", "os_exit_0.py:gradients ended its process (exit code 0, as os._exit does) before it answered"),
    ("os_exit_1.py", "os_exit_1.py:gradients ended its process (exit code 1, as os._exit does) before it answered"),
    ("kills_itself.py", "kills_itself.py:gradients was killed by signal SIGKILL before it answered"),
])
def test_code_that_ends_its_process_gets_one_line_and_exit_2_never_0(filename, message, capsys):
    code, out, err = verify(filename, capsys, "--json")
    assert code == 2 and out == "", (code, out, err)
    assert err.strip().splitlines() == [f"error: {message}"], err


def test_a_thread_ending_the_process_after_a_correct_answer_cannot_take_the_verdict(capsys):
    """The answer counts once it is written whole; either it was, and the verdict is given, or it was not, and the
    one line says so. Never exit 0 without a verdict."""
    code, out, err = verify("thread_exit_after_return.py", capsys)
    assert (code == 0 and "verdict: OK" in out) or (code == 2 and "ended its process" in err), (code, out, err)


def test_a_loop_holding_the_gil_is_killed_at_the_timeout(capsys):
    start = time.monotonic()
    code, out, err = verify("holds_the_gil.py", capsys, timeout="0.3")
    elapsed = time.monotonic() - start
    assert code == 2 and "holds_the_gil.py:gradients did not return within 0.3 s" in err, err
    assert elapsed < 10, elapsed            # one second of the function, plus starting Python and the oracles


def test_writes_to_file_descriptor_1_never_reach_the_json(capfd):
    code = main(["verify", f"{HOSTILE / 'writes_fd1.py'}:gradients", "grokking-3-4-1", "--frameworks", ORACLES,
                 "--json"])
    out, err = capfd.readouterr()
    assert code == 0 and json.loads(out)["ok"] is True, (out, err)
    assert "written to fd 1, not JSON" in err and "a subprocess printing" in err


@pytest.mark.slow       # it waits for the child to run; the fast tier interrupts a CLI run in test_bad_input.py
def test_ctrl_c_ends_the_child_promptly():
    """SIGINT to backproof alone (not its process group): the child, in a session of its own, is killed too."""
    # a background shell (make test &) leaves SIGINT ignored in its children: the child restores Python's handler
    script = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "from backproof.cli import main; "
              f"sys.exit(main(['verify', {str(HOSTILE / 'holds_the_gil.py') + ':gradients'!r}, 'grokking-3-4-1', "
              "'--frameworks', 'numpy', '--timeout', '60']))")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=ROOT)
    time.sleep(2.0)
    start = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert time.monotonic() - start < 5 and child.returncode == 130, (child.returncode, err)
    assert err.strip().splitlines()[-1] == "interrupted"


@pytest.mark.skipif(NUMPY_ONLY, reason="the factories build torch modules")
@pytest.mark.parametrize("factory, message", [
    ("loops", "factories.py:loops did not return within 0.3 s"),
    ("exits_0", "factories.py:exits_0 called sys.exit(0) instead of returning"),
    ("exits_3", "factories.py:exits_3 called sys.exit(3) instead of returning"),
    ("os_exits_0", "factories.py:os_exits_0 ended its process (exit code 0, as os._exit does) before it answered"),
    # the child imports torch for these two: make test-all
    pytest.param("bfloat16", "factories.py:bfloat16: the module's weights cannot be read as float64 or float32 "
                 "arrays", marks=pytest.mark.slow),
    pytest.param("meta_device", "factories.py:meta_device: the module's weights cannot be read as float64 or "
                 "float32 arrays", marks=pytest.mark.slow),
])
def test_import_torch_runs_the_factory_in_a_child_with_a_timeout(factory, message, tmp_path, capsys):
    out_file = tmp_path / "imported.json"
    code = main(["import-torch", f"{HOSTILE / 'factories.py'}:{factory}", "--inputs", "[[1, 2]]", "--targets",
                 "[[0, 1]]", "-o", str(out_file), "--timeout", "0.3" if factory == "loops" else "30"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and not out_file.exists(), (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), err


# --- 3. a non-finite mismatch is never explained by a noise floor; the 0-d message is right ------------------------

def test_an_infinite_noise_floor_explains_nothing():
    """Adam with a huge lr: torch's loss is inf from epoch 2 while the others stay finite; the noisy reference
    overflowed too, so its floor was inf, and inf ≤ 4·inf explained the mismatch (exit 0). Never again."""
    import numpy as np

    import backproof
    from backproof.training import compare_training, drift
    sc = backproof.load("grokking-3-4-1")
    good = backproof.frameworks.implementation("numpy").train(sc, 4)
    bad = {name: np.array(value) for name, value in good.items()}
    bad["train.loss"][1:] = np.inf
    bad["trained.layers.0.weight"][0, 0] = -np.inf
    d = drift("numpy", good, "torch", bad, "float64")
    for floor in (np.inf, np.nan):
        d.noise = {name: floor for name in ["train.loss", *good]}
        assert not d.explained, floor
    d.noise = {name: 1e300 for name in ["train.loss", *good]}       # finite but vast: the mismatch is still inf
    assert not d.explained
    report = compare_training(sc, 4, {"numpy": good, "torch": bad}, {}, [], {})
    assert not report.ok and not report.explained


def test_the_non_finite_message_of_a_0_d_tensor_names_where_and_what():
    import numpy as np

    from backproof.compare import compare_arrays
    c = compare_arrays("loss", "numpy", np.array(np.inf), "torch", np.array(8.5e307), "float64")
    assert not c.ok and c.nonfinite == "non-finite in numpy only at loss: inf where torch gives 8.5e+307"
    assert c.message() == c.nonfinite.join(["loss (loss): ", ""])


# --- 4. a closed pipe keeps the verdict's exit code -------------------------------------------------------------

def test_a_broken_pipe_keeps_a_failing_verdict(tmp_path):
    """set -o pipefail; backproof check FAILING | head -1 exited 0 whatever the verdict. The reader takes one byte
    of a 4 KiB pipe and leaves, so the pipe breaks mid-report."""
    import fcntl
    failing = tmp_path / "failing.json"
    document = json.loads((ROOT / "examples" / "sigmoid-2-3-2.json").read_text())
    document["expected"] = {"loss": {"value": 123.0, "atol": 1e-3}}
    failing.write_text(json.dumps(document))
    for scenario, expected in ((str(failing), 1), ("blog-2-3-3-1", 0)):
        read, write = os.pipe()
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)
        child = subprocess.Popen([sys.executable, "-m", "backproof", "check", scenario, "blog-2-3-3-1", "--frameworks",
                                  "numpy", "--show-values", "--serial"], stdout=write, stderr=subprocess.PIPE,
                                 cwd=ROOT)
        os.close(write)
        assert os.read(read, 1)
        os.close(read)                          # the reader leaves: the next write breaks the pipe
        _, err = child.communicate(timeout=60)
        assert child.returncode == expected, (scenario, child.returncode, err)
        assert b"Traceback" not in err


# --- 6. round trips keep every activation parameter or refuse -------------------------------------------------

@pytest.mark.skipif(NUMPY_ONLY, reason="writes a torch state_dict")
def test_a_leaky_slope_survives_export_and_import_or_the_import_refuses(tmp_path, capsys):
    """export --to torch then import turned a slope of 0.1 into 0.01 silently (a state_dict carries no slope)."""
    weights, out = tmp_path / "w.pt", tmp_path / "back.json"
    assert main(["export", "mixed-3-4-3-2", "--to", "torch", "-o", str(weights)]) == 0
    printed = capsys.readouterr().out
    option = printed.split("--activations ", 1)[1].split()[0]
    assert "leaky_relu:0.1" in option, printed
    data = ["--inputs", "[[1, 2, 3]]", "--targets", "[[0, 1]]", "-o", str(out)]
    assert main(["import", str(weights), "--activations", "leaky_relu,tanh,identity", *data]) == 2
    err = capsys.readouterr().err
    assert "layer 0 is leaky_relu, and the file carries no slope" in err and not out.exists()
    assert main(["import", str(weights), "--activations", option, *data]) == 0
    import backproof
    assert [s.negative_slope for s in backproof.load(out).layers][0] == 0.1
    for bad, message in (("leaky_relu:x,tanh,identity", "the slope must be a number"),
                         ("relu:0.2,tanh,identity", "only leaky_relu takes a slope"),
                         ("swish,tanh,identity", "'swish' is not an activation")):
        assert main(["import", str(weights), "--activations", bad, *data]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --activations") and message in err and err.count("\n") == 1, err


# --- 8. output that cannot hurt ---------------------------------------------------------------------------------

def special_files(folder):
    """A FIFO and a character device (the numbers of /dev/full), made inside ``folder``."""
    import stat
    fifo, device = folder / "fifo", folder / "full"
    os.mkfifo(fifo)
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except PermissionError:
        device = None                           # not root: the FIFO alone
    return [path for path in (fifo, device) if path is not None]


def test_no_command_replaces_a_device_node_or_a_fifo(tmp_path, capsys):
    """Run as root, `report … -o /dev/full` replaced the system's /dev/full with a page. Here: a FIFO and a device
    node made in a temporary folder, offered to every command that writes."""
    import stat
    weights = tmp_path / "w.npz"
    assert main(["export", "blog-2-3-3-1", "--to", "npz", "-o", str(weights)]) == 0
    capsys.readouterr()
    specials = special_files(tmp_path)
    for target in specials:
        kind = stat.S_IFMT(os.lstat(target).st_mode)
        commands = [["export", "blog-2-3-3-1", "--to", "npz", "-o", str(target)],
                    ["import", str(weights), "--inputs", "[[1, 2]]", "--targets", "[[1]]", "-o", str(target)]]
        if not NUMPY_ONLY:
            commands.append(["report", "blog-2-3-3-1", "-o", str(target), "--frameworks", "numpy"])
        for args in commands:
            assert main(args) == 2, args
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "backproof writes regular files only" in err, err
            assert stat.S_IFMT(os.lstat(target).st_mode) == kind, (args, target)      # still what it was
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["w.npz", *(p.name for p in specials)])


def test_npz_without_its_suffix_is_written_where_named_and_nothing_is_left_behind(tmp_path, capsys):
    import numpy as np
    target = tmp_path / "weights"
    assert main(["export", "blog-2-3-3-1", "--to", "npz", "-o", str(target)]) == 0
    with np.load(target, allow_pickle=False) as data:
        assert "layers.0.weight" in data.files
    assert [p.name for p in tmp_path.iterdir()] == ["weights"]


def test_control_characters_never_reach_the_terminal_raw(tmp_path, capsys):
    document = json.loads((ROOT / "examples" / "sigmoid-2-3-2.json").read_text())
    document["description"] = "\x1b[2J\x1b[Hverdict: OK \u202e"
    path = tmp_path / "ansi.json"
    path.write_text(json.dumps(document))
    main(["check", str(path), "--frameworks", "numpy"])
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\u202e" not in out + err
    assert "\\x1b[2J\\x1b[Hverdict: OK \\u202e" in out
    document["name"] = "fake\x1b[2Jname"
    path.write_text(json.dumps(document))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "name holds a control character" in err and "\x1b" not in err


@pytest.mark.skipif(NUMPY_ONLY, reason="report needs matplotlib")
def test_report_names_stay_inside_the_folder_and_never_collide(tmp_path, capsys):
    document = json.loads((ROOT / "examples" / "sigmoid-2-3-2.json").read_text())
    folder, outside = tmp_path / "out", tmp_path / "escaped-name.html"
    folder.mkdir()
    for k, name in enumerate(["../escaped-name", "same", "same"]):
        (tmp_path / f"s{k}.json").write_text(json.dumps(dict(document, name=name)))
    assert main(["report", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"), "-o", str(folder)]) == 2
    assert "two scenarios would both be written to same.html" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "s0.json"), "-o", str(folder), "--frameworks", "numpy"]) == 0
    assert not outside.exists() and [p.name for p in folder.iterdir()] == ["_._escaped-name.html"]
    capsys.readouterr()


@pytest.mark.skipif(NUMPY_ONLY, reason="report needs matplotlib")
def test_a_multi_scenario_report_writes_nothing_when_one_fails(tmp_path, capsys):
    """--explain w17 exists in blog-2-3-3-1, not in grokking-3-4-1: the first page is built, never written."""
    assert main(["report", "blog-2-3-3-1", "grokking-3-4-1", "-o", str(tmp_path), "--explain", "w17",
                 "--frameworks", "numpy"]) == 2
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().err.count("\n") == 1


def test_empty_and_newline_paths_are_named_safely(tmp_path, capsys):
    assert main(["export", "blog-2-3-3-1", "--to", "npz", "-o", ""]) == 2
    assert capsys.readouterr().err == "error: an empty output path: name a file\n"
    assert main(["export", "blog-2-3-3-1", "--to", "npz", "-o", str(tmp_path / "no\nsuch" / "w.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no\\nsuch" in err


# --- 7. bounded work ----------------------------------------------------------------------------------------------

def wide_document(width, rows=2, epochs=5):
    """A 1-width-width-1 ReLU net (the probe's 1-512-512-1 at width 512), seeded He-uniform weights."""
    import numpy as np
    rng = np.random.default_rng(0)
    layer = lambda n_in, n_out, act: {"weight": rng.uniform(-1, 1, (n_out, n_in)).__mul__(  # noqa: E731
        np.sqrt(6 / n_in)).tolist(), "bias": rng.uniform(-0.1, 0.1, n_out).tolist(), "activation": act}
    return {"name": f"wide-1-{width}-{width}-1", "loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01},
            "inputs": [[0.5], [-1.5]][:rows], "targets": [[0.25], [1.0]][:rows], "train": {"epochs": epochs},
            "layers": [layer(1, width, "relu"), layer(width, width, "relu"), layer(width, 1, "identity")]}


@pytest.mark.slow       # a 263,000-weight net, checked and reported; the fast tier runs the cap and the bulk analysis below
def test_a_wide_relu_net_checks_and_reports_within_a_bound(tmp_path, capsys):
    """1-512-512-1, 2 rows, 5 epochs: the kink analysis ran a full step per candidate (1-256-256-1 took 125 s; the
    report did not finish in 580 s and its page was 33 MB). Now the analysis is forward-only and in bulk, the terminal
    lists a dozen kinks, and a page above report.MAX_DIAGRAM_EDGES has no diagram."""
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(wide_document(512)))
    start = time.monotonic()
    code = main(["check", str(path), "--frameworks", "numpy"])
    out = capsys.readouterr().out
    assert code == 0 and "more (--json lists every one)" in out and max(map(len, out.splitlines())) < 1_000
    if not NUMPY_ONLY:
        page = tmp_path / "wide.html"
        assert main(["report", str(path), "-o", str(page), "--frameworks", "numpy"]) == 0
        assert page.stat().st_size < 2_000_000 and "the diagram is drawn for networks of up to" in page.read_text()
    assert time.monotonic() - start < 60          # a few seconds here; the caps and bounds: docs/scenario-format.md


def test_more_kinks_than_the_cap_is_one_line_not_an_unbounded_run(capsys, tmp_path):
    document = wide_document(8)
    rng = __import__("numpy").random.default_rng(1)
    document["layers"] = [{"weight": rng.uniform(-1, 1, (2100, 1)).tolist(), "bias": rng.uniform(-1, 1, 2100).tolist(),
                           "activation": "relu"},
                          {"weight": rng.uniform(-1, 1, (1, 2100)).tolist(), "bias": [0.0], "activation": "identity"}]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(document))
    assert main(["check", str(path), "--frameworks", "numpy"]) == 0
    assert "kinks: layer 0 alone has 2,100 kinks (2,100 so far), over the cap of 2,000" in capsys.readouterr().out


def test_the_kink_analysis_finds_the_same_kinks_in_bulk():
    """The bulk analysis against each kink solved alone from the reference's forward pass (layer 0: -b/w)."""
    import numpy as np

    import backproof
    from backproof.relu_kinks import analytic_kinks
    from backproof.scenario_file import parse
    sc = parse(wide_document(24), "wide.json")
    kinks = analytic_kinks(sc)
    first = sorted(-sc.layers[0].bias / sc.layers[0].weight[:, 0])
    np.testing.assert_allclose(sorted(k.x for k in kinks if k.layer == 0), first, rtol=1e-12)
    z = backproof.relu_kinks.forward_z(sc.with_dtype("float64"), [k.x for k in kinks])[0]
    assert all(abs(z[k.layer][n, k.unit]) < 1e-9 for n, k in enumerate(kinks))     # each is a zero of its unit


def test_the_work_cap_holds_for_epochs_too(tmp_path, capsys):
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(wide_document(300)))
    assert main(["train", str(path), "--epochs", "200000"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 200000 of 2 rows through 91,201 parameters is over the cap of 20,000,000,000" in err, err


# --- 9. messages: one line, in the user's own terms -------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["check", "--dtype", "float16"], "error: backproof check: argument --dtype: invalid choice: 'float16'"),
    (["frobnicate"], "error: backproof: argument command: invalid choice: 'frobnicate'"),
    (["verify"], "error: backproof verify: the following arguments are required: MODULE.py:FUNCTION, SCENARIO"),
    (["check", ""], "error: '': an empty scenario: give a built-in name or a path to a JSON file"),
])
def test_usage_errors_are_one_line(args, message, capsys):
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(message), err


@pytest.mark.parametrize("inputs, message", [
    ('"abc"', "--inputs: give a JSON list of numbers"),
    ("[[1, 2], [3]]", "--inputs: the rows have different lengths"),
    ('[[{"a": 1}, 2]]', "--inputs: give a JSON list of numbers"),
    ("[[true, false]]", "--inputs: give a JSON list of numbers"),
    ("[[[1, 2]]]", "--inputs: give a JSON list of numbers (rows of numbers)"),
    ("strings.npy", "holds <U1 values; give numbers"),
])
def test_import_data_options_are_refused_by_name(inputs, message, tmp_path, capsys, monkeypatch):
    import numpy as np
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "strings.npy", np.array([["a", "b"]]))
    assert main(["export", "blog-2-3-3-1", "--to", "npz", "-o", "w.npz"]) == 0
    capsys.readouterr()
    code = main(["import", "w.npz", "--inputs", inputs, "--targets", "[[1]]", "-o", "out.json"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and not (tmp_path / "out.json").exists(), err
    code = main(["import", "w.npz", "--inputs", "[[1, 2, 3]]", "--targets", "[[1]]", "-o", "out.json"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: w.npz with --inputs and --targets: ") and "out.json" not in err, err


def test_a_safetensors_header_is_capped_before_it_is_read(tmp_path, capsys):
    """A 60 MB header was parsed without a cap; the file's first 8 bytes say how long the header claims to be."""
    pytest.importorskip("safetensors", reason="safetensors is not installed: pip install 'backproof[safetensors]'")
    path = tmp_path / "huge-header.safetensors"
    path.write_bytes((60 * 2**20).to_bytes(8, "little") + b"{" + b" " * 64)
    code = main(["import", str(path), "--inputs", "[[1]]", "--targets", "[[1]]", "-o", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and "its safetensors header claims 62,914,560 bytes, over the cap of 1,048,576" in err, err
