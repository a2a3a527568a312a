"""Measure cross-framework disagreement, the evidence behind ``compare.TOLERANCES``.

    make calibrate     # python -m tools.calibrate [SCENARIO ...], then python -m tools.calibrate --fd

For each dtype it runs every scenario (default: every built-in plus the
examples/ folder when present) in every installed framework and prints the
largest |Δ| and relative error over all tensors and pairs, beside the tolerance.

With --fd it measures finite differences instead (reference/gradcheck.py at its
default ε): the largest per-coordinate |Δ| and directional relative error
against the reference's exact gradient, plus the directional error on the
784-256-256-10 benchmark MLP, beside the "finite_difference" tolerance.
"""

import sys
from pathlib import Path

from backproof.check import check_scenario
from backproof.compare import TOLERANCES
from backproof.frameworks import FRAMEWORKS
from backproof.scenario_file import builtin_names, load


def measure(specs, dtype):
    """(max |Δ|, max rel, where) over every tensor and pair of ``specs`` in ``dtype``."""
    worst_abs, worst_rel, where = 0.0, 0.0, ""
    for spec in specs:
        report = check_scenario(load(spec).with_dtype(dtype), FRAMEWORKS)
        for c in report.comparisons:
            if report.is_explained(c):      # a documented kink convention, not rounding
                continue
            if c.max_abs > worst_abs:
                worst_abs, where = c.max_abs, f"{report.scenario.name} {c.tensor} {c.a}↔{c.b}"
            worst_rel = max(worst_rel, c.max_rel)
    return worst_abs, worst_rel, where


def measure_fd(specs, dtype):
    """(max per-coordinate |Δ|, max directional rel, MLP directional rel) at the default ε of ``dtype``."""
    import numpy as np

    from reference import gradcheck
    from reference.network import loss_and_gradients, loss_of

    from tools.bench import mlp

    from backproof.kink_conventions import has_exact_kinks

    worst_abs, worst_rel = 0.0, 0.0
    for spec in specs:
        sc = load(spec).with_dtype(dtype)
        if has_exact_kinks(sc):             # finite differences are no oracle at a kink
            continue
        params = {k: np.array(v) for k, v in sc.parameters().items()}
        _, grads = loss_and_gradients(sc)
        loss = loss_of(sc)
        numeric = gradcheck.central_differences(loss, params)
        worst_abs = max([worst_abs] + [float(np.max(np.abs(numeric[k].astype(float) - grads[k].astype(float))))
                                       for k in grads])
        worst_rel = max(worst_rel, gradcheck.relative_error(*gradcheck.directional_derivatives(
            loss, grads, params, gradcheck.random_directions(params, 8))))
    big = mlp(dtype=dtype)
    _, grads = loss_and_gradients(big)
    params = big.parameters()
    mlp_rel = gradcheck.relative_error(*gradcheck.directional_derivatives(
        loss_of(big), grads, params, gradcheck.random_directions(params, 8)))
    return worst_abs, worst_rel, mlp_rel


def measure_training(dtype):
    """(max loss |Δ|, max final-parameter |Δ|, where) over the built-in training scenarios in ``dtype``."""
    from backproof.training import train
    worst_loss, worst_param, where = 0.0, 0.0, ""
    for name in builtin_names():
        sc = load(name).with_dtype(dtype)
        if sc.train is None:
            continue
        report = train(sc, FRAMEWORKS)
        for d in report.drifts:
            final = max((c.max_abs for c in d.final), default=0.0)
            if final > worst_param:
                worst_param, where = final, f"{name} {d.a}↔{d.b}"
            worst_loss = max(worst_loss, d.max_loss_abs)
    return worst_loss, worst_param, where


def record(path, key, figures):
    """Merge ``figures`` under ``key`` into the JSON file at ``path`` (docs/measurements.json)."""
    import json
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("calibrate", {})[key] = figures
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv=None):
    args = list(argv if argv is not None else sys.argv[1:])
    write = None
    if "--write" in args:
        k = args.index("--write")
        write, args = args[k + 1], args[:k] + args[k + 2:]
    fd = "--fd" in args
    specs = [s for s in args if s != "--fd"]
    if not specs:
        examples = Path(__file__).resolve().parent.parent / "examples"
        specs = builtin_names() + sorted(str(p) for p in examples.glob("*.json"))
    if fd:
        from reference.gradcheck import DEFAULT_DELTA
        figures = {}
        for dtype, kinds in TOLERANCES.items():
            atol, rtol = kinds["finite_difference"]
            worst_abs, worst_rel, mlp_rel = measure_fd(specs, dtype)
            figures[dtype] = {"delta": DEFAULT_DELTA[dtype], "per_coordinate_max_abs": worst_abs,
                              "directions_max_rel": worst_rel, "mlp_directions_max_rel": mlp_rel}
            print(f"{dtype} (ε {DEFAULT_DELTA[dtype]:g}): per coordinate max |Δ| {worst_abs:.2g}, "
                  f"8 directions max rel {worst_rel:.2g}; 784-256-256-10 MLP directions max rel {mlp_rel:.2g}; "
                  f"tolerance atol {atol:g}, rtol {rtol:g}")
        if write:
            record(write, "finite_difference", figures)
        return 0
    step, training = {}, {}
    for dtype, kinds in TOLERANCES.items():
        atol, rtol = kinds["step"]
        worst_abs, worst_rel, where = measure(specs, dtype)
        step[dtype] = {"max_abs": worst_abs, "max_rel": worst_rel, "where": where}
        print(f"{dtype}: max |Δ| {worst_abs:.2g} (at {where or '-'}), max rel {worst_rel:.2g}; "
              f"tolerance atol {atol:g}, rtol {rtol:g}")
        loss, param, where = measure_training(dtype)
        training[dtype] = {"loss_max_abs": loss, "final_parameters_max_abs": param, "where": where}
        atol, rtol = kinds["train"]
        print(f"{dtype} training: loss |Δ| {loss:.2g}, final parameters |Δ| {param:.2g} (at {where or '-'}); "
              f"tolerance atol {atol:g}, rtol {rtol:g}")
    if write:
        record(write, "step", step)
        record(write, "train", training)
    return 0


if __name__ == "__main__":
    sys.exit(main())
