"""``backproof report``: one self-contained HTML page per scenario, with the pictures.

The page holds, as they apply to the scenario: the verdict and its provenance; the network
diagram (SVG drawn here) with z, a and ∂L/∂z of row 0 on every unit and the weights on the
edges, errata marked; the agreement map (every tensor × every pair, coloured by |Δ| over the
tolerance); printed against computed values; loss curves and drift per epoch; the function
and its kinks of a 1-input ReLU network; the ε sweep; with ``explain``, the chain-rule paths
of one parameter drawn on the diagram.

Self-contained: inline CSS, inline SVG, no script, nothing fetched. Deterministic: two runs
give the same bytes (matplotlib's SVG ids come from a fixed salt, no dates, no timings on the
page). matplotlib (``pip install 'backproof[report]'``) draws the plots with the Agg/SVG
backends through its object API, inside ``rc_context``: the caller's matplotlib state is left
alone. Curves are downsampled for drawing only (``MAX_POINTS``), never for comparing.
"""

import html
import importlib.metadata
import io
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

import reference
from reference import gradcheck
from reference.network import loss_and_gradients, loss_of

from . import relu_kinks
from .check import check
from .compare import TOLERANCES
from .frameworks import FRAMEWORKS, REQUIRES, as_frameworks
from .names import format_element, network_shape
from .render import fmt_number, optimizer_text, verdict
from .scenario_file import as_scenario

MAX_POINTS = 1000           # per curve, for drawing
MAX_EDGE_LABELS = 60        # above this the diagram's edges carry no numbers
MAX_DIAGRAM_EDGES = 4_096   # above this no diagram is drawn (a 1-512-512-1 net's would be 33 MB): the page stays small
COMPACT_ABOVE = 8           # a layer wider than this: units drawn small, their values as hover titles
HALO = 'stroke="#fff" stroke-width="3" paint-order="stroke"'     # text stays legible over the edges
INSTALL = "pip install 'backproof[report]' -c constraints.txt"
RC = {"svg.hashsalt": "backproof", "svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
      "figure.dpi": 100, "axes.formatter.use_mathtext": False}
COLORS = {"numpy": "#1f77b4", "torch": "#d62728", "jax": "#2ca02c", "numpy+fd": "#9467bd"}


class ReportError(ValueError):
    """A report that cannot be written; str() is one line (exit code 2)."""


def matplotlib_or_error():
    """matplotlib's Figure class, or ReportError naming the install line."""
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError(f"report needs matplotlib, which is not installed: {INSTALL}") from None
    return Figure


# --- the page -----------------------------------------------------------------------------------

def build(scenario, frameworks=FRAMEWORKS, epochs=None, finite_differences=False, explain=None):
    """The HTML page of one scenario (a Scenario, a built-in name or a path) -> (html text, ScenarioReport)."""
    Figure = matplotlib_or_error()
    scenario = as_scenario(scenario)
    if epochs is not None and scenario.train is not None:
        scenario = replace(scenario, train=dict(scenario.train, epochs=epochs))
    result = check(scenario, frameworks)
    training = result.training
    if training is not None and finite_differences:
        from .training import finite_difference_train
        training.finite_differences = finite_difference_train(scenario)
    explanation = None
    if explain is not None:
        from .explain import explain as explain_parameter
        explanation = explain_parameter(scenario, explain, ("numpy",))
    sections = [("verdict", "Verdict and provenance", verdict_section(result, frameworks)),
                ("diagram", "The network", diagram_section(scenario, result, explanation))]
    if len(result.traces) > 1:
        sections.append(("agreement", "Agreement map", agreement_section(result)))
    if result.expected:
        sections.append(("expected", "Printed against computed", expected_section(result)))
    if training is not None and training.results:
        sections.append(("training", "Training", figure_html(training_figure(Figure, training))
                         + aliasing_html(Figure, scenario, training)))
        if training.relu_kinks is not None and training.relu_kinks.capped:
            sections.append(("kinks", "The function and its kinks",
                             f'<p class="note">{html.escape(training.relu_kinks.capped)}</p>'))
        elif training.relu_kinks is not None:
            sections.append(("kinks", "The function and its kinks",
                             figure_html(kinks_figure(Figure, scenario, training)) + kinks_table(training.relu_kinks)))
    if scenario.sequence:
        sections.append(("sequence", "Through the steps", sequence_section(scenario)))
    sections.append(("epsilon", "The ε sweep", figure_html(epsilon_figure(Figure, scenario))))
    if explanation is not None:
        sections.append(("explain", f"Chain rule for {html.escape(explanation.symbol)}", explain_section(explanation)))
    return page(scenario, result, sections), result


