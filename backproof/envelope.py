"""The one JSON envelope every ``--json`` prints, and the strict encoder behind it.

    {"schema": "backproof/1", "command": "check", "ok": true, "results": [
        {"scenario": ..., "dtype": ..., "ok": ..., "coverage": ..., "frameworks": {name: {"status", "seconds", "reason", "hint"}},
         "step": {...} | null, "expected": [...] | null, "training": {...} | null,
         "verify": {...} | null, "explain": {...} | null, "verify_layer": {...} | null}]}

Rules (checked by tests against backproof/envelope.schema.json):
- tensors are always nested name -> framework; finite differences are one more framework key,
  ``numpy+fd``; keys are identifiers, never display labels;
- anything absent is ``null``;
- non-finite numbers are the strings "NaN", "Infinity" and "-Infinity", so the output is strict
  JSON (RFC 8259) that JavaScript's JSON.parse and jq accept;
- two runs give identical JSON apart from fields named ``seconds``.
"""

import json
import math

import numpy as np

from .compare import TOLERANCES
from .frameworks import FD, INSTALL_HINTS
from .render import is_plain_sgd

SCHEMA = "backproof/1"


def document(command, results):
    """The document: ``results`` is a list of result dicts made by the functions below."""
    return {"schema": SCHEMA, "command": command, "ok": all(r["ok"] for r in results), "results": results}


def dumps(document):
    """Strict JSON text: non-finite floats become "NaN"/"Infinity"/"-Infinity"; never bare NaN."""
    return json.dumps(finite(document), indent=1, allow_nan=False, ensure_ascii=False)


