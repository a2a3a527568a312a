"""The ``backproof`` command line.

    backproof check [SCENARIO ...] [--dtype float64|float32] [--frameworks numpy,torch,jax] [--json]
    backproof list

Exit codes: 0 everything agrees; 1 a disagreement or a missed printed value;
2 bad input or usage; 3 an internal error (a bug in backproof: please report it).
"""

import argparse
import json
import os
import sys
import warnings

from .check import check_scenario
from .frameworks import FRAMEWORKS, parse_frameworks
from .report import scenario_text
from .scenario import ScenarioError, builtin_names, load

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input or usage: one line on stderr, exit code 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="backproof",
        description="Check that NumPy (hand-derived), PyTorch and JAX agree on a small network's "
                    "forward pass, loss, gradients and SGD update.")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="run scenarios in every framework and compare the traces")
    check.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                       help="a built-in scenario name or a path to a JSON file (default: every built-in)")
    add_common(check)
    check.add_argument("--show-values", action="store_true",
                       help="print every tensor's value (from the first framework) under its row")

    commands.add_parser("list", help="list the built-in scenarios")
    return parser


def add_common(command):
    command.add_argument("--dtype", choices=("float64", "float32"),
                         help="override the scenario's dtype")
    command.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                         help="comma-separated subset of numpy,torch,jax (default: all three)")
    command.add_argument("--json", action="store_true", help="print one JSON document to stdout")


def load_scenarios(specs, dtype):
    """Load (and validate) every scenario before anything runs, so bad input fails fast."""
    scenarios = []
    for spec in specs or builtin_names():
        try:
            scenario = load(spec)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from None
        scenarios.append(scenario.with_dtype(dtype) if dtype else scenario)
    return scenarios


def cmd_check(args):
    frameworks = frameworks_arg(args.frameworks)
    scenarios = load_scenarios(args.scenarios, args.dtype)
    reports = [check_scenario(scenario, frameworks) for scenario in scenarios]
    ok = all(report.ok for report in reports)
    if args.json:
        json.dump({"ok": ok, "scenarios": [report.to_json() for report in reports]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for report in reports:
            print(scenario_text(report, show_values=args.show_values))
        failed = [report.scenario.name for report in reports if not report.ok]
        print(f"{len(reports) - len(failed)} of {len(reports)} scenarios OK"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return EXIT_OK if ok else EXIT_FAIL


def cmd_list(args):
    for name in builtin_names():
        scenario = load(name)
        shape = "-".join([str(scenario.inputs.shape[1])] + [str(s.shape[0]) for s in scenario.layers])
        print(f"{name:<24} {shape:<12} {scenario.loss:<9} {scenario.description}")
    return EXIT_OK


def frameworks_arg(text):
    try:
        return parse_frameworks(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


COMMANDS = {"check": cmd_check, "list": cmd_list}


def main(argv=None):
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = COMMANDS[args.command](args)
        except UsageError as exc:
            code = EXIT_USAGE
            print(f"error: {exc}", file=sys.stderr)
        except Exception as exc:  # a bug in backproof: one line, not a traceback, unless asked for
            if os.environ.get("BACKPROOF_DEBUG"):
                raise
            print(f"internal error: {type(exc).__name__}: {exc} (set BACKPROOF_DEBUG=1 for the traceback)",
                  file=sys.stderr)
            code = EXIT_INTERNAL
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return code
