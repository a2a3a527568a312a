"""Every text report backproof prints: check, train, verify, explain. One module, one style.

Each function takes a report object and returns the text; nothing here computes a verdict.
"""

import contextlib
import contextvars
import itertools
from typing import Any

import numpy as np

from .compare import TOLERANCES
from .frameworks import FD
from .names import format_element, locate


def status_lines(skipped, errors):
    """One line per framework that did not run: skipped (with its install hint) or failed (with why)."""
    return ([f"   {s.message()}" for s in skipped]
            + [f"   FAILED {framework}: {error}" for framework, error in errors.items()])


def fmt_number(x):
    if x == 0:
        return "0"
    if x == float("inf"):
        return "inf"
    return f"{x:.2g}" if abs(x) < 1e-3 else f"{x:.4g}"


_PORTABLE = contextvars.ContextVar("backproof_portable_figures", default=False)


@contextlib.contextmanager
def portable_figures():
    """Within this block a difference at the rounding level prints as "≤ floor" instead of its value.

    How far two correct frameworks differ at the rounding level (0 here, 4.4e-16 there) depends on the CPU's
    vector unit, the BLAS and the thread count, so a page that shows it is true on one machine only. `make docs`
    renders inside this block; the terminal always shows the measured value (docs/development.md).
    """
    token = _PORTABLE.set(True)
    try:
        yield
    finally:
        _PORTABLE.reset(token)


def fmt_delta(x, floor):
    """A |Δ| as printed: the number, or "≤ floor" under portable_figures() when it is at most ``floor`` (the
    absolute tolerance of its kind and dtype, so a difference shown as a number is never rounding-level)."""
    if _PORTABLE.get() and np.isfinite(x) and x <= floor:
        return f"≤ {floor:g}"
    if _PORTABLE.get() and np.isfinite(x) and x > 0:
        return f"{x:.3g}"       # kink-leaky-relu's 10.395 sits on the 4-digit boundary: ulps flip its 4th digit
    return fmt_number(x)


def fmt_value(value):
    if value is None:
        return "missing"
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return f"{float(array):.6g}"
    return np.array2string(array, precision=6, separator=", ", max_line_width=10_000,
                           formatter={"float_kind": lambda v: f"{v:.6g}"})


