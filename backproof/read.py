"""The three implementations side by side, stage by stage, cut from the live source.

Every implementation defines the same stages in the same order (``SKELETON``). A stage
is a top-level definition; its block runs from there to the next stage, the plumbing
marker (``# --- plumbing``) or the end of its file, so a helper written right under a
stage (JAX's jitted ``step`` under ``run_step``) is read with it. ``skeleton_problems``
is what tests/test_skeleton.py asserts is empty; ``stage_blocks`` is what
``backproof read`` and docs/side-by-side.* print.
"""

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from reference.registry import OPTIMIZER_TYPES

SKELETON = ("ACTIVATIONS", "LOSSES", "LAYERS", "Model", "forward", "gradients", "OPTIMIZERS", "update", "run_step", "train")
PLUMBING = "# --- plumbing"

# what each stage is, for headings
STAGE_NOTES = {
    "ACTIVATIONS": "name -> activation function",
    "LOSSES": "name -> loss function L(y, t)",
    "LAYERS": "layer type -> the layer: forward (and in the reference, backward by hand)",
    "Model": "the scenario's layers, weights copied in",
    "forward": "x -> (zs, activations)",
    "gradients": "forward, loss and backward on one batch -> StepValues",
    "OPTIMIZERS": "name -> update rule (" + ", ".join(kind.torch.rsplit(".", 1)[-1]
                                                       for kind in OPTIMIZER_TYPES.values()) + ")",
    "update": "(params, grads, state) -> (new params, new optimizer state)",
    "run_step": "one step, traced under canonical names",
    "train": "whole runs: epochs of optimizer steps over the rows in file order",
}

# each implementation's files, in reading order (the reference is one small file per concept)
FILES = {
    "numpy": ("reference", ("activations.py", "losses.py", "layers.py", "network.py", "optim.py", "train.py")),
    "torch": ("torch_impl", ("network.py",)),
    "jax": ("jax_impl", ("network.py",)),
}


def sources():
    """framework -> [Path] of its files, found without importing the packages (no torch or JAX needed)."""
    found = {}
    for framework, (package, names) in FILES.items():
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"the {package} package is not installed")
        folder = Path(spec.origin).parent
        found[framework] = [folder / name for name in names]
    return found


@dataclass
class Block:
    """One stage of one implementation: where it is and its source lines."""

    framework: str
    stage: str
    path: Path
    line: int                   # 1-based first line (a comment right above the definition included)
    lines: list

    def where(self, root=None):
        path = self.path
        if root is not None:
            try:
                path = path.relative_to(root)
            except ValueError:
                pass
        return f"{path.as_posix()}:{self.line}"


def _definitions(tree):
    """(name, node) for each top-level def, class or NAME = … assignment, in order."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            yield node.targets[0].id, node


def _plumbing_line(text):
    """The 1-based line of the plumbing marker, or None."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(PLUMBING):
            return number
    return None


def scan(paths):
    """[(stage, path, first line, end line)] of the stages found in ``paths``, in reading order.

    A table stage (``NAME = {…}``) also takes the definitions written right above it, since
    its entries name them: the reference's ``ACTIVATIONS`` block holds every activation
    function, ``OPTIMIZERS`` every update rule.
    """
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        plumbing = _plumbing_line(text) or len(lines) + 1
        body = [node for node in ast.parse(text).body if not isinstance(node, (ast.Import, ast.ImportFrom))
                and not (isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant))]
        starts, previous_end = [], 0
        for name, node in _definitions(ast.parse(text)):
            first = _first_line(node)
            if name in SKELETON and first < plumbing:
                if isinstance(node, ast.Assign):
                    first = min(_first_line(n) for n in body if n.lineno > previous_end and n.lineno <= first)
                while first > 1 and lines[first - 2].startswith("#") and not lines[first - 2].startswith(PLUMBING):
                    first -= 1          # the comment that introduces it
                starts.append((name, first))
                previous_end = node.end_lineno
        for k, (name, first) in enumerate(starts):
            end = starts[k + 1][1] if k + 1 < len(starts) else plumbing
            found.append((name, path, first, end))
    return found


def _first_line(node):
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def skeleton_problems(paths_by_framework=None):
    """One line per problem: a stage missing, defined twice, renamed or out of order; [] when all is well."""
    problems = []
    for framework, paths in (paths_by_framework or sources()).items():
        found = scan(paths)
        names = [name for name, *_ in found]
        where = ", ".join(p.name for p in paths)
        for stage in SKELETON:
            if names.count(stage) == 0:
                problems.append(f"{framework} ({where}): stage {stage} is missing (renamed, or below the plumbing marker)")
            elif names.count(stage) > 1:
                problems.append(f"{framework} ({where}): stage {stage} is defined {names.count(stage)} times")
        present = [name for name in dict.fromkeys(names)]
        expected = [stage for stage in SKELETON if stage in present]
        if present != expected:
            problems.append(f"{framework} ({where}): stages out of order: {', '.join(present)} "
                            f"(the skeleton is {', '.join(SKELETON)})")
    return problems


def stage_blocks(stages=SKELETON, paths_by_framework=None):
    """{stage: {framework: Block}} cut from the live source, trailing blank lines dropped."""
    blocks = {stage: {} for stage in stages}
    for framework, paths in (paths_by_framework or sources()).items():
        for name, path, first, end in scan(paths):
            if name not in blocks:
                continue
            lines = path.read_text(encoding="utf-8").splitlines()[first - 1:end - 1]
            while lines and not lines[-1].strip():
                lines.pop()
            blocks[name][framework] = Block(framework, name, path, first, lines)
    return blocks


def docstring(block):
    """The first line of a stage's docstring, or ''."""
    node = ast.parse("\n".join(block.lines)).body
    for item in node:
        if isinstance(item, (ast.FunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(item)
            return doc.splitlines()[0] if doc else ""
    return ""


# --- the numbers beside each stage ---------------------------------------------------------------

def stage_tensors(scenario, stage):
    """The canonical names whose values illustrate ``stage`` for ``scenario``."""
    n = len(scenario.layers)
    params = list(scenario.parameters())
    return {
        "ACTIVATIONS": [f"layers.{i}.a" for i in range(n)],
        "LOSSES": ["loss"],
        "LAYERS": [f"layers.{i}.z" for i in range(n)],
        "Model": params,
        "forward": [name for i in range(n) for name in (f"layers.{i}.z", f"layers.{i}.a")],
        "gradients": ["loss"] + [f"layers.{i}.dz" for i in reversed(range(n))]
                     + [f"grad.{p}" for p in params] + ["grad.inputs"],
        "OPTIMIZERS": [],
        "update": [f"state.{p}.{b}" for p in params for b in scenario.optimizer.buffers()]
                  + [f"updated.{p}" for p in params],
        "run_step": ["output", "loss"],
        "train": [],
    }[stage]
