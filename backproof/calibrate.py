"""Measure cross-framework disagreement, the evidence behind ``compare.TOLERANCES``.

    python -m backproof.calibrate [SCENARIO ...]

For each dtype it runs every scenario (default: every built-in plus the
examples/ folder when present) in every installed framework and prints the
largest |Δ| and relative error over all tensors and pairs, beside the tolerance.
"""

import sys
from pathlib import Path

from .check import check_scenario
from .compare import TOLERANCES
from .frameworks import FRAMEWORKS
from .scenario import builtin_names, load


def measure(specs, dtype):
    """(max |Δ|, max rel, where) over every tensor and pair of ``specs`` in ``dtype``."""
    worst_abs, worst_rel, where = 0.0, 0.0, ""
    for spec in specs:
        report = check_scenario(load(spec).with_dtype(dtype), FRAMEWORKS)
        for c in report.comparisons:
            if c.max_abs > worst_abs:
                worst_abs, where = c.max_abs, f"{report.scenario.name} {c.tensor} {c.a}↔{c.b}"
            worst_rel = max(worst_rel, c.max_rel)
    return worst_abs, worst_rel, where


def main(argv=None):
    specs = list(argv if argv is not None else sys.argv[1:])
    if not specs:
        examples = Path(__file__).resolve().parent.parent / "examples"
        specs = builtin_names() + sorted(str(p) for p in examples.glob("*.json"))
    for dtype, kinds in TOLERANCES.items():
        atol, rtol = kinds["step"]
        worst_abs, worst_rel, where = measure(specs, dtype)
        print(f"{dtype}: max |Δ| {worst_abs:.2g} (at {where or '-'}), max rel {worst_rel:.2g}; "
              f"tolerance atol {atol:g}, rtol {rtol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