def scenario_text(report: Any, show_values: bool = False) -> str:
    """The table for one ScenarioReport, as a string."""
    sc = report.scenario
    atol, rtol = TOLERANCES[sc.dtype]["step"]
    ran = list(report.traces)
    lines = [f"== {sc.name} ==  {sc.dtype} · ran: {', '.join(ran) or 'none'} · tolerance |Δ| ≤ {atol:g} + {rtol:g}·|x|"]
    if sc.description:
        lines.append(f"   {sc.description}")
    lines += status_lines(report.skipped, report.errors)

    pairs = list(itertools.combinations(ran, 2))
    by_key = {(c.tensor, c.a, c.b): c for c in report.comparisons}
    if ran:
        first = report.traces[ran[0]]
        width = max(len(name) for name in report.order) + 2
        header = f"   {'tensor':<{width}}{'shape':<10}" + "".join(f"{a + '↔' + b:>14}" for a, b in pairs)
        lines += ["", header + ("   (max |Δ|)" if pairs else "")]
        for name in report.order:
            shape = tuple(np.shape(first[name])) if name in first else "?"
            row = f"   {name:<{width}}{str(shape):<10}"
            for a, b in pairs:
                c = by_key.get((name, a, b))
                cell = "missing" if c is None else (c.problem[:12] if c.problem else fmt_delta(c.max_abs, atol))
                if c is not None and not c.ok:
                    cell = ("≈ " if report.is_explained(c) and not report.strict else "✗ ") + cell
                row += f"{cell:>14}"
            lines.append(row)
            if show_values and name in first:
                lines.append(f"   {'':<{width}}= {fmt_value(first[name])}")
        if not pairs:
            lines.append("   (one framework ran: nothing to compare across frameworks)")
        strict = "; --strict counts it as a failure" if report.strict else ""
        if report.explained:
            lines.append("   ≈ differs only because of a kink convention (below)" + strict)
        if report.amplified:
            lines.append("   ≈ the optimizer amplifies a gradient difference within tolerance: fed each framework's "
                         "own gradients, the reference's update gives each framework's state and step (Adam and "
                         "RMSprop divide by √v, so a gradient near eps moves the step by up to lr)" + strict)

    if report.kinks:
        lines.append("")
        for note in report.kinks:
            lines.append("   " + note.message())
        if report.convention_differences:
            lines.append("   to avoid it: move the pre-activation off 0 (a bias of ±2⁻¹⁰ is enough), or pick "
                         "one convention for every framework (see the README, 'Exact kinks')")

    if report.expected:
        fw = report.expected[0].framework
        lines += ["", f"   printed by the source vs computed by {fw}"]
        kw = max(len(r.key) for r in report.expected) + 2
        rw = max(len(r.resolved) for r in report.expected) + 2
        lines.append(f"   {'key':<{kw}}{'resolves to':<{rw}}{'printed':>12}{'computed':>14}{'|Δ|':>10}{'atol':>9}  result")
        for r in report.expected:
            printed, computed = fmt_value(r.printed), fmt_value(r.computed)
            if r.erratum:
                result = "erratum confirmed" if r.ok else "✗ ERRATUM NOT REPRODUCED (the printed value matches)"
            else:
                result = "ok" if r.ok else "✗ MISMATCH"
            if len(printed) > 12 or len(computed) > 14:
                lines.append(f"   {r.key:<{kw}}{r.resolved:<{rw}}{'':>36}{fmt_delta(r.max_abs, atol):>10}{r.atol:>9g}  {result}")
                lines.append(f"   {'':<{kw}}printed  {printed}")
                lines.append(f"   {'':<{kw}}computed {computed}")
            else:
                lines.append(f"   {r.key:<{kw}}{r.resolved:<{rw}}{printed:>12}{computed:>14}"
                             f"{fmt_delta(r.max_abs, atol):>10}{r.atol:>9g}  {result}")
            if r.raised:
                lines.append(f"   {'':<{kw}}judged at {sc.dtype}'s resolution: atol {r.effective_atol:.2g} = "
                             f"{atol:g} + {rtol:g}·|printed| (the printed atol {r.atol:g} is finer than {sc.dtype} "
                             f"holds)")
            if r.erratum:
                lines.append(f"   {'':<{kw}}erratum: {r.erratum}")
            if r.note:
                lines.append(f"   {'':<{kw}}note: {r.note}")

    shared = [c for c in report.comparisons if c.ok and c.nonfinite]
    if shared:
        lines.append("")
        for c in shared[:5]:
            lines.append(f"   warning: {c.nonfinite} (agreeing, but not a number to check)")
        if len(shared) > 5:
            lines.append(f"   warning: and {len(shared) - 5} more comparisons with shared non-finite values")
    lines += ["", "   " + verdict(report), ""]
    if report.training is not None:
        lines.append(train_text(report.training))
    return "\n".join(lines)


def report_text(report):
    """What the CLI prints for a check's ScenarioReport or a TrainReport."""
    return scenario_text(report) if hasattr(report, "comparisons") else train_text(report)


def report_repr(report):
    """One line: '<ScenarioReport blog-2-3-3-1 float64: OK, 24 tensors, 3 frameworks>' (a TrainReport counts epochs)."""
    status = "OK" if report.ok else "NOT COMPARED" if report.not_compared else "FAIL"
    ran = len(report.ran)
    size = f"{len(report.order)} tensors" if hasattr(report, "comparisons") else f"{report.epochs} epochs"
    return (f"<{type(report).__name__} {report.scenario.name} {report.scenario.dtype}: {status}, {size}, "
            f"{ran} framework{'s' if ran != 1 else ''}>")


def report_verdict(report):
    return verdict(report) if hasattr(report, "comparisons") else train_verdict(report)


