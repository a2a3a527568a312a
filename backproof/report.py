"""Human-readable reports: one table per scenario and a one-line verdict."""

import itertools

import numpy as np

from .compare import TOLERANCES


def fmt_number(x):
    if x == 0:
        return "0"
    if x == float("inf"):
        return "inf"
    return f"{x:.2g}" if abs(x) < 1e-3 else f"{x:.4g}"


def fmt_value(value):
    if value is None:
        return "missing"
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return f"{float(array):.6g}"
    return np.array2string(array, precision=6, separator=", ", max_line_width=10_000,
                           formatter={"float_kind": lambda v: f"{v:.6g}"})


def scenario_text(report, show_values=False):
    """The table for one ScenarioReport, as a string."""
    sc = report.scenario
    atol, rtol = TOLERANCES[sc.dtype]["step"]
    ran = list(report.traces)
    lines = [f"== {sc.name} ==  {sc.dtype} · ran: {', '.join(ran) or 'none'} · tolerance |Δ| ≤ {atol:g} + {rtol:g}·|x|"]
    if sc.description:
        lines.append(f"   {sc.description}")
    for skipped in report.skipped:
        lines.append(f"   {skipped.message()}")
    for framework, error in report.errors.items():
        lines.append(f"   FAILED {framework}: {error}")

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
                cell = "missing" if c is None else (c.problem[:12] if c.problem else fmt_number(c.max_abs))
                if c is not None and not c.ok:
                    cell = ("≈ " if report.is_explained(c) and not report.strict else "✗ ") + cell
                row += f"{cell:>14}"
            lines.append(row)
            if show_values and name in first:
                lines.append(f"   {'':<{width}}= {fmt_value(first[name])}")
        if not pairs:
            lines.append("   (one framework ran: nothing to compare across frameworks)")
        if any(report.is_explained(c) for c in report.comparisons):
            lines.append("   ≈ differs only because of a kink convention (below)"
                         + ("; --strict counts it as a failure" if report.strict else ""))

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
                lines.append(f"   {r.key:<{kw}}{r.resolved:<{rw}}{'':>36}{fmt_number(r.max_abs):>10}{r.atol:>9g}  {result}")
                lines.append(f"   {'':<{kw}}printed  {printed}")
                lines.append(f"   {'':<{kw}}computed {computed}")
            else:
                lines.append(f"   {r.key:<{kw}}{r.resolved:<{rw}}{printed:>12}{computed:>14}"
                             f"{fmt_number(r.max_abs):>10}{r.atol:>9g}  {result}")
            if r.erratum:
                lines.append(f"   {'':<{kw}}erratum: {r.erratum}")
            if r.note:
                lines.append(f"   {'':<{kw}}note: {r.note}")

    lines += ["", "   " + verdict(report), ""]
    return "\n".join(lines)


def verdict(report):
    """One line: OK or FAIL, and why."""
    ran = list(report.traces)
    matched = sum(1 for r in report.expected if r.ok and not r.erratum)
    errata = sum(1 for r in report.expected if r.ok and r.erratum)
    missed = [r.key for r in report.expected if not r.ok]
    divergence = report.first_divergence
    largest = max((c.max_abs for c in report.comparisons), default=0.0)
    if report.ok:
        parts = [f"{len(report.order)} tensors agree across {', '.join(ran)} (largest |Δ| {fmt_number(largest)})"
                 if len(ran) > 1 and not report.explained else
                 f"{len(report.order)} tensors compared across {', '.join(ran)}" if len(ran) > 1
                 else f"only {', '.join(ran) or 'no framework'} ran"]
        if report.expected:
            parts.append(f"{matched} printed values match")
        if errata:
            parts.append(f"{errata} errata confirmed")
        differences = report.convention_differences
        if differences:
            parts.append(f"{len(report.explained)} comparisons differ only by the kink convention"
                         f" ({', '.join(sorted({n.row for n in differences}))})")
        return "verdict: OK — " + "; ".join(parts)
    parts = []
    if report.errors:
        parts.append("failed to run: " + ", ".join(report.errors))
    if divergence is not None:
        parts.append("first divergence: " + divergence.message())
        if report.strict and report.is_explained(divergence):
            parts.append("a kink convention explains it, and --strict was given")
    if missed:
        parts.append("printed values missed: " + ", ".join(missed))
    return f"verdict: FAIL — {report.scenario.name}: " + "; ".join(parts)


