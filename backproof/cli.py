"""The ``backproof`` command line.

    backproof check [SCENARIO ...] [--dtype float64|float32] [--frameworks numpy,torch,jax] [--json]
    backproof train SCENARIO [--epochs N] [--dtype ...] [--frameworks ...] [--finite-differences] [--json]
    backproof verify MODULE.py:FUNCTION SCENARIO [--dtype ...] [--frameworks torch,jax] [--directions N] [--json]
    backproof explain SCENARIO PARAMETER [--dtype ...] [--frameworks torch,jax] [--max-paths N] [--json]
    backproof report SCENARIO [...] [-o FILE.html|DIR] [--epochs N] [--finite-differences] [--explain PARAM]
    backproof list
    backproof conventions

Exit codes: 0 everything agrees; 1 a disagreement or a missed printed value;
2 bad input or usage; 3 an internal error (a bug in backproof: please report it);
4 not compared (fewer than two of the frameworks asked for ran; what ran agrees); 130 interrupted (Ctrl-C).
A verdict's code survives a closed pipe (``backproof check | head -1``).
"""

import functools
import argparse
import os
import sys
import warnings

from . import envelope
from .check import check_all
from .frameworks import FRAMEWORKS, parse_frameworks
from .names import network_shape
from .output import OutputError
from .render import scenario_text, train_text
from .scenario_file import ScenarioError, builtin_names, fit_dtype, load, multiply_adds, over_step_cap
from .training import train

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL, EXIT_NOT_COMPARED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class UsageError(Exception):
    """Bad input or usage: one line on stderr, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are one line: "error: backproof check: argument --dtype: invalid choice …; see
    backproof check --help" (argparse's own prints the whole usage block first), exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())}; see {self.prog} --help\n")


@functools.cache
def build_parser():
    """The parser, built once a process (argparse looks up its translations for every string it is given: building
    it again for every call of ``main`` dominated short commands run in-process, as the tests run them)."""
    parser = Parser(
        prog="backproof",
        description="Check that NumPy (hand-derived), PyTorch and JAX agree on a small network's "
                    "forward pass, loss, gradients and optimizer step.")
    parser.add_argument("--version", action="store_true",
                        help="print backproof's version and the versions of the libraries it found, then exit")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="run scenarios in every framework and compare the traces")
    check.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                       help="a built-in scenario name or a path to a JSON file (default: every built-in)")
    add_common(check)
    check.add_argument("--show-values", action="store_true",
                       help="print every tensor's value (from the first framework) under its row")
    check.add_argument("--strict", action="store_true",
                       help="fail on disagreements that a documented kink convention explains (exit 1)")
    check.add_argument("--serial", action="store_true",
                       help="run the frameworks one after another in this process (default with several "
                            "scenarios: worker processes, concurrently)")

    train = commands.add_parser("train", help="train in every framework and compare the whole runs")
    train.add_argument("scenario", metavar="SCENARIO", help="a built-in scenario name or a path to a JSON file")
    train.add_argument("--epochs", type=positive_int, help="override the scenario's train.epochs")
    train.add_argument("--finite-differences", action="store_true",
                       help="also train the NumPy reference with central finite differences (post 001's method)")
    train.add_argument("--strict", action="store_true",
                       help="fail a drift beyond tolerance even when the rounding noise floor explains it")
    train.add_argument("--plot", metavar="FILE.svg|FILE.png",
                       help="also write the loss curves and the drift per epoch to this figure (needs matplotlib)")
    add_common(train)

    export = commands.add_parser("export", help="write a scenario's weights as a torch state_dict, safetensors, "
                                                "npz or Flax params",
                                 description="torch: a state_dict whose keys fit an nn.Sequential of nn.Linear and "
                                             "activation modules; safetensors and npz: canonical names, (out, in), "
                                             "the activations stored beside them.")
    export.add_argument("scenario", metavar="SCENARIO", help="a built-in scenario name or a path to a JSON file")
    export.add_argument("--to", choices=("torch", "safetensors", "npz", "flax"), required=True,
                        help="the format (flax: linen Dense params, .msgpack)")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
    export.add_argument("--dtype", choices=("float64", "float32"), help="override the scenario's dtype")

    imported = commands.add_parser("import", help="a .pt state_dict, .safetensors, .npz or Flax .msgpack file -> "
                                                  "a scenario file")
    imported.add_argument("weights", metavar="FILE",
                          help="a .pt (nn.Sequential state_dict), .safetensors, .npz or .msgpack (Flax params)")
    add_import_options(imported, activations=True)

    import_torch = commands.add_parser("import-torch", help="an nn.Sequential from your code -> a scenario file",
                                       description="MODULE.py:FACTORY names a function that returns an "
                                                   "nn.Sequential, or a module whose children are nn.Linear and "
                                                   "supported activations, in order.")
    import_torch.add_argument("target", metavar="MODULE.py:FACTORY")
    import_torch.add_argument("--timeout", type=positive_float, default=60.0,
                              help="seconds the module's import and the factory may each take (default 60); the "
                                   "factory runs in a child process")
    add_import_options(import_torch, activations=False)

    report = commands.add_parser(
        "report", help="one self-contained HTML page per scenario: diagram, agreement map, curves, kinks, ε sweep",
        description="Write one HTML file per scenario (inline CSS and SVG, no script, nothing fetched; two runs "
                    "give the same bytes). Needs matplotlib: pip install 'backproof[report]'.")
    report.add_argument("scenarios", nargs="+", metavar="SCENARIO",
                        help="a built-in scenario name or a path to a JSON file")
    report.add_argument("-o", "--output", metavar="FILE.html|DIR",
                        help="the file to write (one scenario), or a folder for several (default: NAME.html here)")
    report.add_argument("--epochs", type=positive_int, help="override the scenario's train.epochs")
    report.add_argument("--finite-differences", action="store_true",
                        help="also train the reference with finite differences, drawn beside the analytic curves")
    report.add_argument("--explain", metavar="PARAMETER",
                        help="draw this parameter's chain-rule paths on the diagram, e.g. w1 or layers.0.weight[0,0]")
    report.add_argument("--dtype", choices=("float64", "float32"), help="override the scenario's dtype")
    report.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help="comma-separated subset of numpy,torch,jax (default: all three)")

    verify = commands.add_parser(
        "verify", help="check your own gradient function against torch, JAX and finite differences",
        description="FUNCTION(params, inputs, targets) gets NumPy arrays in the canonical layout "
                    "(params: {'layers.0.weight': (out, in), 'layers.0.bias': (out,), ...}) and returns "
                    "the gradient of the scenario's loss for every parameter under the same names.")
    verify.add_argument("target", metavar="MODULE.py:FUNCTION",
                        help="a Python file (or an importable module name) and the function in it")
    verify.add_argument("scenario", metavar="SCENARIO", help="a built-in scenario name or a path to a JSON file")
    verify.add_argument("--dtype", choices=("float64", "float32"), help="override the scenario's dtype")
    verify.add_argument("--frameworks", default="torch,jax",
                        help="the autodiff oracles, a comma-separated subset of numpy,torch,jax (default: torch,jax); "
                             "finite differences always run")
    verify.add_argument("--directions", type=bounded(MAX_DIRECTIONS), default=8,
                        help=f"random unit directions for the directional check (default 8, at most {MAX_DIRECTIONS})")
    verify.add_argument("--timeout", type=positive_float, default=60.0,
                        help="seconds the function (and its module's import) may take before verify gives up "
                             "(default 60)")
    verify.add_argument("--oracles", default="",
                        help="also run established checkers on the oracles' own autodiff: gradcheck "
                             "(torch.autograd.gradcheck), check_grads (jax.test_util.check_grads), comma-separated")
    verify.add_argument("--json", action="store_true", help="print one JSON document to stdout")

    layer = commands.add_parser(
        "verify-layer", help="check one layer's hand-written backward pass (homework mode)",
        description="BACKWARD(x, params, dout) gets NumPy arrays in torch's layouts (params: {'weight': …, 'bias': …}) "
                    "and returns {'x': dx, 'weight': dW, 'bias': db}; with --forward, the course style: "
                    "FORWARD(x, *params, **config) -> (out, cache) and BACKWARD(dout, cache) -> (dx, dW, db). x and "
                    "dout are drawn (seeded); the truth is torch's and JAX's vector-Jacobian product and finite "
                    "differences.")
    layer.add_argument("target", metavar="MODULE.py:BACKWARD",
                       help="a Python file (or an importable module name) and the backward function in it")
    layer.add_argument("scenario", metavar="SCENARIO", help="a built-in scenario name or a path to a JSON file")
    layer.add_argument("--layer", type=int, required=True, metavar="I", help="the scenario's layer to check (0 first)")
    layer.add_argument("--part", choices=("layer", "activation", "loss"), default="layer",
                       help="the layer itself (default), its activation, or the loss after the last layer "
                            "(BACKWARD(x, t) -> (loss, dx), the course's softmax_loss)")
    layer.add_argument("--forward", metavar="FORWARD",
                       help="the forward function's name in the same file: the course style (its output is checked)")
    layer.add_argument("--inputs", choices=("drawn", "scenario"), default="drawn",
                       help="x drawn standard normal, no exact kink or tie (default), or the scenario's own")
    layer.add_argument("--seed", type=int, default=0, help="the seed of x and dout (default 0)")
    layer.add_argument("--frameworks", default="torch,jax",
                       help="the autodiff oracles, a subset of torch,jax (default both); finite differences always run")
    layer.add_argument("--timeout", type=positive_float, default=60.0,
                       help="seconds the code (and its module's import) may take (default 60)")
    layer.add_argument("--json", action="store_true", help="print one JSON document to stdout")

    explain = commands.add_parser(
        "explain", help="the chain rule for one parameter, every path with its numbers",
        description="Print each factor of dE/dPARAMETER along every path from the parameter to the loss, "
                    "their products and sum, beside torch, JAX and finite differences, and the SGD update.")
    explain.add_argument("scenario", metavar="SCENARIO", help="a built-in scenario name or a path to a JSON file")
    explain.add_argument("parameter", metavar="PARAMETER",
                         help="one element, canonical (layers.0.weight[0,0]) or an alias of the scenario (w1)")
    explain.add_argument("--dtype", choices=("float64", "float32"), help="override the scenario's dtype")
    explain.add_argument("--frameworks", default="torch,jax",
                         help="the autodiff values to show beside the sum (default: torch,jax)")
    explain.add_argument("--max-paths", type=bounded(MAX_PATHS), default=64,
                         help=f"print every path up to this many products, else the δ recursion (default 64, "
                              f"at most {MAX_PATHS:,})")
    explain.add_argument("--json", action="store_true", help="print one JSON document to stdout")

    read = commands.add_parser(
        "read", help="the numpy, torch and jax versions of each stage side by side, cut from the source",
        description="Print each stage (ACTIVATIONS, LOSSES, Model, forward, gradients, OPTIMIZERS, update, run_step, "
                    "train) "
                    "as three columns, numpy | torch | jax, each headed with file:line; one after another "
                    "when the terminal is narrower than the three columns need.")
    read.add_argument("stages", nargs="*", metavar="STAGE", help="the stages to print (default: all, in order)")
    read.add_argument("--scenario", help="also print each stage's numbers for this scenario in every framework")
    read.add_argument("--dtype", choices=("float64", "float32"), help="override the scenario's dtype")
    read.add_argument("--width", type=positive_int, help="the width to fit (default: the terminal's)")

    commands.add_parser("list", help="list the built-in scenarios")
    commands.add_parser("conventions", help="print the registry of framework conventions (Markdown)")
    return parser


def add_import_options(command, activations):
    if activations:
        command.add_argument("--activations", help="comma-separated, one per layer, leaky_relu with its slope as "
                                                   "leaky_relu:0.1 (safetensors, npz and msgpack files written by "
                                                   "backproof carry them; a .pt state_dict never does)")
    command.add_argument("--inputs", required=True, metavar="JSON|FILE.npy", help="the batch, (n, in)")
    command.add_argument("--targets", required=True, metavar="JSON|FILE.npy",
                         help="(n, out), or n class indices for cross_entropy")
    command.add_argument("--loss", default="mse", help="the loss (default mse)")
    command.add_argument("--lr", type=float, default=0.01, help="SGD's learning rate (default 0.01)")
    command.add_argument("--name", help="the scenario's name (default: the file's)")
    command.add_argument("-o", "--output", required=True, metavar="SCENARIO.json", help="the scenario file to write")


def version_line():
    """'0.1.0 (numpy 2.4.6, torch 2.13.0+cpu, jax 0.10.2, optax 0.2.8)': backproof and what it found installed."""
    import importlib.metadata
    from . import __version__
    found = []
    for library in ("numpy", "torch", "jax", "optax", "flax", "matplotlib"):
        try:
            found.append(f"{library} {importlib.metadata.version(library)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"{__version__} ({', '.join(found)})"


def add_common(command):
    command.add_argument("--dtype", choices=("float64", "float32"),
                         help="override the scenario's dtype")
    command.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                         help="comma-separated subset of numpy,torch,jax (default: all three)")
    command.add_argument("--require", default="", metavar="FRAMEWORKS",
                         help="comma-separated frameworks that must run: one that is missing or fails is a FAIL "
                              "(exit 1), e.g. --require torch,jax in CI")
    command.add_argument("--json", action="store_true", help="print one JSON document to stdout")


def epochs_within_caps(epochs, scenarios):
    """UsageError when --epochs takes a scenario over the step or work cap (the caps a file's train block has)."""
    if epochs is None:
        return
    for scenario in scenarios:
        rows = scenario.inputs.shape[0]
        over = over_step_cap(epochs, rows // scenario.schedule(epochs)[1], rows, multiply_adds(scenario))
        if over:
            raise UsageError(f"--epochs {epochs} {over}")


def verdict_code(reports):
    """1 if any report fails, else 4 if any compared nothing (fewer than two of several frameworks ran), else 0."""
    if any(not r.ok and not r.not_compared for r in reports):
        return EXIT_FAIL
    return EXIT_NOT_COMPARED if any(r.not_compared for r in reports) else EXIT_OK


MAX_DIRECTIONS = 1_000        # each direction is two loss evaluations
MAX_PATHS = 10_000            # each path is printed


def bounded(cap):
    """A whole number from 1 to ``cap``, for argparse."""
    def parse(text):
        value = positive_int(text)
        if value > cap:
            raise argparse.ArgumentTypeError(f"must be at most {cap:,}, not {value:,}")
        return value
    return parse


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def load_scenarios(specs, dtype):
    """Load (and validate) every scenario before anything runs, so bad input fails fast."""
    scenarios = []
    for spec in specs or builtin_names():
        try:
            scenario = load(spec)
            scenarios.append(fit_dtype(scenario, dtype, spec) if dtype else scenario)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from None
    return scenarios


def print_json(document):
    """One JSON document on stdout, strict JSON (see backproof/envelope.py)."""
    sys.stdout.write(envelope.dumps(document) + "\n")


def cmd_check(args):
    frameworks, require = frameworks_arg(args.frameworks), require_arg(args)
    scenarios = load_scenarios(args.scenarios, args.dtype)
    parallel = not args.serial and len(scenarios) > 1
    reports = check_all(scenarios, frameworks, strict=args.strict, parallel=parallel, require=require)
    failed = [r.scenario.name for r in reports if not r.ok and not r.not_compared]
    uncompared = [r.scenario.name for r in reports if r.not_compared]
    args.exit_code = verdict_code(reports)
    if args.json:
        print_json(envelope.document("check", [envelope.check_result(r, frameworks) for r in reports]))
    else:
        for report in reports:
            print(scenario_text(report, show_values=args.show_values))
        ok = len(scenarios) - len(failed) - len(uncompared)
        print(f"{ok} of {len(scenarios)} scenarios OK"
              + (f"; failed: {', '.join(failed)}" if failed else "")
              + (f"; not compared (only one framework ran): {', '.join(uncompared)}" if uncompared else ""))
    return args.exit_code


def require_arg(args):
    """--require: () or the frameworks that must run; each must also be among --frameworks."""
    if not args.require:
        return ()
    require = frameworks_arg(args.require)
    absent = [fw for fw in require if fw not in frameworks_arg(args.frameworks)]
    if absent:
        raise UsageError(f"--require {args.require}: {', '.join(absent)} is not among --frameworks {args.frameworks}")
    return require


def cmd_train(args):
    frameworks = frameworks_arg(args.frameworks)
    (scenario,) = load_scenarios([args.scenario], args.dtype)
    if scenario.train is None and args.epochs is None:
        raise UsageError(f"{args.scenario}: train is missing; add a train block or give --epochs")
    epochs_within_caps(args.epochs, [scenario])
    if args.plot:
        from .output import OutputError, check_writable
        from .report import ReportError, matplotlib_or_error
        try:
            if not args.plot.lower().endswith((".svg", ".png")):
                raise ReportError(f"{args.plot}: --plot writes .svg or .png")
            matplotlib_or_error()
            check_writable(args.plot)
        except (ReportError, OutputError) as exc:
            raise UsageError(str(exc)) from None
    report = train(scenario, frameworks, args.epochs, args.finite_differences, strict=args.strict,
                   require=require_arg(args))
    if args.plot:
        plot_training(report, args.plot)
    args.exit_code = verdict_code([report])
    if args.json:
        print_json(envelope.document("train", [envelope.train_result(report, frameworks)]))
    else:
        print(train_text(report))
    return args.exit_code


def plot_training(report, path):
    """The loss/drift figure alone (save_figure writes it whole or not at all)."""
    from matplotlib.figure import Figure

    from .report import save_figure, training_figure
    save_figure(training_figure(Figure, report), path)


def cmd_report(args):
    from pathlib import Path

    from .explain import ExplainError
    from .output import OutputError, check_writable, file_name, shown, write_text
    from .report import ReportError, build, matplotlib_or_error
    frameworks = frameworks_arg(args.frameworks)
    try:
        matplotlib_or_error()
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    scenarios = load_scenarios(args.scenarios, args.dtype)
    epochs_within_caps(args.epochs, scenarios)
    folder = Path(args.output) if args.output and (len(scenarios) > 1 or Path(args.output).is_dir()) else None
    if len(scenarios) > 1 and (folder is None or not folder.is_dir()):
        raise UsageError(f"{shown(args.output or '.')}: with several scenarios, -o names an existing folder")
    if folder is not None or not args.output:   # names from the scenarios: made safe, kept inside the folder
        names = [file_name(scenario.name, ".html") for scenario in scenarios]
        clash = next((name for name in names if names.count(name) > 1), None)
        if clash:
            raise UsageError(f"two scenarios would both be written to {clash}: give them different names")
        targets = [(folder or Path(".")) / name for name in names]
    else:
        targets = [Path(args.output)]
    try:
        for target in targets:
            check_writable(target)
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    pages = []
    for scenario in scenarios:      # every page is built before any is written: a failure writes nothing
        try:
            pages.append(build(scenario, frameworks, args.epochs, args.finite_differences, args.explain))
        except ExplainError as exc:
            raise UsageError(str(exc)) from None
    args.exit_code = verdict_code([result for _, result in pages])
    for scenario, target, (text, result) in zip(scenarios, targets, pages):
        write_text(target, text)
        print(f"wrote {shown(target)} ({'OK' if result.ok else 'FAIL'}: {scenario.name})")
    return args.exit_code


def cmd_export(args):
    from .output import OutputError, check_writable
    from .weights import WeightsError, export
    (scenario,) = load_scenarios([args.scenario], args.dtype)
    try:
        check_writable(args.output)
        export(scenario, args.to, args.output)
    except (OutputError, WeightsError) as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {args.output} ({args.to}, {scenario.dtype}: {scenario.name})")
    if args.to == "torch" and scenario.typed:       # the module it loads into, as torch prints it
        from .weights import typed_sequential
        print(f"load it with model.load_state_dict(torch.load({str(args.output)!r}), strict=True) into this "
              f"model:\n{typed_sequential(scenario)[0]}")
    elif args.to == "torch":        # a state_dict holds tensors only: the activations and slopes travel as an option
        from .weights import activations_option, layers_of
        print(f"import it back with: backproof import {args.output} --activations "
              f"{activations_option(layers_of(scenario))} …")
    return EXIT_OK


def array_argument(text, option, images=False):
    """--inputs/--targets: a JSON list of numbers, or a .npy file of numbers read without pickle -> a float64 array
    (class indices for --targets stay whole numbers); UsageError naming the option for anything else. images: the
    inputs of a conv net may be (n, C, L) or (n, C, H, W)."""
    import json

    import numpy as np
    if text.endswith(".npy"):
        try:
            value = np.load(text, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{option} {text}: cannot be read: {' '.join(str(exc).split())}") from None
        where = f"{option} {text}"
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{option}: not a JSON list or a .npy file: {exc}") from None
        where = option

    deepest = 4 if images else 2

    def numbers(item, depth=0):        # booleans are refused, not read as 1.0 and 0.0
        if isinstance(item, bool) or depth > deepest:
            return False
        if isinstance(item, list):
            return all(numbers(element, depth + 1) for element in item)
        return isinstance(item, (int, float))

    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise UsageError(f"{where}: holds {value.dtype} values; give numbers")
        array = value
    else:
        if not isinstance(value, list) or not numbers(value):
            raise UsageError(f"{where}: give a JSON list of numbers (rows of numbers), not {text[:40]!r}")
        try:
            array = np.array(value)             # whole numbers stay whole: class indices for --targets
        except ValueError:                      # NumPy refuses ragged rows
            raise UsageError(f"{where}: the rows have different lengths") from None
    if array.ndim not in ((1, 2, 3, 4) if images else (1, 2)) or array.size == 0:
        raise UsageError(f"{where}: give rows of numbers (n, features)" + (", (n, C, L) or (n, C, H, W)" if images
                                                                            else ", or n class indices for --targets"))
    if not np.all(np.isfinite(array)):
        raise UsageError(f"{where}: every number must be finite")
    return array


def write_imported(args, layers, dtype, source, proof=None):
    import json
    from pathlib import Path

    from .output import OutputError, check_writable, shown, write_text
    from .scenario_file import parse
    from .weights import scenario_document
    name = args.name or Path(source.split(":")[0]).stem
    document = scenario_document(name, layers, dtype, array_argument(args.inputs, "--inputs", images=proof is not None),
                                 array_argument(args.targets, "--targets"), args.loss, args.lr, source)
    try:        # exactly what `check` will read; errors name the user's inputs, not the file not yet written
        scenario = parse(json.loads(json.dumps(document)), f"{shown(source)} with --inputs and --targets")
        check_writable(args.output)
    except (ScenarioError, OutputError) as exc:
        raise UsageError(str(exc)) from None
    if proof is not None:
        prove_import(scenario, proof, shown(source))
    write_text(args.output, json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.output} ({len(layers)} layers, {dtype}); check it with: backproof check {args.output}")
    return EXIT_OK


def prove_import(scenario, proof, source):
    """UsageError unless the scenario computes what the module computed on the same inputs, layer by layer (the
    reference's forward against the module's own value after each layer, within the step tolerance of the dtype):
    a scenario that differs from its module is never written."""
    import numpy as np

    import reference
    from .compare import compare_arrays
    _, activations = reference.forward(reference.Model(scenario), np.array(scenario.inputs))
    for i, ((nodes, theirs), ours) in enumerate(zip(proof, activations)):
        comparison = compare_arrays(f"layers.{i}.a", "module", np.asarray(theirs, scenario.dtype), "scenario", ours,
                                    scenario.dtype)
        if not comparison.ok:
            raise UsageError(f"{source}: the scenario does not compute what the module computes: layers[{i}] "
                             f"({scenario.layers[i].type}, read from {nodes}) differs from the module's own output "
                             f"by up to {comparison.max_abs:.3g}; nothing was written")


def cmd_import(args):
    from .weights import WeightsError, read_weights
    try:
        layers, dtype = read_weights(args.weights, args.activations or None)
    except WeightsError as exc:
        raise UsageError(str(exc)) from None
    return write_imported(args, layers, dtype, args.weights)


def cmd_import_torch(args):
    from reference.registry import LAYER_TYPES

    from .sandbox import SandboxError, run
    inputs = array_argument(args.inputs, "--inputs", images=True)
    try:      # the factory runs in a child process (backproof/sandbox.py), with a hard timeout
        metadata, values = run("torch_module", args.target, {"inputs": inputs}, args.timeout)
    except SandboxError as exc:
        raise UsageError(str(exc)) from None
    layers, outputs = [], []
    for k, layer in enumerate(metadata["layers"]):
        entry = {key: value for key, value in layer.items() if key not in ("bias", "weight", "nodes", "arrays")}
        if layer["weight"] and "bias" in LAYER_TYPES[layer.get("type", "linear")].parameters:
            entry["bias"] = None                        # a layer that can hold a bias and holds none
        for key in layer["arrays"]:                     # weight, bias, a batch norm's running statistics
            entry[key] = values[f"{key}{k}"]
        layers.append(entry)
        outputs.append((", ".join(layer["nodes"]), values[f"output{k}"]))
    return write_imported(args, layers, metadata["dtype"], args.target, proof=outputs)


def cmd_list(args):
    scenarios = [load(name) for name in builtin_names()]
    shapes = [network_shape(scenario) for scenario in scenarios]
    width = max(len(shape) for shape in shapes)             # a typed network's shape is longer: the columns follow
    names = max(len(scenario.name) for scenario in scenarios)
    for scenario, shape in zip(scenarios, shapes):
        print(f"{scenario.name:<{names}} {shape:<{width}} {scenario.loss:<20} {scenario.optimizer.name:<8} "
              f"{scenario.description}")
    return EXIT_OK


def frameworks_arg(text):
    try:
        return parse_frameworks(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_conventions(args):
    from .conventions import table
    print("\n".join(table(hints=True)))
    return EXIT_OK


def cmd_verify(args):
    from .verify import VerifyError, verify
    oracles = frameworks_arg(args.frameworks)
    (scenario,) = load_scenarios([args.scenario], args.dtype)
    from .verify import ESTABLISHED
    established = [name.strip() for name in args.oracles.split(",") if name.strip()]
    unknown = [name for name in established if name not in ESTABLISHED]
    if unknown:
        raise UsageError(f"--oracles: {unknown[0]!r} is not an established checker (known: {', '.join(ESTABLISHED)})")
    try:     # the function runs in a child process (backproof/sandbox.py)
        result = verify(args.target, scenario, oracles, directions=args.directions, timeout=args.timeout,
                        established=established)
    except VerifyError as exc:
        raise UsageError(str(exc)) from None
    return print_verdict(args, result, lambda: envelope.document("verify", [
        envelope.verify_result(result, scenario, oracles)]))


def print_verdict(args, result, document):
    """The verdict's exit code set, then the result as text, or with --json as ``document()``: verify's and
    verify-layer's ending."""
    args.exit_code = EXIT_OK if result.ok else EXIT_FAIL
    if args.json:
        print_json(document())
    else:
        print(result)
    return args.exit_code


def cmd_verify_layer(args):
    from .layer_verify import LayerVerifyError, verify_layer
    oracles = [fw for fw in frameworks_arg(args.frameworks) if fw != "numpy"]
    (scenario,) = load_scenarios([args.scenario], None)
    try:     # the code runs in a child process (backproof/sandbox.py)
        result = verify_layer(args.target, scenario, args.layer, args.part, args.forward, args.seed, oracles,
                              args.inputs, args.timeout)
    except LayerVerifyError as exc:
        raise UsageError(str(exc)) from None
    return print_verdict(args, result, lambda: envelope.document("verify-layer", [
        envelope.verify_layer_result(result, scenario, oracles)]))


def cmd_explain(args):
    from .explain import ExplainError, explain
    frameworks = frameworks_arg(args.frameworks)
    (scenario,) = load_scenarios([args.scenario], args.dtype)
    try:
        result = explain(scenario, args.parameter, frameworks, args.max_paths)
    except ExplainError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print_json(envelope.document("explain", [envelope.explain_result(result, frameworks)]))
    else:
        print(result)
    return EXIT_OK


def cmd_read(args):
    import shutil
    from .frameworks import run_each
    from .read import SKELETON, sources, stage_blocks
    from .render import read_text
    import difflib
    by_name = {stage.lower(): stage for stage in SKELETON}             # stage names in any case: optimizers, LAYERS
    unknown = [stage for stage in args.stages if stage.lower() not in by_name]
    if unknown:
        close = difflib.get_close_matches(unknown[0].lower(), list(by_name), n=1)
        hint = f"; did you mean {by_name[close[0]]}?" if close else ""
        raise UsageError(f"read: {unknown[0]!r} is not a stage{hint} (stages: {', '.join(SKELETON)})")
    asked = {by_name[stage.lower()] for stage in args.stages}
    stages = [stage for stage in SKELETON if stage in asked] if args.stages else list(SKELETON)
    scenario = runs = None
    if args.scenario:
        (scenario,) = load_scenarios([args.scenario], args.dtype)
        runs = run_each(lambda name, module: module.run_step(scenario), FRAMEWORKS)
    width = args.width or shutil.get_terminal_size().columns
    root = sources()["numpy"][0].parent.parent
    sys.stdout.write(read_text(stage_blocks(stages), width, root, scenario, runs))
    return EXIT_OK


COMMANDS = {"check": cmd_check, "read": cmd_read, "train": cmd_train, "verify": cmd_verify,
            "verify-layer": cmd_verify_layer, "explain": cmd_explain,
            "report": cmd_report, "export": cmd_export, "import": cmd_import, "import-torch": cmd_import_torch,
            "list": cmd_list, "conventions": cmd_conventions}
VERDICT_COMMANDS = ("check", "train", "verify", "verify-layer", "report")


class Escaping:
    """A text stream that writes control characters as escapes (\x1b, \r, \u202e …): a scenario's description or
    a path can hold an ANSI sequence that would clear the screen or print a fake "OK". Newlines and tabs pass."""

    TABLE = {c: f"\\x{c:02x}" for c in [*range(0, 9), *range(11, 32), 127, *range(0x80, 0xa0)]}
    TABLE.update({c: f"\\u{c:04x}" for c in (0x2028, 0x2029, 0x200e, 0x200f, *range(0x202a, 0x202f),
                                              *range(0x2066, 0x206a))})

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return self.stream.write(text.translate(self.TABLE))

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv=None):
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Escaping(stdout), Escaping(stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _main(argv=None):
    for stream in (sys.stdout.stream, sys.stderr.stream):     # a name no encoding can print is escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if list(sys.argv[1:] if argv is None else argv)[:1] == ["--version"]:
        print(f"backproof {version_line()}")      # one line, never wrapped by argparse
        return EXIT_OK
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    # the code a closed pipe leaves: a command with a verdict sets its own before it prints; until then a cut-off
    # run never passes
    args.exit_code = EXIT_FAIL if args.command in VERDICT_COMMANDS else EXIT_OK
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = COMMANDS[args.command](args)
        except (UsageError, OutputError) as exc:        # OutputError: a write failed (a full disk), nothing left
            code = EXIT_USAGE
            print(f"error: {exc}", file=sys.stderr)
        except KeyboardInterrupt:          # Ctrl-C: one line, the shell's code for SIGINT
            code = EXIT_INTERRUPTED
            print("interrupted", file=sys.stderr)
        except BrokenPipeError:            # `backproof … | head`: the reader left; the verdict's code stands
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = getattr(args, "exit_code", EXIT_FAIL)
        except Exception as exc:  # a bug in backproof: one line, not a traceback, unless asked for
            if os.environ.get("BACKPROOF_DEBUG"):
                raise
            print(f"internal error: {type(exc).__name__}: {exc} (set BACKPROOF_DEBUG=1 for the traceback)",
                  file=sys.stderr)
            code = EXIT_INTERNAL
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return code