def finite(value):
    """``value`` with NumPy types made plain and non-finite floats spelled as strings."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    return value


# --- the parts of a result ----------------------------------------------------------------------

def frameworks_block(asked, seconds, skipped, errors):
    """{framework: {"status", "seconds", "reason", "hint"}} for every framework asked for, in order."""
    block = {}
    missing = {s.framework: s for s in skipped}
    for name in asked:
        if name in missing:
            block[name] = {"status": "skipped", "seconds": None, "reason": missing[name].reason,
                           "hint": INSTALL_HINTS[name]}
        elif name in errors:
            block[name] = {"status": "error", "seconds": seconds.get(name), "reason": errors[name], "hint": None}
        else:
            block[name] = {"status": "ran", "seconds": seconds.get(name), "reason": None, "hint": None}
    return block


def tolerance(dtype, kind):
    atol, rtol = TOLERANCES[dtype][kind]
    return {"atol": atol, "rtol": rtol}


def comparison(c, explained=False, amplified=False):
    return {"a": c.a, "b": c.b, "ok": c.ok, "max_abs": c.max_abs, "max_rel": c.max_rel,
            "worst_index": list(c.worst_index), "failing": [list(i) for i in c.failing],
            "failing_count": c.failing_count, "problem": c.problem or None, "nonfinite": c.nonfinite or None,
            "explained_by_convention": explained, "explained_by_amplification": amplified}


def divergence(c):
    return None if c is None else {"tensor": c.tensor, "a": c.a, "b": c.b, "max_abs": c.max_abs,
                                   "worst_index": list(c.worst_index), "problem": c.problem or None,
                                   "message": c.message()}


def kink_convention(note):
    return {"layer": note.layer, "activation": note.activation, "positions": [list(p) for p in note.positions],
            "values": note.values, "agree": note.agree, "registry_row": note.row,
            "undocumented": note.undocumented or None, "message": note.message()}


def check_result(report, asked):
    """One scenario of ``check``: step, expected values and (if the scenario trains) training."""
    sc = report.scenario
    comparisons = {}
    for c in report.comparisons:
        key = (c.tensor, c.a, c.b)
        comparisons.setdefault(c.tensor, []).append(comparison(c, key in report.explained, key in report.amplified))
    step = {
        "tolerance": tolerance(sc.dtype, "step"),
        "strict": report.strict,
        "order": list(report.order),
        "tensors": {name: {fw: trace[name] for fw, trace in report.traces.items() if name in trace}
                    for name in report.order},
        "comparisons": {name: comparisons.get(name, []) for name in report.order},
        "first_divergence": divergence(report.first_divergence),
        "kink_conventions": [kink_convention(note) for note in report.kinks] or None,
    }
    expected = [{"key": r.key, "resolved": r.resolved, "printed": r.printed, "computed": r.computed,
                 "max_abs": r.max_abs, "atol": r.atol, "effective_atol": r.effective_atol, "ok": r.ok, "erratum": r.erratum or None,
                 "note": r.note or None, "framework": r.framework} for r in report.expected]
    return result(sc, report.ok, frameworks_block(asked, report.seconds, report.skipped, report.errors),
                  step=step, expected=expected or None,
                  training=None if report.training is None else training(report.training), coverage=report.coverage)


def training(report):
    sc = report.scenario
    tensors = {"train.loss": {fw: r["train.loss"] for fw, r in report.results.items()}}
    if report.finite_differences is not None:
        tensors["train.loss"][FD] = report.finite_differences["train.loss"]
    for name in sc.parameters():
        tensors[f"trained.{name}"] = {fw: r[f"trained.{name}"] for fw, r in report.results.items()}
        if report.finite_differences is not None:
            tensors[f"trained.{name}"][FD] = report.finite_differences[f"trained.{name}"]
    kinks = report.relu_kinks
    return {
        "ok": report.ok, "epochs": report.epochs, "batch_size": report.batch_size,
        "divergence": report.divergence(),
        "tolerance": tolerance(sc.dtype, "train"),
        "tensors": tensors,
        "drift": [{"a": d.a, "b": d.b, "ok": d.ok, "first_bad_epoch": d.first_bad_epoch,
                   "max_loss_abs": d.max_loss_abs, "max_loss_rel": d.max_loss_rel, "worst_epoch": d.worst_epoch,
                   "final": {c.tensor: comparison(c) for c in d.final},
                   "explained_by_noise": d.explained, "noise_floor": d.noise} for d in report.drifts],
        "relu_kinks": None if kinks is None else {
            "before": [{"layer": k.layer, "unit": k.unit, "x": k.x} for k in kinks.before],
            "after": [{"layer": k.layer, "unit": k.unit, "x": k.x} for k in kinks.after],
            "capped": kinks.capped or None,
            "checks": {fw: [{"layer": c.kink.layer, "unit": c.kink.unit, "x": c.kink.x,
                             "sign_change": c.sign_change, "visible": c.visible} for c in checks]
                       for fw, checks in kinks.checks.items()}},
    }


def train_result(report, asked):
    block = frameworks_block(asked, report.seconds, report.skipped, report.errors)
    return result(report.scenario, report.ok, block, training=training(report), coverage=report.coverage)


def verify_result(vr, scenario, asked):
    from .verify import tolerance as verify_tolerance
    checks = {}
    for c in vr.checks:
        checks.setdefault(c.parameter, {})[c.oracle] = {
            "ok": c.ok, "max_abs": c.max_abs, "worst_index": list(c.worst_index), "yours": c.yours,
            "theirs": c.theirs, "checked": c.checked, "size": c.size, "wrong": [list(i) for i in c.wrong],
            "wrong_count": c.wrong_count}
    d = vr.directions
    body = {"function": vr.function, "oracles": list(vr.oracles),
            "tolerances": {o: dict(zip(("atol", "rtol"), verify_tolerance(vr.dtype, o))) for o in vr.oracles},
            "checks": checks,
            "directions": None if d is None else {"delta": d.delta, "numeric": d.numeric, "analytic": d.analytic,
                                                  "max_abs": d.max_abs, "max_rel": d.max_rel, "ok": d.ok},
            "notes": vr.notes or None,
            "established": {name: {"passed": passed, "detail": detail}
                            for name, (passed, detail) in vr.established.items()} or None,
            "diagnoses": [{"parameter": d.parameter, "kind": d.kind, "text": d.text} for d in vr.diagnoses] or None}
    block = frameworks_block(asked, {}, vr.skipped, vr.errors)      # the autodiff oracles asked for
    return result(scenario, vr.ok, block, verify=body)


def verify_layer_result(lv, scenario, asked):
    """homework mode: each argument's comparison with each oracle (and the course style's forward output)."""
    checks = {}
    for c in lv.checks:
        key = {"finite differences": FD, "reference forward": "numpy"}.get(c.b, c.b)       # identifiers, no labels
        checks.setdefault(c.tensor, {})[key] = {"ok": c.ok, "max_abs": c.max_abs, "worst_index": list(c.worst_index),
                                                "problem": c.problem or None}
    body = {"layer": lv.layer, "part": lv.part, "description": lv.description,
            "oracles": [FD if o == "finite differences" else o for o in lv.oracles],
            "checks": checks,
            "diagnoses": [{"parameter": d.parameter, "kind": d.kind, "text": d.text} for d in lv.diagnoses] or None}
    block = frameworks_block(asked, {}, lv.skipped, {})
    return result(scenario, lv.ok, block, verify_layer=body)


def explain_result(ex, asked):
    body = {
        "parameter": ex.parameter, "symbol": ex.symbol, "path_count": ex.path_count,
        "paths": [{"row": p.row, "units": [list(u) for u in p.units], "names": p.names, "product": p.product,
                   "factors": [{"kind": f.kind, "layer": f.layer, "row": f.row, "unit": f.unit, "source": f.source,
                                "symbol": f.symbol, "equals": f.equals or None, "value": f.value}
                               for f in p.factors]} for p in ex.paths] or None,
        "delta_recursion": [{"step": label, "value": np.asarray(v).tolist()} for label, v in ex.recursion] or None,
        "groups": [{"units": [list(u) for u in g.units], "names": g.names, "products": list(g.products),
                    "total": g.total} for g in ex.groups] or None,
        "gradient": ex.total, "oracles": ex.oracles,
        "sgd": {"lr": ex.scenario.lr, "value": ex.value, "updated": ex.updated}
               if is_plain_sgd(ex.scenario.optimizer) else None,
        "update": {"optimizer": optimizer_block(ex.scenario.optimizer), "value": ex.value, "updated": ex.updated},
        "softmax_layers": ex.softmax_layers or None,
        "errata": ex.errata or None,
    }
    block = frameworks_block(["numpy", *[fw for fw in asked if fw != "numpy"]], {}, ex.skipped, ex.errors)
    return result(ex.scenario, not ex.errors, block, explain=body)


def optimizer_block(optimizer):
    """{"name": …, every hyperparameter in force}: the scenario file's optimizer block, defaults filled in."""
    return {"name": optimizer.name, **{key: list(value) if isinstance(value, tuple) else value
                                       for key, value in optimizer.hyperparameters().items()}}


def result(scenario, ok, frameworks, step=None, expected=None, training=None, verify=None, explain=None,
           coverage=None, verify_layer=None):
    return {"scenario": scenario.name, "dtype": scenario.dtype, "ok": bool(ok), "coverage": coverage,
            "frameworks": frameworks, "step": step, "expected": expected, "training": training, "verify": verify,
            "explain": explain, "verify_layer": verify_layer}


def schema_path():
    """The JSON Schema file every document validates against (installed with the package)."""
    from importlib import resources
    return resources.files("backproof") / "envelope.schema.json"