def print_every(epochs):
    """Post 001 prints every 10 of its 60 epochs; longer runs print about ten rows."""
    return 10 if epochs <= 100 else max(1, epochs // 10)


def train_text(report, fd=None, kinks=None):
    """The loss curves side by side, the final parameters' agreement, drift, timings, verdict."""
    sc = report.scenario
    atol, rtol = TOLERANCES[sc.dtype]["train"]
    steps = sc.inputs.shape[0] // report.batch_size
    lines = [f"== {sc.name}: training ==  {sc.dtype} · {report.epochs} epochs × {steps} steps "
             f"(batch {report.batch_size}, lr {sc.lr:g}) · tolerance |Δ| ≤ {atol:g} + {rtol:g}·|x|"]
    for skipped in report.skipped:
        lines.append(f"   {skipped.message()}")
    for framework, error in report.errors.items():
        lines.append(f"   FAILED {framework}: {error}")
    columns = dict((fw, r["train.loss"]) for fw, r in report.results.items())
    if fd is not None:
        columns["numpy (finite diff.)"] = fd["train.loss"]
    if columns:
        every = print_every(report.epochs)
        shown = sorted({1, *range(every, report.epochs + 1, every), report.epochs})
        lines += ["", "   mean loss per epoch", "   " + f"{'epoch':>7}" + "".join(f"{name:>22}" for name in columns)]
        for epoch in shown:
            lines.append("   " + f"{epoch:>7}" + "".join(f"{float(c[epoch - 1]):>22.10g}" for c in columns.values()))
    if report.drifts:
        lines += ["", "   drift between frameworks"]
        for d in report.drifts:
            final = max((c.max_abs for c in d.final), default=0.0)
            where = ("within tolerance at every epoch" if d.first_bad_epoch is None
                     else f"✗ first exceeds tolerance at epoch {d.first_bad_epoch}")
            lines.append(f"   {d.a + '↔' + d.b:<14} largest loss |Δ| {fmt_number(d.max_loss_abs)} (epoch {d.worst_epoch}), "
                         f"final parameters max |Δ| {fmt_number(final)}{'' if all(c.ok for c in d.final) else ' ✗'}; {where}")
    if fd is not None and "numpy" in report.results:
        analytic = report.results["numpy"]
        loss_gap = float(np.max(np.abs(fd["train.loss"] - analytic["train.loss"])))
        param_gap = max(float(np.max(np.abs(fd[k] - analytic[k]))) for k in fd if k.startswith("trained."))
        lines += ["", f"   finite differences (central, delta 1e-4, on copies) vs analytic, same start: "
                      f"largest loss |Δ| {fmt_number(loss_gap)}, final parameters max |Δ| {fmt_number(param_gap)}"]
    if kinks:
        lines += [""] + ["   " + line for line in kinks]
    if report.seconds:
        lines += ["", "   time: " + ", ".join(f"{fw} {s:.2f} s" for fw, s in report.seconds.items())]
    lines += ["", "   " + train_verdict(report), ""]
    return "\n".join(lines)


def train_verdict(report):
    ran = list(report.results)
    if report.ok:
        if len(ran) < 2:
            return f"verdict: OK — only {', '.join(ran) or 'no framework'} trained"
        return f"verdict: OK — {', '.join(ran)} trained {report.epochs} epochs and agree to the training tolerance"
    parts = []
    if report.errors:
        parts.append("failed to train: " + ", ".join(report.errors))
    for d in report.drifts:
        if not d.ok:
            bad = [c.tensor for c in d.final if not c.ok]
            parts.append(f"{d.a} vs {d.b} drift" + (f" from epoch {d.first_bad_epoch}" if d.first_bad_epoch else "")
                         + (f", final {', '.join(bad)}" if bad else ""))
    return f"verdict: FAIL — {report.scenario.name} training: " + "; ".join(parts)


def kink_lines(before, after, checks):
    """Kink positions before and after training, and each framework's numeric confirmation."""
    lines = ["kinks (x where a hidden unit's pre-activation crosses 0; analytic, piece by piece)"]
    for label, kinks in (("before training", before), ("after training", after)):
        listed = ", ".join(f"layers.{k.layer} unit {k.unit}: x = {k.x:.6g}" for k in kinks) or "none"
        lines.append(f"  {label}: {listed}")
    for framework, results in checks.items():
        confirmed = sum(c.sign_change for c in results)
        visible = sum(c.visible for c in results)
        hidden = len(results) - visible
        lines.append(f"  {framework}: z changes sign at {confirmed} of {len(results)} kinks (before and after); "
                     f"the output's slope changes at {visible}"
                     + (f"; {hidden} hidden behind inactive units" if hidden else ""))
    return lines
