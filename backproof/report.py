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
        lines.append(f"   skipped {skipped.framework}: {skipped.reason}. Install with: {skipped.hint}")
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
                    cell = "✗ " + cell
                row += f"{cell:>14}"
            lines.append(row)
            if show_values and name in first:
                lines.append(f"   {'':<{width}}= {fmt_value(first[name])}")
        if not pairs:
            lines.append("   (one framework ran: nothing to compare across frameworks)")

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
                 if len(ran) > 1 else f"only {', '.join(ran) or 'no framework'} ran"]
        if report.expected:
            parts.append(f"{matched} printed values match")
        if errata:
            parts.append(f"{errata} errata confirmed")
        return "verdict: OK — " + "; ".join(parts)
    parts = []
    if report.errors:
        parts.append("failed to run: " + ", ".join(report.errors))
    if divergence is not None:
        parts.append("first divergence: " + divergence.message())
    if missed:
        parts.append("printed values missed: " + ", ".join(missed))
    return f"verdict: FAIL — {report.scenario.name}: " + "; ".join(parts)
