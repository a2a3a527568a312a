"""One skeleton: the three implementations define the same stages, same names, same order,
and `backproof read` cuts each stage out of the live source."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backproof.cli import main
from backproof.read import SKELETON, skeleton_problems, sources, stage_blocks
from conftest import NUMPY_ONLY


def test_every_implementation_has_the_skeleton_in_order():
    assert skeleton_problems() == []


def copies(tmp_path):
    """The three implementations' files copied, to break one of them."""
    copied = {}
    for framework, paths in sources().items():
        folder = tmp_path / framework
        folder.mkdir()
        copied[framework] = [Path(shutil.copy(path, folder / path.name)) for path in paths]
    return copied


def test_a_renamed_stage_fails_naming_the_file_and_the_stage(tmp_path):
    paths = copies(tmp_path)
    network = paths["torch"][0]
    network.write_text(network.read_text().replace("def gradients(", "def backward_pass("))
    assert skeleton_problems(paths) == [
        "torch (network.py): stage gradients is missing (renamed, or below the plumbing marker)"]


def test_stages_out_of_order_fail(tmp_path):
    paths = copies(tmp_path)
    network = paths["jax"][0]
    text = network.read_text()
    update_start, run_start = text.index("def update("), text.index("def run_step(")
    update = text[update_start:run_start]
    text = text[:update_start] + text[run_start:]
    text = text.replace("# --- plumbing", update + "# --- plumbing")     # update moved after train
    network.write_text(text)
    (problem,) = skeleton_problems(paths)
    assert problem.startswith("jax (network.py): stages out of order: ACTIVATIONS, LOSSES, LAYERS, Model, forward, "
                              "gradients, OPTIMIZERS, run_step, train, update")


def test_blocks_are_the_live_source():
    blocks = stage_blocks()
    for stage in SKELETON:
        assert set(blocks[stage]) == {"numpy", "torch", "jax"}, stage
        for block in blocks[stage].values():
            source = block.path.read_text(encoding="utf-8").splitlines()
            assert source[block.line - 1:block.line - 1 + len(block.lines)] == block.lines
            assert any(line.startswith(("def ", "class ", f"{stage} =")) and stage in line for line in block.lines)
            assert not any(line.startswith("# --- plumbing") for line in block.lines)


def test_read_prints_every_stage_side_by_side_when_wide(capsys):
    assert main(["read", "--width", "400"]) == 0
    out = capsys.readouterr().out
    for stage in SKELETON:
        assert f"== {stage} ==" in out
    assert "reference/network.py:" in out and "torch_impl/network.py:" in out and "jax_impl/network.py:" in out
    assert " │ " in out


def test_read_stacks_the_columns_when_narrow(capsys):
    assert main(["read", "update", "--width", "60"]) == 0
    out = capsys.readouterr().out
    assert " │ " not in out
    assert out.index("numpy  reference/optim.py") < out.index("torch  torch_impl/network.py") < \
        out.index("jax  jax_impl/network.py")


@pytest.mark.skipif(NUMPY_ONLY, reason="needs torch and JAX for their numbers")
def test_read_forward_with_the_blog_scenario_shows_code_and_values(capsys):
    assert main(["read", "forward", "--scenario", "blog-2-3-3-1", "--width", "80"]) == 0
    out = capsys.readouterr().out
    assert "def forward(model, x):" in out
    assert "layers.0.z" in out and "layers.2.a" in out
    for fw in ("numpy", "torch", "jax"):
        assert f"{fw:<5}  [[0.803482]]" in out        # post 002's out_n9 = 0.8035, in every framework


def test_read_without_torch_and_jax_says_skipped_with_the_hint():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['jax'] = None; "
            "from backproof.cli import main; sys.exit(main(['read', 'forward', '--scenario', 'blog-2-3-3-1']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "def forward(model, x):" in result.stdout and "torch_impl/network.py" in result.stdout
    assert "skipped torch: torch is not installed" in result.stdout
    assert "pip install 'backproof[torch]' -c constraints.txt" in result.stdout


def test_read_an_unknown_stage_is_one_line_and_exit_2(capsys):
    assert main(["read", "backward"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: read: 'backward' is not a stage (stages: ACTIVATIONS, LOSSES, LAYERS, Model, forward, "
                   "gradients, OPTIMIZERS, update, run_step, train)\n")