def verdict(report):
    """One line: OK or FAIL, and why."""
    ran = list(report.traces)
    matched = sum(1 for r in report.expected if r.ok and not r.erratum)
    errata = sum(1 for r in report.expected if r.ok and r.erratum)
    missed = [r.key for r in report.expected if not r.ok]
    divergence = report.first_divergence
    largest = max((c.max_abs for c in report.comparisons), default=0.0)
    missing = [fw for fw in report.required if fw not in ran]
    if report.step_ok and not missing:
        parts = [f"{len(report.order)} tensors agree across {', '.join(ran)} (largest |Δ| {fmt_delta(largest, TOLERANCES[report.scenario.dtype]['step'][0])})"
                 if len(ran) > 1 and not report.explained and not report.amplified else
                 f"{len(report.order)} tensors compared across {', '.join(ran)}" if len(ran) > 1
                 else f"only {', '.join(ran) or 'no framework'} ran, as asked: nothing compared across frameworks"]
        if report.expected:
            parts.append(f"{matched} printed values match")
        if errata:
            parts.append(f"{errata} {'erratum' if errata == 1 else 'errata'} confirmed")
        differences = report.convention_differences
        if differences:
            parts.append(f"{len(report.explained)} comparisons differ only by the kink convention"
                         f" ({', '.join(sorted({n.row for n in differences}))})")
        if report.amplified:
            parts.append(f"{len(report.amplified)} optimizer comparisons differ only by amplified gradient rounding")
        if report.coverage == "not compared":
            parts[0] = not_compared_text(ran, report.asked)
            return "verdict: NOT COMPARED — " + "; ".join(parts)
        return "verdict: OK — " + "; ".join(parts)
    parts = []
    if missing:
        parts.append(f"required but did not run: {', '.join(missing)}")
    if report.errors:
        parts.append("failed to run: " + ", ".join(report.errors))
    if divergence is not None:
        parts.append("first divergence: " + divergence.message() + where_in_sequence(report, divergence))
        if report.strict and report.is_explained(divergence):
            why = ("a kink convention" if (divergence.tensor, divergence.a, divergence.b) in report.explained
                   else "the optimizer's amplification of a gradient difference within tolerance")
            parts.append(f"{why} explains it, and --strict was given")
    if missed:
        parts.append("printed values missed: " + ", ".join(missed))
    return f"verdict: FAIL — {report.scenario.name}: " + "; ".join(parts)


def where_in_sequence(report, divergence):
    """' (row 6, step 5, unit 0; beyond tolerance from step 0)' for a sequence network's activation: the worst
    element in words (names.locate) and the first step at which the two frameworks part; '' elsewhere."""
    where = locate(report.scenario, divergence.tensor, divergence.worst_index)
    a, b = (report.traces.get(fw, {}).get(divergence.tensor) for fw in (divergence.a, divergence.b))
    if where and a is not None and b is not None and np.ndim(a) == 3 and np.shape(a) == np.shape(b):
        atol, rtol = TOLERANCES[report.scenario.dtype]["step"]
        with np.errstate(invalid="ignore"):
            beyond = ~(np.abs(np.asarray(a, np.float64) - b) <= atol + rtol * np.abs(np.asarray(b, np.float64)))
        steps = np.flatnonzero(beyond.any(axis=(0, 2)))
        if len(steps):
            where = f"{where[:-1]}; beyond tolerance from step {steps[0]})"
    return f" {where}" if where else ""


def not_compared_text(ran, asked):
    """Why a verdict is NOT COMPARED (exit code 4): fewer than two of the frameworks asked for ran."""
    others = [fw for fw in asked if fw not in ran]
    return (f"only {', '.join(ran) or 'no framework'} ran ({', '.join(others)} did not: see above), so nothing was "
            f"compared across frameworks; install them, or give --frameworks {ran[0] if ran else 'numpy'} to run "
            f"one alone")