def page(scenario, result, sections):
    toc = " · ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    body = "\n".join(f'<section id="{key}"><h2>{html.escape(title)}</h2>\n{content}\n</section>'
                     for key, title, content in sections)
    state = "ok" if result.ok else "fail"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>backproof report: {html.escape(scenario.name)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1280px;
        color: #1d1d1f; line-height: 1.45; padding: 0 16px; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 17px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }}
h3 {{ font-size: 14px; margin: 14px 0 4px; }}
code, td.num, .mono {{ font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }}
table {{ border-collapse: collapse; margin: 6px 0 12px; }} td, th {{ border: 1px solid #ddd; padding: 3px 7px; }}
th {{ background: #f5f5f7; text-align: left; font-weight: 600; }} td.num {{ text-align: right; }}
.verdict {{ padding: 8px 12px; border-radius: 6px; font-weight: 600; }}
.verdict.ok {{ background: #e3f5e1; }} .verdict.fail {{ background: #fde2e1; }}
.first {{ outline: 3px solid #000; outline-offset: -3px; }}
.erratum {{ background: #fff4d6; }} .note {{ color: #555; font-size: 13px; }}
.figure {{ overflow-x: auto; }} .figure svg {{ max-width: 100%; height: auto; }}
nav {{ font-size: 13px; margin-bottom: 12px; }}
</style>
</head>
<body>
<h1>backproof report: {html.escape(scenario.name)}</h1>
<nav>{toc}</nav>
<p class="verdict {state}">{html.escape(verdict(result))}</p>
{body}
</body>
</html>
"""


def verdict_section(result, frameworks):
    sc = result.scenario
    atol, rtol = TOLERANCES[sc.dtype]["step"]
    rows = [("scenario", f"{sc.name} ({network_shape(sc)}: {', '.join(s.activation for s in sc.layers)})"),
            ("description", sc.description), ("source", sc.source), ("dtype", sc.dtype),
            ("loss", sc.loss + (f", label smoothing {sc.label_smoothing:g}" if sc.label_smoothing else "")
             + (", class indices" if sc.target_format == "indices" else "")),
            ("optimizer", optimizer_text(sc.optimizer)),
            ("step tolerance", f"|Δ| ≤ {atol:g} + {rtol:g}·|x|")]
    if result.training is not None:
        t_atol, t_rtol = TOLERANCES[sc.dtype]["train"]
        rows.append(("training", f"{result.training.epochs} epochs, batch {result.training.batch_size}; "
                                 f"tolerance |Δ| ≤ {t_atol:g} + {t_rtol:g}·|x|"))
    divergence = result.first_divergence
    rows.append(("first divergence", "none" if divergence is None else divergence.message()))
    framework_rows = []
    skipped = {s.framework: s for s in result.skipped}
    for name in as_frameworks(frameworks):
        if name in skipped:
            framework_rows.append((name, f"skipped: {skipped[name].reason}. Install with: {skipped[name].hint}"))
        elif name in result.errors:
            framework_rows.append((name, f"error: {result.errors[name]}"))
        else:
            versions = ", ".join(f"{lib} {library_version(lib)}" for lib in REQUIRES[name])
            framework_rows.append((name, f"ran ({versions})"))
    return (table(["", ""], [[html.escape(k), html.escape(v)] for k, v in rows if v], header=False)
            + "<h3>Frameworks</h3>" + table(["framework", "status"],
                                             [[html.escape(k), html.escape(v)] for k, v in framework_rows]))


def library_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def table(headers, rows, header=True, classes=None):
    """An HTML table; a cell that is already a ``<td …>`` is kept, any other is wrapped; classes: one per row."""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>" if header else ""
    body = []
    for i, row in enumerate(rows):
        css = classes[i] if classes else ""
        cells = "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row)
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


# --- the diagram (SVG written here) ---------------------------------------------------------------

def diagram_section(scenario, result, explanation):
    if scenario.typed:
        trace = next(iter(result.traces.values()), None)
        layout = "(n, T, E) for a sequence" if scenario.sequence else "(n, C, H, W) in torch's layout"
        return (f'<div class="figure">{block_diagram_svg(scenario, trace)}</div><p class="note">A network of typed '
                "layers, drawn as blocks: each box is one layer with its hyperparameters and activation, the shape "
                f"of its output, {layout}, and, from the first framework's trace, the range and "
                "mean of its output a and of ∂L/∂z over the batch. The agreement map below covers every tensor.</p>")
    widths = widths_of(scenario)
    edges = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    if edges > MAX_DIAGRAM_EDGES:
        return (f'<p class="note">The network has {edges:,} weights: the diagram is drawn for networks of up to '
                f"{MAX_DIAGRAM_EDGES:,}, so that the page stays small. The agreement map below covers every tensor."
                "</p>")
    trace = next(iter(result.traces.values()), None)
    svg = diagram_svg(scenario, trace, explanation)
    wide = max(widths_of(scenario)) > COMPACT_ABOVE
    return (f'<div class="figure">{svg}</div><p class="note">Row 0 of the batch: each unit shows z (pre-activation), '
            "a (activation) and ∂L/∂z" + (" when the pointer rests on it (the layers are wide)" if wide else "")
            + "; each edge its weight (the source's name where it has one; above "
            f"{MAX_EDGE_LABELS} edges, its thickness only). "
            "An edge drawn in orange carries an erratum; with <code>--explain</code>, the parameter's paths are "
            "drawn in blue.</p>")


def layer_caption(spec):
    """'conv2d 4@3×3, stride 2, padding 1' and the like: the layer as a porter names it."""
    o = spec.hyper
    if spec.type == "linear":
        return f"linear {spec.shape[1]}→{spec.shape[0]}"
    if spec.type in ("conv1d", "conv2d"):
        text = f"{spec.type} {spec.shape[0]}@{'×'.join(map(str, spec.shape[2:]))}"
        padding = o["padding"]
        if not isinstance(padding, str):
            sides = {side for pair in padding for side in pair}
            padding = None if sides == {0} else (sides.pop() if len(sides) == 1 else
                                                 [list(pair) for pair in padding])
        extras = [f"stride {o['stride']}" if set(o["stride"]) != {1} else "",
                  f"padding {padding}" if padding is not None else "",
                  f"dilation {o['dilation']}" if set(o["dilation"]) != {1} else "",
                  f"groups {o['groups']}" if o["groups"] != 1 else ""]
        return ", ".join([text] + [e for e in extras if e])
    if "kernel_size" in o:
        extras = [f"stride {o['stride']}" if o["stride"] != o["kernel_size"] else "",
                  f"padding {o['padding']}" if any(p != (0, 0) for p in o["padding"]) else "",
                  "count_include_pad false" if spec.type == "avg_pool2d" and not o["count_include_pad"] else ""]
        return ", ".join([f"{spec.type} {'×'.join(map(str, o['kernel_size']))}"] + [e for e in extras if e])
    if spec.type == "dropout":
        return f"dropout p {o['p']} (mask given)"
    if spec.type == "group_norm":
        return f"group_norm {spec.shape[0]} in {o['num_groups']} groups, eps {o['eps']:g}"
    if spec.type.startswith("batch_norm"):
        return (f"{spec.type} {spec.shape[0]}, {'training' if o['training'] else 'eval'}, momentum {o['momentum']:g}, "
                f"eps {o['eps']:g}")
    if spec.type == "layer_norm":
        return f"layer_norm {spec.shape[0]}, eps {o['eps']:g}{'' if spec.bias is not None else ', no bias'}"
    if spec.type == "multi_head_attention":
        return (f"attention E {spec.parameter('out_proj.weight').shape[0]}, {o['num_heads']} heads"
                + (", causal" if o["causal"] else ""))
    if spec.type == "transformer_encoder_layer":
        linear1 = spec.parameter("linear1.weight")
        return (f"transformer block E {linear1.shape[1]}, {o['nhead']} heads, feed-forward {linear1.shape[0]} "
                f"{o['feedforward_activation']}, {'pre' if o['norm_first'] else 'post'}-LN"
                + (", causal" if o["causal"] else ""))
    if spec.type in ("rnn", "lstm", "gru"):
        weight = spec.parameter("weight_ih_l0")
        return (f"{spec.type} {weight.shape[1]}→{spec.parameter('weight_hh_l0').shape[1]}"
                + (f" {o['nonlinearity']}" if spec.type == "rnn" else ""))
    if spec.type == "sequence_pool":
        return "the last step" if o["mode"] == "last" else "the mean over the steps"
    return spec.type


def block_diagram_svg(scenario, trace):
    """A typed network as SVG boxes, top to bottom: the input, then each layer with its caption, output shape and a
    summary of its values in ``trace`` (min, mean, max of a; max |∂L/∂z|)."""
    n = scenario.inputs.shape[0]
    boxes = [("input", "x", (n,) + scenario.inputs.shape[1:], np.asarray(scenario.inputs), None)]
    for i, (spec, shape) in enumerate(zip(scenario.layers, scenario.layer_shapes())):
        caption = layer_caption(spec) + ("" if spec.activation == "identity" else f" · {spec.activation}")
        a = None if trace is None else np.asarray(trace[f"layers.{i}.a"])
        dz = None if trace is None else np.asarray(trace[f"layers.{i}.dz"])
        boxes.append((f"layers.{i}", caption, (n,) + shape, a, dz))
    width, box, gap = 720, 64, 26
    height = len(boxes) * (box + gap) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="12">']
    for k, (name, caption, shape, a, dz) in enumerate(boxes):
        top = 10 + k * (box + gap)
        if k:
            parts.append(f'<line x1="{width / 2}" y1="{top - gap}" x2="{width / 2}" y2="{top}" stroke="#444" '
                         'stroke-width="1.5" marker-end="url(#arrow)"/>')
        parts.append(f'<rect x="20" y="{top}" width="{width - 40}" height="{box}" rx="6" fill="#fff" stroke="#444" '
                     f'data-layer="{name}"/>')
        parts.append(f'<text x="32" y="{top + 20}" font-weight="bold">{html.escape(name)}</text>'
                     f'<text x="120" y="{top + 20}">{html.escape(caption)}</text>'
                     f'<text x="{width - 32}" y="{top + 20}" text-anchor="end" fill="#666">'
                     f'{"×".join(map(str, shape))}</text>')
        if a is not None:
            summary = f"a: min {a.min():.4g} · mean {a.mean():.4g} · max {a.max():.4g}"
            if dz is not None:
                summary += f"   ∂L/∂z: max |·| {np.abs(dz).max():.3g}"
            parts.append(f'<text x="32" y="{top + 44}" fill="#333" data-node="{name}">{html.escape(summary)}</text>')
    parts.append('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
                 'orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs></svg>')
    return "".join(parts)


# --- sequences: attention weights and recurrent layers unrolled (SVG written here) ----------------------------

MAX_UNROLLED_STEPS = 12         # a recurrent layer is drawn step by step up to this many steps


def sequence_section(scenario):
    """Row 0 of the batch through the steps, from the reference's forward and backward pass: each attention layer's
    weights as one heat map per head (query step down, key step across), and each recurrent layer unrolled, one box per
    step with h_t and the gradient reaching it."""
    from reference.layers import MultiHeadAttention, Recurrent, TransformerEncoderLayer
    from reference.network import Model, gradients
    model = Model(scenario)
    values = gradients(model, np.array(scenario.inputs), scenario.targets, scenario.criterion)
    parts, notes = [], {}
    for i, layer in enumerate(model.layers):
        attention = layer.self_attn if isinstance(layer, TransformerEncoderLayer) else layer
        if isinstance(attention, MultiHeadAttention):
            parts.append(f"<h3>layers.{i}: attention weights, row 0</h3>" + attention_svg(attention.p[0]))
            notes["attention"] = ("Attention: each cell is the weight p[t, s] with which query step t (down) reads key "
                                  "step s (across), darker is larger, each row summing to 1; a causal layer's upper "
                                  "triangle is 0.")
        if isinstance(layer, Recurrent):
            if len(layer.hs) - 1 > MAX_UNROLLED_STEPS:
                parts.append(f'<p class="note">layers.{i} runs {len(layer.hs) - 1} steps: it is drawn unrolled up to '
                             f"{MAX_UNROLLED_STEPS}.</p>")
                continue
            parts.append(f"<h3>layers.{i}: {scenario.layers[i].type} unrolled, row 0</h3>"
                         + unrolled_svg(scenario.layers[i].type, [h[0] for h in layer.hs[1:]],
                                        np.asarray(values.dzs[i])[0]))
            notes["recurrent"] = ("Recurrent: h_t after each step (the hidden state carried right, its first six "
                                  "units) and ‖∂L/∂h_t‖, the gradient the layers above send to that step's output (a "
                                  "head on the last step sends to it alone); backpropagation through time adds to "
                                  "each what step t + 1 sends back.")
    return "\n".join(parts) + f'<p class="note">{html.escape(" ".join(notes.values()))}</p>'


def attention_svg(weights):
    """(heads, T, T) attention weights -> one grey-level grid per head, each cell's value in its title."""
    heads, steps, _ = weights.shape
    cell, gap = max(14, min(44, 240 // steps)), 44
    size = steps * cell
    width, height = heads * (size + gap) + 40, size + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="11">']
    for head in range(heads):
        left = 36 + head * (size + gap)
        parts.append(f'<text x="{left}" y="14">head {head}: query t ↓, key s →</text>')
        for t in range(steps):
            parts.append(f'<text x="{left - 6}" y="{28 + t * cell + cell / 2 + 4}" text-anchor="end" fill="#666">'
                         f'{t}</text><text x="{left + t * cell + cell / 2}" y="{size + 40}" text-anchor="middle" '
                         f'fill="#666">{t}</text>')
            for u in range(steps):
                value = float(weights[head, t, u])
                shade = int(round(255 * (1.0 - value)))
                label = (f'<text x="{left + u * cell + cell / 2}" y="{28 + t * cell + cell / 2 + 4}" '
                         f'text-anchor="middle" font-size="10" fill="{"#fff" if value > 0.5 else "#222"}">'
                         f'{value:.2f}</text>') if cell >= 36 else ""
                parts.append(f'<rect x="{left + u * cell}" y="{28 + t * cell}" width="{cell}" height="{cell}" '
                             f'fill="rgb({shade},{shade},{min(255, shade + 30)})" stroke="#ddd">'
                             f"<title>head {head}: step {t} reads step {u} with weight {value:.4g}</title></rect>"
                             + label)
    return f'<div class="figure">{"".join(parts)}</svg></div>'


def unrolled_svg(kind, hidden, gradients):
    """A recurrent layer unrolled: one box per step with h_t (row 0, a unit a line, the first 6) and the norm of the
    gradient the layer above sends to it, arrows carrying the state."""
    units = min(len(hidden[0]), 6)
    steps, box, gap = len(hidden), 132, 28
    width, height = steps * (box + gap) + 20, 74 + 16 * units
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="11">']
    for t, (h, g) in enumerate(zip(hidden, gradients)):
        left = 10 + t * (box + gap)
        if t:
            parts.append(f'<line x1="{left - gap}" y1="50" x2="{left}" y2="50" stroke="#444" stroke-width="1.5" '
                         'marker-end="url(#step)"/>')
        lines = "".join(f'<text x="{left + 8}" y="{46 + 16 * k}">h[{k}] {h[k]: .4f}</text>' for k in range(units))
        parts.append(f'<rect x="{left}" y="10" width="{box}" height="{height - 20}" rx="6" fill="#fff" '
                     f'stroke="#444"/><text x="{left + 8}" y="28" font-weight="bold">{kind} t={t}</text>{lines}'
                     f'<text x="{left + 8}" y="{50 + 16 * units}" fill="#555">‖∂L/∂h‖ {np.linalg.norm(g):.3g}</text>')
    parts.append('<defs><marker id="step" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
                 'orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs></svg>')
    return f'<div class="figure">{"".join(parts)}</div>'


def widths_of(scenario):
    """[inputs, units of layer 0, units of layer 1, …]"""
    return [scenario.inputs.shape[1]] + [spec.shape[0] for spec in scenario.layers]


def diagram_svg(scenario, trace, explanation=None):
    """The network as SVG: columns of units, edges with weights, values of row 0 as text (data-* attributes too)."""
    widths = widths_of(scenario)
    compact = max(widths) > COMPACT_ABOVE          # wide layers: units close together, values in each unit's title
    column_gap, row_gap, radius = (300, 46, 16) if compact else (300, 128, 24)
    height = max(widths) * row_gap + 80
    width = (len(widths) - 1) * column_gap + 220
    names = scenario.node_names
    aliases = {}
    for alias, target in scenario.aliases.items():
        aliases.setdefault(target.replace(" ", ""), alias)
    marked = errata_parameters(scenario)
    on_paths = set()
    if explanation is not None:
        layer = int(explanation.tensor.split(".")[1])
        for path in explanation.paths:
            units = [(layer - 1, explanation.index[1])] if explanation.index[1:] else []
            chain = units + list(path.units)
            for (l0, u0), (l1, u1) in zip(chain, chain[1:]):
                on_paths.add((l1, u1, u0))

    def position(column, unit):
        top = (height - widths[column] * row_gap) / 2 + row_gap / 2
        return 90 + column * column_gap, top + unit * row_gap

    parts, labels = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
                     f'height="{height}" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="11">'], []
    edges = sum(a * b for a, b in zip(widths, widths[1:]))
    for i, spec in enumerate(scenario.layers):
        weights = spec.weight
        scale = float(np.max(np.abs(weights))) or 1.0
        for j in range(spec.shape[0]):
            for k in range(spec.shape[1]):
                (x0, y0), (x1, y1) = position(i, k), position(i + 1, j)
                element = format_element(f"layers.{i}.weight", (j, k))
                erratum = element in marked
                color = "#1f5fbf" if (i, j, k) in on_paths else ("#e08a00" if erratum else "#999")
                stroke = 0.6 + 2.4 * abs(float(weights[j, k])) / scale + (1.5 if erratum else 0)
                dashes = ' stroke-dasharray="7 4"' if erratum and (i, j, k) in on_paths else ""
                parts.append(f'<line x1="{x0 + radius}" y1="{y0:.1f}" x2="{x1 - radius}" y2="{y1:.1f}" stroke="{color}" '
                             f'stroke-width="{stroke:.2f}"{dashes} data-parameter="{element}"/>')
                if edges <= MAX_EDGE_LABELS:
                    t = 0.22 + 0.56 * (k / max(1, spec.shape[1] - 1) if spec.shape[1] > 1 else 0.5)
                    lx, ly = x0 + radius + (x1 - x0 - 2 * radius) * t, y0 + (y1 - y0) * t - 3
                    label = aliases.get(element)
                    text = f"{label} = {weights[j, k]:.4g}" if label else f"{weights[j, k]:.4g}"
                    labels.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" fill="{color}" {HALO} '
                                 f'data-weight="{element}">{html.escape(text + (" (erratum)" if erratum else ""))}'
                                 f'</text>')
    parts += labels                         # every weight over every edge
    for column, count in enumerate(widths):
        for unit in range(count):
            x, y = position(column, unit)
            if column == 0:
                name = names.get(f"inputs.{unit}", f"x{unit}")
                value = float(scenario.inputs[0, unit])
                parts.append(f'<circle cx="{x}" cy="{y:.1f}" r="{radius}" fill="#f5f5f7" stroke="#444"/>')
                parts.append(f'<text x="{x}" y="{y - 4:.1f}" text-anchor="middle" font-weight="bold">'
                             f'{html.escape(name)}</text>')
                parts.append(f'<text x="{x}" y="{y + 12:.1f}" text-anchor="middle" data-node="inputs.{unit}" '
                             f'data-value="x">{value:.6g}</text>')
                continue
            layer = column - 1
            name = names.get(f"layers.{layer}.{unit}", f"L{layer}·{unit}")
            activation = scenario.layers[layer].activation
            parts.append(f'<circle cx="{x}" cy="{y:.1f}" r="{radius}" fill="#fff" stroke="#444"/>')
            parts.append(f'<text x="{x}" y="{y + (4 if compact else -6):.1f}" text-anchor="middle" font-weight="bold">'
                         f'{html.escape(name)}'
                         f'</text>' + ("" if compact else f'<text x="{x}" y="{y + 8:.1f}" text-anchor="middle" '
                                                          f'fill="#666">{html.escape(activation)}</text>'))
            if trace is not None:
                values = [(label, tensor, float(trace[f"layers.{layer}.{tensor}"][0, unit]))
                          for label, tensor in (("z", "z"), ("a", "a"), ("∂L/∂z", "dz"))]
                if compact:
                    title = "; ".join(f"{label} = {value:.6g}" for label, _, value in values)
                    parts.append(f'<circle cx="{x}" cy="{y:.1f}" r="{radius}" fill="none" stroke="none">'
                                 f'<title>{html.escape(name)}: {html.escape(title)}</title></circle>')
                    continue
                for offset, (label, tensor, value) in enumerate(values):
                    parts.append(f'<text x="{x}" y="{y + radius + 13 + 13 * offset:.1f}" text-anchor="middle" {HALO} '
                                 f'data-node="layers.{layer}.{unit}" data-value="{tensor}">'
                                 f'{label} = {value:.6g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def errata_parameters(scenario):
    """Canonical parameter elements an erratum is about (expected entries and errata with a parameter)."""
    marked = set()
    for entry in scenario.expected.values():
        if entry.get("erratum") and entry.get("index") is not None:
            tensor = re.sub(r"^(grad|updated)\.", "", entry["tensor"])
            if tensor.startswith("layers.") and tensor.endswith(".weight"):
                marked.add(format_element(tensor, entry["index"]))
    for erratum in scenario.errata:
        if "parameter" in erratum:
            target = scenario.aliases.get(erratum["parameter"], erratum["parameter"])
            marked.add(target.replace(" ", ""))
    return marked


# --- the agreement map ---------------------------------------------------------------------------

def agreement_section(result):
    sc = result.scenario
    atol, rtol = TOLERANCES[sc.dtype]["step"]
    ran = list(result.traces)
    pairs = [(a, b) for i, a in enumerate(ran) for b in ran[i + 1:]]
    by_key = {(c.tensor, c.a, c.b): c for c in result.comparisons}
    first = result.first_divergence
    rows = []
    for name in result.order:
        cells = [f"<code>{html.escape(name)}</code>"]
        for a, b in pairs:
            c = by_key.get((name, a, b))
            if c is None:
                cells.append("<td>missing</td>")
                continue
            scale = max(float(np.max(np.abs(np.asarray(result.traces[t][name], np.float64)), initial=0.0))
                        for t in (a, b) if np.all(np.isfinite(np.asarray(result.traces[t][name], np.float64))))
            ratio = c.max_abs / (atol + rtol * scale)
            outline = " first" if first is not None and (first.tensor, first.a, first.b) == (c.tensor, c.a, c.b) else ""
            mark = "≈ " if result.is_explained(c) else ("✗ " if not c.ok else "")
            cells.append(f'<td class="num{outline}" style="background:{heat(ratio)}" '
                         f'title="|Δ| / tolerance = {ratio:.3g}">{mark}{html.escape(fmt_number(c.max_abs))}</td>')
        rows.append(cells)
    legend = "".join(f'<span class="mono" style="background:{heat(r)};padding:1px 6px">{label}</span> '
                     for r, label in ((0, "0"), (1e-6, "1e-6"), (1e-3, "1e-3"), (0.1, "0.1"), (1, "1"), (10, "10")))
    return (table(["tensor"] + [f"{a}↔{b}" for a, b in pairs], rows)
            + f'<p class="note">max |Δ| per tensor and pair; the colour is |Δ| over the tolerance, on a log scale: '
              f'{legend}(1 is the tolerance). The first divergence is outlined; ≈ marks a difference a documented '
              f'convention or the optimizer\'s amplification explains.</p>')


def heat(ratio):
    """|Δ|/tolerance -> a background colour: green far below, yellow at 1e-2, red above 1."""
    if ratio <= 0:
        return "#e8f5e9"
    t = min(1.0, max(0.0, (math.log10(ratio) + 8) / 8))        # 1e-8 -> 0, 1 -> 1
    if ratio > 1:
        return "#f4a6a6"
    red, green = int(232 + (255 - 232) * t), int(245 - (245 - 214) * t)
    blue = int(233 - (233 - 120) * t)
    return f"#{red:02x}{green:02x}{blue:02x}"


# --- printed against computed --------------------------------------------------------------------

def expected_section(result):
    rows, classes = [], []
    for r in result.expected:
        outcome = ("erratum confirmed" if r.ok else "ERRATUM NOT REPRODUCED") if r.erratum else \
            ("ok" if r.ok else "MISMATCH")
        computed = "missing" if r.computed is None else fmt_value_short(r.computed)
        rows.append([f"<code>{html.escape(r.key)}</code>", f"<code>{html.escape(r.resolved)}</code>",
                     f'<td class="num">{html.escape(fmt_value_short(r.printed))}</td>',
                     f'<td class="num">{html.escape(computed)}</td>',
                     f'<td class="num">{html.escape(fmt_number(r.max_abs))}</td>', f"{r.atol:g}",
                     html.escape(outcome) + (f'<br><span class="note">{html.escape(r.erratum)}</span>'
                                             if r.erratum else "")
                     + (f'<br><span class="note">{html.escape(r.note)}</span>' if r.note else "")])
        classes.append("erratum" if r.erratum else "")
    return table(["key", "resolves to", "printed", "computed", "|Δ|", "atol", "result"], rows, classes=classes)


def fmt_value_short(value):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return f"{float(array):.6g}"
    return np.array2string(array, precision=6, separator=", ", max_line_width=60)


# --- the figures (matplotlib) --------------------------------------------------------------------

def figure_html(figure):
    return f'<div class="figure">{svg_text(figure)}</div>'


def svg_text(figure):
    """The figure as inline SVG text: deterministic (fixed hash salt, no date), without the XML prologue."""
    import matplotlib
    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)      # an RDF block naming namespaces
    return re.sub(r'\s+xmlns:(dc|cc|rdf)="[^"]*"', "", text)


def save_figure(figure, path):
    """A figure to an .svg or .png file (deterministic: no dates, no software stamp), whole or not at all."""
    import matplotlib
    from .output import replacing
    svg = Path(path).suffix.lower() == ".svg"
    with matplotlib.rc_context(RC), replacing(path) as temporary:
        if svg:
            figure.savefig(temporary, format="svg", metadata={"Date": None, "Creator": None})
        else:
            figure.savefig(temporary, format="png", metadata={"Software": None})


def strided(values):
    """(indices, values) of at most MAX_POINTS points for drawing: every k-th, the last kept; for a curve
    whose spikes matter (drift), ``envelope`` instead."""
    values = np.asarray(values, dtype=np.float64)
    step = max(1, math.ceil(len(values) / MAX_POINTS))
    index = np.arange(0, len(values), step)
    if index[-1] != len(values) - 1:
        index = np.append(index, len(values) - 1)
    return index + 1, values[index]


def envelope(values):
    """(epochs, maxima) of at most MAX_POINTS buckets: the largest value of each bucket, so no spike is hidden."""
    values = np.asarray(values, dtype=np.float64)
    step = max(1, math.ceil(len(values) / MAX_POINTS))
    starts = np.arange(0, len(values), step)
    maxima = np.array([np.max(values[s:s + step]) for s in starts])
    return starts + 1, maxima


def positive(values, floor=1e-300):
    return np.where(np.asarray(values, np.float64) > floor, values, np.nan)


def labels(axes, x, y, title):
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(title)
    axes.legend(fontsize=8)


def finish(figure):
    """Fixed margins and plain tick labels ("1e-05", not mathtext): laying text out was most of a page's time."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
    plain = FuncFormatter(lambda value, _: f"{value:.0e}" if value and not 1e-2 <= abs(value) < 1e3 else f"{value:g}")
    for axes in figure.axes:
        for axis, scale in ((axes.xaxis, axes.get_xscale()), (axes.yaxis, axes.get_yscale())):
            if scale == "log":                  # a few labelled decades; minor ticks cost a line object each
                axis.set_major_locator(LogLocator(numticks=8))
                axis.set_major_formatter(plain)
                axis.set_minor_locator(NullLocator())
    figure.subplots_adjust(left=0.08 if len(figure.axes) > 1 else 0.12, right=0.98, bottom=0.13, top=0.9,
                           wspace=0.25)
    return figure


def training_figure(Figure, training):
    """Loss curves of every framework (log y), and the drift per epoch of every pair against the tolerance."""
    sc = training.scenario
    atol, rtol = TOLERANCES[sc.dtype]["train"]
    figure = Figure(figsize=(11, 4.2))
    loss_axes, drift_axes = figure.subplots(1, 2)
    curves = {fw: r["train.loss"] for fw, r in training.results.items()}
    if training.finite_differences is not None:
        curves["numpy+fd"] = training.finite_differences["train.loss"]
    for k, (name, curve) in enumerate(curves.items()):
        epochs, values = strided(curve)
        loss_axes.plot(epochs, positive(values), color=COLORS.get(name), linewidth=1.6 - 0.3 * k,
                       linestyle=["-", "--", ":", "-."][k % 4], label=name, gid=f"loss-{name}")
    loss_axes.set_yscale("log")
    labels(loss_axes, "epoch", "mean loss (log)", f"loss, {sc.dtype}")
    reference_curve = np.asarray(next(iter(curves.values())), np.float64)
    for d in training.drifts:
        epochs, values = envelope(d.per_epoch)
        drift_axes.plot(epochs, positive(values, 0), label=f"{d.a}↔{d.b}", linewidth=1.2, gid=f"drift-{d.a}-{d.b}")
    tolerance = atol + rtol * np.abs(reference_curve)
    epochs, values = strided(tolerance)
    drift_axes.plot(epochs, values, color="#000", linestyle="--", linewidth=1, label="tolerance", gid="tolerance")
    drift_axes.set_yscale("log")
    labels(drift_axes, "epoch", "|Δ loss| (log)", "drift between frameworks")
    return finish(figure)


def aliasing_html(Figure, scenario, training):
    """Post 001's aliasing erratum, drawn: with finite differences trained first, the 'analytic' run that starts
    from the finite-difference run's end (the aliased weights) against the true analytic run."""
    if training.finite_differences is None or not any(e["id"] == "001-aliasing" for e in scenario.errata):
        return ""
    fd = training.finite_differences
    aliased = reference.train(scenario.with_parameters({k[len("trained."):]: v for k, v in fd.items()
                                                       if k.startswith("trained.layers")}), training.epochs)
    true = training.results.get("numpy") or reference.train(scenario, training.epochs)
    figure = Figure(figsize=(7, 3.6))
    axes = figure.subplots()
    for label, curve, style in (("finite differences (first run)", fd["train.loss"], ":"),
                                ("analytic, aliased start (the post's second run)", aliased["train.loss"], "-"),
                                ("analytic, true start", true["train.loss"], "--")):
        epochs, values = strided(curve)
        axes.plot(epochs, positive(values), linestyle=style, label=label, gid=f"aliasing-{label.split(',')[0]}")
    axes.set_yscale("log")
    labels(axes, "epoch", "mean loss (log)", "post 001's aliasing erratum: the second run starts where the first ended")
    finish(figure)
    text = next(e["text"] for e in scenario.errata if e["id"] == "001-aliasing")
    return f'<h3>Erratum 001-aliasing</h3><p class="note">{html.escape(text)}</p>' + figure_html(figure)


def kinks_figure(Figure, scenario, training):
    """The network's output over x before and after training (every framework's trained weights), the data,
    and every hidden unit's kink, before (dotted) and after (solid), each line's gid naming its position."""
    kinks = training.relu_kinks
    xs_data = scenario.inputs[:, 0].astype(np.float64)
    positions = [k.x for k in kinks.before + kinks.after]
    lo = min([float(xs_data.min())] + positions)
    hi = max([float(xs_data.max())] + positions)
    margin = 0.15 * (hi - lo or 1.0)
    grid = np.unique(np.concatenate([np.linspace(lo - margin, hi + margin, 400), positions]))
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()

    def output(sc):
        probe = replace(sc.with_dtype("float64"), inputs=grid.reshape(-1, 1),
                        targets=np.zeros((len(grid), sc.layers[-1].shape[0])))
        _, acts = reference.forward(reference.Model(probe), probe.inputs)
        return acts[-1][:, 0]

    axes.plot(grid, output(scenario), color="#999", linestyle="--", label="before training", gid="function-before")
    for k, (name, result) in enumerate(training.results.items()):
        trained = scenario.with_parameters({key[len("trained."):]: value for key, value in result.items()
                                            if key.startswith("trained.layers")})
        axes.plot(grid, output(trained), color=COLORS.get(name), linewidth=2.2 - 0.6 * k,
                  linestyle=["-", "--", ":"][k % 3], label=f"after training ({name})", gid=f"function-after-{name}")
    axes.scatter(xs_data, scenario.targets[:, 0], color="#000", s=14, zorder=5, label="data", gid="data")
    for when, found, style in (("before", kinks.before, ":"), ("after", kinks.after, "-")):
        for kink in found:
            axes.axvline(kink.x, color="#e08a00" if when == "after" else "#bbb", linestyle=style, linewidth=1,
                         gid=f"kink-{when}-layer{kink.layer}-unit{kink.unit}-x{kink.x!r}")
    labels(axes, "x", "network output", "the function and its kinks (dotted: before training; orange: after)")
    return finish(figure)


def kinks_table(kinks):
    rows = [[when, str(k.layer), str(k.unit), f'<td class="num">{k.x:.10g}</td>']
            for when, found in (("before", kinks.before), ("after", kinks.after)) for k in found]
    return table(["training", "layer", "unit", "x of the kink"], rows)


def epsilon_figure(Figure, scenario):
    """The relative error of 4 directional derivatives against ε (float64), the default ε marked."""
    exact = scenario.with_dtype("float64")
    params = {k: np.array(v) for k, v in exact.parameters().items()}
    _, grads = loss_and_gradients(exact)
    sweep = gradcheck.epsilon_sweep(loss_of(exact), grads, params)
    deltas, errors = zip(*sweep)
    figure = Figure(figsize=(6, 3.6))
    axes = figure.subplots()
    axes.plot(deltas, positive(errors), marker="o", gid="epsilon-sweep")
    default = gradcheck.default_delta("float64")
    axes.axvline(default, color="#e08a00", linestyle="--", gid=f"epsilon-default-{default!r}",
                 label=f"default ε = {default:g}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    labels(axes, "ε", "relative error (log)",
           "finite differences against the exact gradient: truncation ∝ ε², round-off ∝ 1/ε")
    return finish(figure)


def explain_section(explanation):
    rows = [[str(k + 1), html.escape(" → ".join(p.names)), f"row {p.row}",
             f'<td class="num">{p.product:.8g}</td>'] for k, p in enumerate(explanation.paths)]
    text = (table(["path", "units", "row", "product"], rows) if rows else
            '<p class="note">The δ recursion replaces the paths here (too many, or a softmax couples them): '
            "<code>backproof explain</code> prints it.</p>")
    return text + (f'<p>∂E/∂{html.escape(explanation.symbol)} = <span class="mono">{explanation.total:.10g}</span> '
                   f"(the sum of the products), drawn in blue on the diagram above.</p>")