def print_every(epochs):
    """Post 001 prints every 10 of its 60 epochs; longer runs print about ten rows."""
    return 10 if epochs <= 100 else max(1, epochs // 10)


def train_text(report: Any) -> str:
    """The loss curves side by side, the final parameters' agreement, drift, timings, verdict."""
    fd, kinks = report.finite_differences, report.relu_kinks
    sc = report.scenario
    atol, rtol = TOLERANCES[sc.dtype]["train"]
    steps = sc.inputs.shape[0] // report.batch_size
    lines = [f"== {sc.name}: training ==  {sc.dtype} · {report.epochs} epochs × {steps} steps "
             f"(batch {report.batch_size}, {optimizer_text(sc.optimizer)}) · tolerance |Δ| ≤ {atol:g} + {rtol:g}·|x|"]
    lines += status_lines(report.skipped, report.errors)
    columns = dict((fw, r["train.loss"]) for fw, r in report.results.items())
    if fd is not None:
        columns["numpy (finite diff.)"] = fd["train.loss"]
    if columns:
        every = print_every(report.epochs)
        shown = sorted({1, *range(every, report.epochs + 1, every), report.epochs})
        lines += ["", "   mean loss per epoch", "   " + f"{'epoch':>7}" + "".join(f"{name:>22}" for name in columns)]
        for epoch in shown:
            lines.append("   " + f"{epoch:>7}" + "".join(f"{float(c[epoch - 1]):>22.10g}" for c in columns.values()))
    diverged = {fw: epoch for fw, epoch in report.divergence().items() if epoch is not None}
    if diverged:
        by_epoch = {}
        for fw, epoch in diverged.items():
            by_epoch.setdefault(epoch, []).append(fw)
        stable = [fw for fw in report.results if fw not in diverged]
        lines += ["", "   warning: diverged: " + "; ".join(f"non-finite loss from epoch {epoch} in {', '.join(fws)}"
                                                        for epoch, fws in sorted(by_epoch.items()))
                  + (f"; {', '.join(stable)} stayed finite" if stable else "")]
    if report.drifts:
        lines += ["", "   drift between frameworks"]
        for d in report.drifts:
            final = max((c.max_abs for c in d.final), default=0.0)
            mark = "≈" if d.explained else "✗"
            where = ("within tolerance at every epoch" if d.first_bad_epoch is None
                     else f"{mark} first exceeds tolerance at epoch {d.first_bad_epoch}")
            lines.append(f"   {d.a + '↔' + d.b:<14} largest loss |Δ| {fmt_delta(d.max_loss_abs, atol)} (epoch {d.worst_epoch}), "
                         f"final parameters max |Δ| {fmt_delta(final, atol)}{'' if all(c.ok for c in d.final) else ' ' + mark}; "
                         f"{where}")
        noise = next((d.noise for d in report.drifts if d.noise is not None), None)
        if noise is not None:
            from .training import NOISE_FACTOR
            trained = max((v for k, v in noise.items() if k != "train.loss"), default=0.0)
            lines += [f"   rounding noise floor: the reference alone, with one rounding's worth of noise in every value it "
                      f"computes, drifts by "
                      f"{fmt_number(noise['train.loss'])} in the loss and {fmt_number(trained)} in the trained "
                      f"values; ≈ marks a drift within {NOISE_FACTOR}× that floor everywhere it exceeds tolerance: "
                      f"this run amplifies rounding at {sc.dtype}, so the frameworks cannot agree more closely "
                      f"(not a bug{'; float64 tells them apart' if sc.dtype == 'float32' else ''}; --strict fails it)"]
    if fd is not None and "numpy" in report.results:
        analytic = report.results["numpy"]
        loss_gap = float(np.max(np.abs(fd["train.loss"] - analytic["train.loss"])))
        param_gap = max(float(np.max(np.abs(fd[k] - analytic[k]))) for k in fd if k.startswith("trained."))
        lines += ["", f"   finite differences (central, delta 1e-4, on copies) vs analytic, same start: "
                      f"largest loss |Δ| {fmt_number(loss_gap)}, final parameters max |Δ| {fmt_number(param_gap)}"]
    if kinks:
        lines += [""] + (["   kinks: " + kinks.capped] if kinks.capped else
                         ["   " + line for line in kink_lines(kinks.before, kinks.after, kinks.checks)])
    if report.seconds:
        lines += ["", "   time: " + ", ".join(f"{fw} {s:.2f} s" for fw, s in report.seconds.items())]
    lines += ["", "   " + train_verdict(report), ""]
    return "\n".join(lines)


def train_verdict(report):
    ran = list(report.results)
    if report.not_compared:
        return "verdict: NOT COMPARED — " + not_compared_text(ran, report.asked)
    if report.ok:
        diverged = {fw: epoch for fw, epoch in report.divergence().items() if epoch is not None}
        if diverged:
            who = f"{', '.join(ran)} agree" if len(ran) > 1 else f"only {ran[0]} trained"
            return (f"verdict: OK — {who}, but the run diverges: the loss is not finite from epoch "
                    f"{min(diverged.values())} (a scenario to fix, not a framework difference)")
        if len(ran) < 2:
            return f"verdict: OK — only {', '.join(ran) or 'no framework'} trained, as asked"
        if report.explained:
            pairs = ", ".join(f"{d.a}↔{d.b}" for d in report.explained)
            return (f"verdict: OK — {', '.join(ran)} trained {report.epochs} epochs; {pairs} drift beyond the "
                    f"training tolerance, within the rounding noise floor (≈ above)")
        return f"verdict: OK — {', '.join(ran)} trained {report.epochs} epochs and agree to the training tolerance"
    parts = []
    missing = [fw for fw in report.required if fw not in ran]
    if missing:
        parts.append(f"required but did not train: {', '.join(missing)}")
    if report.errors:
        parts.append("failed to train: " + ", ".join(report.errors))
    for d in report.drifts:
        if not d.ok and not (d.explained and not report.strict):
            bad = [c.tensor for c in d.final if not c.ok]
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            parts.append(f"{d.a} vs {d.b} drift" + (f" from epoch {d.first_bad_epoch}" if d.first_bad_epoch else "")
                         + (f", final {shown}" if bad else "")
                         + (" (within the rounding noise floor; failed by --strict)" if d.explained else ""))
    return f"verdict: FAIL — {report.scenario.name} training: " + "; ".join(parts)


KINKS_LISTED = 12      # kink positions printed per line; the JSON and the report's table have them all


def kink_lines(before, after, checks):
    """Kink positions before and after training, and each framework's numeric confirmation."""
    lines = ["kinks (x where a hidden unit's pre-activation crosses 0; analytic, piece by piece)"]
    for label, kinks in (("before training", before), ("after training", after)):
        listed = ", ".join(f"layers.{k.layer} unit {k.unit}: x = {k.x:.6g}" for k in kinks[:KINKS_LISTED]) or "none"
        if len(kinks) > KINKS_LISTED:
            listed += f" and {len(kinks) - KINKS_LISTED:,} more (--json lists every one)"
        lines.append(f"  {label}: {listed}")
    for framework, results in checks.items():
        confirmed = sum(c.sign_change for c in results)
        visible = sum(c.visible for c in results)
        hidden = len(results) - visible
        lines.append(f"  {framework}: z changes sign at {confirmed} of {len(results)} kinks (before and after); "
                     f"the output's slope changes at {visible}"
                     + (f"; {hidden} hidden behind inactive units" if hidden else ""))
    return lines


ORACLE_LABELS = {"numpy": "numpy (hand-derived backward)", "torch": "torch (autograd)", "jax": "jax (jax.grad)",
                 FD: "finite differences"}


def verify_text(result: Any) -> str:
    """The table and verdict of a VerifyResult."""
    from .verify import tolerance
    lines = [f"== verify {result.function} on {result.scenario} ==  {result.dtype} · oracles: {', '.join(result.oracles)}"]
    for oracle in result.oracles:
        atol, rtol = tolerance(result.dtype, oracle)
        lines.append(f"   {oracle}: |Δ| ≤ {atol:g} + {rtol:g}·|x|")
    lines += status_lines(result.skipped, result.errors)
    for note in result.notes:
        lines.append(f"   note: {note}")
    parameters = list(dict.fromkeys(c.parameter for c in result.checks))
    if parameters:
        width = max(len(p) for p in parameters) + 2
        lines += ["", f"   {'parameter':<{width}}" + "".join(f"{o:>22}" for o in result.oracles) + "   (max |Δ|)"]
        for parameter in parameters:
            row = f"   {parameter:<{width}}"
            for oracle in result.oracles:
                c = result.check(parameter, oracle)
                cell = "-" if c is None else ("" if c.ok else "✗ ") + fmt_delta(
                    c.max_abs, tolerance(result.dtype, oracle)[0])
                if c is not None and c.checked < c.size:
                    cell += f" ({c.checked}/{c.size})"
                row += f"{cell:>22}"
            lines.append(row)
    if result.directions is not None:
        d = result.directions
        lines += ["", f"   {len(d.numeric)} random directions (ε {d.delta:g}): max |Δ| "
                      f"{fmt_delta(d.max_abs, tolerance(result.dtype, FD)[0])}, "
                      f"max rel {d.max_rel:.2g}" + ("" if d.ok else "  ✗")]
    if result.established:
        lines += ["", "   the oracles' own autodiff, by the checkers people already trust:"]
        lines += [f"   {name:<12} {'passed' if passed else '✗ FAILED'}: {detail}"
                  for name, (passed, detail) in result.established.items()]
    lines.append("")
    if result.ok:
        lines.append(f"   verdict: OK — every gradient agrees with {', '.join(result.oracles)}"
                     + (f"; {', '.join(result.established)} passed" if result.established else ""))
    else:
        wrong = {}
        for c in result.failures:
            wrong.setdefault(c.parameter, []).append(c)
        parts = []
        for parameter, checks in wrong.items():
            c = checks[0]
            parts.append(f"{parameter}: {c.wrong_count} of {c.checked} elements wrong, worst "
                         f"{format_element(parameter, c.worst_index)} = {c.yours:.6g} where {c.oracle} says "
                         f"{c.theirs:.6g} (|Δ| {c.max_abs:.2g}; wrong against {', '.join(k.oracle for k in checks)})")
            lines.append(f"   wrong in {parameter} ({c.oracle}): "
                         + ", ".join(format_element("", index) for index in c.wrong)
                         + (" …" if c.wrong_count > len(c.wrong) else ""))
        for diagnosis in result.diagnoses:
            lines.append(f"   diagnosis: {diagnosis.parameter}: {diagnosis.text}")
        if result.directions is not None and not result.directions.ok:
            parts.append(f"directional derivatives off by up to {result.directions.max_rel:.2g} relative")
        if result.errors:
            parts.append("oracles that failed: " + ", ".join(result.errors))
        if not result.checks:
            parts.append("no oracle ran")
        failed = [name for name, (passed, _) in result.established.items() if not passed]
        if failed:
            parts.append(f"{', '.join(failed)} failed on the oracles' own autodiff")
        lines.append(f"   verdict: FAIL — {'; '.join(parts)}")
    return "\n".join(lines)


def explain_text(result):
    """The worked chain rule of an Explanation."""
    sc = result.scenario
    rows = sc.inputs.shape[0]
    named = result.symbol if result.symbol == result.parameter else f"{result.symbol} = {result.parameter}"
    per_row = result.path_count // rows
    count = f"{per_row} path{'s' if per_row > 1 else ''} from {result.symbol} to E"
    lines = [f"== explain {named} on {sc.name} ==  {sc.dtype} · batch of {rows} · loss {sc.loss}",
             f"   ∂E/∂{result.symbol} is a sum over {count}"
             + (f", in each of the {rows} rows: {result.path_count} products" if rows > 1 else "")]
    if sc.typed:
        lines[1:] = [f"   ∂E/∂{result.symbol}, layer by layer: the network's layers ({', '.join(dict.fromkeys(s.type for s in sc.layers))}) "
                     "are not units joined by single weights, so the sum is taken by the δ recursion, each step the "
                     "reference's hand-derived backward of the layer above (values per row, flattened in torch's "
                     "order with the shape beside them):"]
    if result.paths:
        width = max(len(_factor_label(f)) for p in result.paths for f in p.factors) + 2
        for number, path in enumerate(result.paths, 1):
            where = f"row {path.row}, " if rows > 1 else ""
            lines += ["", f"   path {number} ({where}{' → '.join(path.names)})"]
            for factor in path.factors:
                lines.append(f"     {_factor_label(factor):<{width}}= {factor.value:.6g}")
            lines.append(f"     {'product':<{width}}= {path.product:.6g}")
        if len(result.paths) == 1:
            lines += ["", f"   ∂E/∂{result.symbol} = {result.total:.8g}"]
        elif len(result.paths) <= 8:
            lines += ["", f"   ∂E/∂{result.symbol} = " + " + ".join(f"({p.product:.6g})" for p in result.paths)
                      + f" = {result.total:.8g}"]
        else:
            lines += ["", f"   ∂E/∂{result.symbol} = the sum of the {len(result.paths)} products = {result.total:.8g}"]
    elif result.groups:
        width = max(len(" → ".join(g.names)) for g in result.groups) + 2
        lines += ["", f"   {result.path_count} products, too many to list one by one (more than {result.max_paths}; "
                      f"--max-paths {result.path_count} lists them): each chain of units below is one product in "
                      f"every one of the {rows} rows, summed over the rows"]
        for number, group in enumerate(result.groups, 1):
            products = np.asarray(group.products)
            biggest = int(np.argmax(np.abs(products)))
            lines.append(f"     chain {number}: {' → '.join(group.names):<{width}}Σ over {rows} rows = "
                         f"{group.total + 0.0:.6g}   ({int(np.count_nonzero(products))} rows nonzero; largest "
                         f"row {biggest}: {products[biggest] + 0.0:.4g})")
        lines += ["", f"   ∂E/∂{result.symbol} = the sum of the {len(result.groups)} chains = {result.total:.8g}"]
    else:
        if result.softmax_layers:
            lines += ["", f"   the paths are not independent: the softmax of layer "
                          f"{', '.join(map(str, result.softmax_layers))} makes each of its outputs depend on every "
                          "unit of its row (its Jacobian is not diagonal), so a chain of units is not one product; "
                          "the layer-wise δ recursion, with the Jacobian J = diag(a) − a·aᵀ applied as "
                          "a ⊙ (g − Σ g ⊙ a), computes the sum:"]
        elif not sc.typed:
            lines += ["", f"   {result.path_count} products are too many to print (more than {result.max_paths}); "
                          "the layer-wise δ recursion computes the same sum:"]
        for label, value in result.recursion:
            value = np.asarray(value)
            if value.ndim < 2:
                lines.append(f"     {label} = {_array(value)}")
            else:            # one line per row
                lines.append(f"     {label} =")
                lines += [f"       row {r}: {_array(row)}" if row.ndim < 2 else
                          f"       row {r} ({'×'.join(map(str, row.shape))}): {_array(row.ravel())}"
                          for r, row in enumerate(value)]
        lines.append(f"   ∂E/∂{result.symbol} = {result.total:.8g}")
    checks = " · ".join(f"{ORACLE_LABELS.get(name, name)} {value:.8g}" for name, value in result.oracles.items())
    lines.append(f"   beside it: {checks}")
    lines += status_lines(result.skipped, result.errors)
    for erratum in result.errata:
        lines += ["", f"   erratum {erratum['id']}: the source follows only {' → '.join(erratum['path'])}, "
                      f"which gives {erratum['product']:.4g}; the true ∂E/∂{result.symbol} is {result.total:.4g}, "
                      f"so the single-path derivation misses "
                      + (f"{len(erratum['missing'])} path(s), {'; '.join(erratum['missing'])}, "
                         if erratum["missing"] else "the other paths, ")
                      + f"worth {result.total - erratum['product']:.4g}",
                  f"   {erratum['text']}"]
    if is_plain_sgd(sc.optimizer):
        lines += ["", f"   SGD: {result.symbol} − lr·∂E/∂{result.symbol} = {result.value:.6g} − {sc.lr:g} × "
                      f"{result.total:.6g} = {result.updated:.8g}", ""]
    else:
        lines += ["", f"   {optimizer_text(sc.optimizer)}: {result.symbol} = {result.value:.6g} → {result.updated:.8g} "
                      "after one step (the optimizer's state is in `backproof check`)", ""]
    return "\n".join(lines)


def is_plain_sgd(optimizer):
    """p ← p − lr·g exactly: SGD with no momentum and no weight decay."""
    return optimizer.name == "sgd" and not optimizer.momentum and not optimizer.weight_decay


def optimizer_text(optimizer):
    """'adam (lr 0.05, betas (0.9, 0.999), eps 1e-08, weight_decay 0.0005)': every hyperparameter in force."""
    def shown(value):
        return f"({', '.join(f'{v:g}' for v in value)})" if isinstance(value, tuple) else (
            str(value).lower() if isinstance(value, bool) else f"{value:g}")
    return f"{optimizer.name} ({', '.join(f'{k} {shown(v)}' for k, v in optimizer.hyperparameters().items())})"


def _factor_label(factor):
    return factor.symbol + (f" = {factor.equals}" if factor.equals else "")


def _array(value):
    """A value of the δ recursion: −0 printed as 0 (a zero that came from a negative factor is still zero)."""
    value = np.asarray(value)
    return fmt_value(value + 0.0 if value.dtype.kind == "f" else value)


# --- backproof read: the three implementations side by side ---------------------------------------

def read_text(blocks, width, root=None, scenario=None, runs=None):
    """Each stage as three columns (numpy | torch | jax), or one after another when ``width`` is too
    narrow; with a scenario, that stage's numbers from every framework under it."""
    from .read import STAGE_NOTES, stage_tensors
    out = []
    for stage, by_framework in blocks.items():
        out += [f"== {stage} ==  {STAGE_NOTES[stage]}", ""]
        columns = [[f"{fw}  {block.where(root)}", "-" * len(f"{fw}  {block.where(root)}")] + block.lines
                   for fw, block in by_framework.items()]
        widths = [max(len(line) for line in column) for column in columns]
        if sum(widths) + 3 * (len(columns) - 1) <= width:
            for k in range(max(len(column) for column in columns)):
                cells = [(column[k] if k < len(column) else "").ljust(w) for column, w in zip(columns, widths)]
                out.append(" │ ".join(cells).rstrip())
        else:
            for column in columns:
                out += column + [""]
        if scenario is not None:
            out += [""] + stage_numbers(stage, scenario, runs, stage_tensors(scenario, stage))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def one_line(value):
    """fmt_value on one line: the rows of a matrix side by side."""
    return fmt_value(value).replace("\n ", " ")


def stage_numbers(stage, scenario, runs, tensors):
    """Lines of the values of ``tensors`` in every framework (or why a framework has none)."""
    lines = [f"   {scenario.name} ({scenario.dtype}):"]
    if stage == "Model":
        params = scenario.parameters()
        return lines + [f"     {name} = {one_line(params[name])}   (copied into every framework)" for name in tensors]
    if stage == "train":
        return lines + [f"     `backproof train {scenario.name}` runs and compares the whole training runs"]
    width = max(len(fw) for fw in (*runs.results, *runs.errors, *(s.framework for s in runs.skipped)))
    for name in tensors:
        lines.append(f"     {name}")
        for fw, trace in runs.results.items():
            lines.append(f"       {fw:<{width}}  {one_line(trace.get(name))}")
    for fw, error in runs.errors.items():
        lines.append(f"     {fw}: failed: {error}")
    for skipped in runs.skipped:
        lines.append(f"     {skipped.message()}")
    return lines
