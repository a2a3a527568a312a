"""Generate docs/ from docs/templates/, the live code and docs/measurements.json.

    make docs          # python -m tools.docs docs

Every page under docs/ is written by this command; tests/test_docs.py regenerates them into a
temporary folder and fails when a committed one differs (a stale page, or a hand edit). A
template is Markdown with directives, each on a line of its own:

    <!-- run: ARGS -->            a fenced block: `$ backproof ARGS` and what it prints
    <!-- run-head N: ARGS -->     the same, the first N lines of it
    <!-- table: NAME -->          a table generated from the code or the measurements (TABLES below)

Nothing here reads the clock or the machine, so the output is the same byte for byte on
every run and on every machine: a difference at the rounding level (which depends on the CPU, the
BLAS and the thread count) is printed as "≤ atol" (backproof.render.portable_figures); the measured figures come from docs/measurements.json, which `make calibrate`
and `make bench` write.
"""

import contextlib
import html
import io
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "docs" / "templates"
MEASUREMENTS = ROOT / "docs" / "measurements.json"
DIRECTIVE = re.compile(r"^<!-- (run|run-head (\d+)|table): (.+?) -->$")
SIDE_BY_SIDE_SCENARIO = "blog-2-3-3-1"


def run(args):
    """What `backproof ARGS` prints on stdout (in this process, so no timing enters it)."""
    import shlex
    from backproof.cli import main
    from backproof.render import portable_figures
    out = io.StringIO()
    # portable_figures: a rounding-level |Δ| is shown as "≤ atol", the same on every CPU, BLAS and thread count
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), portable_figures():
        main(shlex.split(args))
    return [line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")]


def measurements():
    return json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}


def g(x):
    return f"{x:.2g}"


# --- tables ------------------------------------------------------------------------------------------

def table_conventions():
    from backproof.conventions import table
    return table()


def table_tolerances():
    from backproof.compare import TOLERANCES
    measured = measurements().get("calibrate", {})
    rows = ["| dtype | kind | atol | rtol | measured by `make calibrate` |", "|---|---|---|---|---|"]
    for dtype, kinds in TOLERANCES.items():
        for kind, (atol, rtol) in kinds.items():
            rows.append(f"| {dtype} | {kind} | {atol:g} | {rtol:g} | {measured_figure(measured, kind, dtype)} |")
    return rows


def measured_figure(measured, kind, dtype):
    if kind == "step" and dtype in measured.get("step", {}):
        m = measured["step"][dtype]
        return f"max \\|Δ\\| {g(m['max_abs'])} ({m['where']}), max rel {g(m['max_rel'])}"
    if kind == "train" and dtype in measured.get("train", {}):
        m = measured["train"][dtype]
        return (f"loss \\|Δ\\| {g(m['loss_max_abs'])}, final parameters \\|Δ\\| {g(m['final_parameters_max_abs'])} "
                f"({m['where']})")
    if kind == "finite_difference" and dtype in measured.get("finite_difference", {}):
        m = measured["finite_difference"][dtype]
        return (f"ε {m['delta']:g}: per coordinate \\|Δ\\| {g(m['per_coordinate_max_abs'])}; along 8 directions "
                f"rel {g(m['directions_max_rel'])} (784-256-256-10 MLP: {g(m['mlp_directions_max_rel'])})")
    return "not measured yet: run `make calibrate`"


def table_noise_floor():
    """The training drifts beyond tolerance that the rounding noise floor explains, as make calibrate measured."""
    from backproof.training import NOISE_FACTOR
    train = measurements().get("calibrate", {}).get("train", {})
    rows = ["| dtype | run | final max \\|Δ\\| | noise floor max \\|Δ\\| | drift / floor (explained ≤ "
            f"{NOISE_FACTOR}) |", "|---|---|---|---|---|"]
    for dtype, figures in train.items():
        for item in figures.get("explained_by_noise", []):
            rows.append(f"| {dtype} | {item['where']} | {g(item['final_max_abs'])} | "
                        f"{g(item['noise_floor_max_abs'])} | {item['ratio']:.2g} |")
    return rows if len(rows) > 2 else ["none: every training drift is within tolerance (run `make calibrate`)"]


def table_mutations():
    from tools.mutations import table
    return table()


def table_bench():
    bench = measurements().get("bench")
    if not bench:
        return ["not measured yet: run `make bench`"]
    c, d, t, f = (bench[k] for k in ("check_concurrency", "directional_check_passes", "reference_training_overhead",
                                     "per_coordinate_fd"))
    status = lambda m: "met" if m["ratio"] <= m["goal"] else "**not met**"  # noqa: E731
    return [
        "| goal | measured | ratio | goal | |", "|---|---|---|---|---|",
        f"| `backproof check`, every built-in, frameworks in concurrent processes, against the slowest framework "
        f"alone | {c['concurrent_s']:.1f} s against {c['slowest']} alone {c['alone_s'][c['slowest']]:.1f} s ("
        + ", ".join(f"{fw} {s:.1f} s" for fw, s in c["alone_s"].items())
        + f") | {c['ratio']:.2f}× | ≤ {c['goal']}× | {status(c)} |",
        f"| the 8-direction check of the 784-256-256-10 MLP (batch 128, float64), in forward+backward passes "
        f"| {d['check_s'] * 1e3:.1f} ms, one pass {d['forward_backward_s'] * 1e3:.1f} ms | {d['ratio']:.1f} "
        f"| ≤ {d['goal']:g} | {status(d)} |",
        f"| the reference's training loop against a minimal NumPy loop, XOR, 10,000 epochs "
        f"| {t['reference_s']:.2f} s against {t['minimal_s']:.2f} s | {t['ratio']:.2f}× | ≤ {t['goal']}× "
        f"| {status(t)} |",
        *([f"| `make test`, the suite's fast tier: the time pytest reports, median of "
           f"{', '.join(f'{s:.1f}' for s in bench['test_seconds']['runs_s'])} s after a warm-up run "
           f"| {bench['test_seconds']['ratio']:.1f} s | | ≤ {bench['test_seconds']['goal']:g} s "
           f"| {status(bench['test_seconds'])} |"] if "test_seconds" in bench else
          ["| `make test`, the suite's fast tier | not measured yet: run `make bench` | | ≤ 30 s | |"]),
        *([f"| the reference's conv forward+backward on a LeNet-sized batch (32×1×28×28) against torch's eager "
           f"one | {bench['conv_reference_ratio']['reference_s'] * 1e3:.1f} ms against "
           f"{bench['conv_reference_ratio']['torch_s'] * 1e3:.1f} ms | {bench['conv_reference_ratio']['ratio']:.2f}× "
           f"| ≤ {bench['conv_reference_ratio']['goal']:g}× | {status(bench['conv_reference_ratio'])} |"]
          if "conv_reference_ratio" in bench else
          ["| the reference's conv forward+backward against torch's, LeNet-sized | not measured yet: run "
           "`make bench` | | ≤ 3× | |"]),
        "",
        f"Per-coordinate finite differences on the same MLP cost {f['ms_per_coordinate']:.2f} ms a coordinate, "
        f"{f['all_coordinates_s']:,.0f} s for all 269,322: that is why `verify` samples above 10,000 parameters "
        "and checks random directions."
        + (f" `backproof check cnn-1x8x8-strokes` (a step and 40 epochs in all three) took {bench['check_cnn_s']:.1f} s."
           if "check_cnn_s" in bench else ""),
    ]


def table_epsilon_sweep():
    """The relative error of 4 directional derivatives against ε, float64: the V (from `make calibrate`)."""
    sweeps = measurements().get("calibrate", {}).get("epsilon_sweep")
    if not sweeps:
        return ["not measured yet: run `make calibrate`"]
    deltas = [d for d, _ in next(iter(sweeps.values()))]
    rows = ["| ε | " + " | ".join(f"{d:.0e}" for d in deltas) + " |", "|---|" + "---|" * len(deltas)]
    for label, sweep in sweeps.items():
        best = min(sweep, key=lambda point: point[1])[0]
        rows.append(f"| {label} | " + " | ".join(f"**{g(e)}**" if d == best else g(e) for d, e in sweep) + " |")
    return rows


def table_skeleton():
    from backproof.read import SKELETON, STAGE_NOTES, stage_blocks
    blocks = stage_blocks()
    root = ROOT
    rows = ["| stage | what | numpy | torch | jax |", "|---|---|---|---|---|"]
    for stage in SKELETON:
        cells = [f"[`{b.where(root)}`](../{b.where(root).replace(':', '#L')})" for b in blocks[stage].values()]
        rows.append(f"| `{stage}` | {STAGE_NOTES[stage]} | " + " | ".join(cells) + " |")
    return rows


def table_scenarios():
    from backproof.names import network_shape
    from backproof.scenario_file import builtin_names, load
    rows = ["| name | network | loss | optimizer | description |", "|---|---|---|---|---|"]
    for name in builtin_names():
        sc = load(name)
        shape = network_shape(sc)
        activations = ", ".join(s.activation for s in sc.layers)
        rows.append(f"| `{name}` | {shape} ({activations}) | `{sc.loss}` | `{sc.optimizer.name}` | {sc.description} |")
    return rows


def table_kink_band():
    band = measurements().get("calibrate", {}).get("kink_band")
    if not band:
        return ["not measured yet: run `make calibrate`"]
    rows = ["| dtype | elements 0 in exact arithmetic | on two sides of 0 across the frameworks | largest \\|z\\| "
            "(ε·Σ\\|terms\\|) | the band (ε·Σ\\|terms\\|) |", "|---|---|---|---|---|"]
    for dtype, m in band.items():
        rows.append(f"| {dtype} | {m['elements']:,} | {m['two_sided']:,} | {m['max_z_in_eps_units']:.2g} | "
                    f"{m['band_in_eps_units']} |")
    return rows + ["", f"Frameworks: {', '.join(next(iter(band.values()))['frameworks'])}; measured by "
                       "`make calibrate` (`tools/calibrate.py --kink-band`)."]


def table_layer_types():
    """The layer types and their hyperparameters, from reference.registry: what a scenario's layer may say."""
    from reference.registry import LAYER_TYPES, OPTION_TEXT
    axes = {0: "(n, features)", 1: "(n, C, L)", 2: "(n, C, H, W)", -1: "any"}
    rows = ["| `layers[i].type` | torch | JAX mirror | input | parameters | hyperparameters (torch's defaults) | what |",
            "|---|---|---|---|---|---|---|"]
    for layer in LAYER_TYPES.values():
        options = ", ".join(f"`{key}`" + ("" if default is None else f" = {json_text(default)}")
                            for key, default in layer.options.items()) or "none"
        buffers = "".join(f"; buffer `{key}`" for key in layer.buffers)
        rows.append(f"| `{layer.name}` | `{layer.torch}` | {layer.jax} | {axes[layer.spatial]} | "
                    f"{', '.join(layer.parameters) or 'none'}{buffers} | {options} | {layer.text} |")
    rows += ["", "| field | layer types | meaning |", "|---|---|---|"]
    for key, text in OPTION_TEXT.items():
        types = ", ".join(f"`{name}`" for name, layer in LAYER_TYPES.items()
                          if key in layer.options or key in layer.buffers or key in layer.states
                          or layer.named and key in layer.parameters)
        rows.append(f"| `layers[i].{key}` | {types} | {text} |")
    return rows


def table_activations():
    from reference.activations import ACTIVATIONS
    rows = ["| `layers[i].activation` | f(z) |", "|---|---|"]
    for name, (fn, _) in ACTIVATIONS.items():
        first = fn.__doc__.strip().split("\n\n")[0]            # the docstring's first paragraph, on one line
        rows.append(f"| `{name}` | {' '.join(first.split())} |")
    return rows


def table_optimizers():
    """One row per hyperparameter: which optimizers take it, each one's default (torch's), what it means."""
    from reference.registry import OPTIMIZER_TEXT, OPTIMIZER_TYPES
    rows = ["| `optimizer.name` | torch | hyperparameters beyond lr (torch's defaults) |", "|---|---|---|"]
    for name, kind in OPTIMIZER_TYPES.items():
        rows.append(f"| `{name}` | `{kind.torch}` | "
                    + ", ".join(f"`{key}` = {json_text(value)}" for key, value in kind.defaults().items()) + " |")
    rows += ["", "| field | optimizers | meaning |", "|---|---|---|"]
    for key, text in OPTIMIZER_TEXT.items():
        if key == "lr":
            continue
        names = ", ".join(f"`{name}`" for name, kind in OPTIMIZER_TYPES.items() if key in kind.defaults())
        rows.append(f"| `optimizer.{key}` | {names} | {text} |")
    return rows


SCHEMA = ROOT / "backproof" / "envelope.schema.json"


def schema_text():
    """backproof/envelope.schema.json with its enums derived from the registries (the optimizer names): `make docs`
    writes it, tests/test_envelope.py checks that the file is what this returns."""
    import json

    from reference.registry import OPTIMIZER_TYPES
    lines = []
    for line in SCHEMA.read_text(encoding="utf-8").split("\n"):
        if line.lstrip().startswith('"optimizer_name": '):
            line = f'    "optimizer_name": {{"enum": {json.dumps(list(OPTIMIZER_TYPES))}}},'
        lines.append(line)
    return "\n".join(lines)


def json_text(value):
    import json
    return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"


TABLES = {"activations": table_activations, "optimizers": table_optimizers, "layer-types": table_layer_types, "kink-band": table_kink_band, "conventions": table_conventions, "tolerances": table_tolerances, "mutations": table_mutations,
          "noise-floor": table_noise_floor,
          "bench": table_bench, "epsilon-sweep": table_epsilon_sweep, "skeleton": table_skeleton,
          "scenarios": table_scenarios}


def render(template):
    out = [f"<!-- generated by `make docs` from docs/templates/{template.name}: edit that file, not this one -->"]
    for line in template.read_text(encoding="utf-8").split("\n"):
        match = DIRECTIVE.match(line)
        if not match:
            out.append(line)
        elif match.group(1) == "table":
            out += TABLES[match.group(3)]()
        else:
            lines = run(match.group(3))
            if match.group(2):
                lines = lines[:int(match.group(2))] + ["…"]
            out += ["```text", f"$ backproof {match.group(3)}", *lines, "```"]
    return "\n".join(out).rstrip("\n") + "\n"


# --- the side-by-side page ---------------------------------------------------------------------------------

def side_by_side():
    """(HTML, Markdown) of every stage: three code columns, the reference's docstring, file:line, the numbers."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    from backproof.frameworks import run_each
    from backproof.read import SKELETON, STAGE_NOTES, docstring, stage_blocks, stage_tensors
    from backproof.render import stage_numbers
    from backproof.scenario_file import load

    scenario = load(SIDE_BY_SIDE_SCENARIO)
    runs = run_each(lambda name, module: module.run_step(scenario), ("numpy", "torch", "jax"))
    blocks = stage_blocks()
    formatter = HtmlFormatter(noclasses=True, nowrap=True, style="friendly")
    css = ("body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;color:#222;background:#fff}"
           "h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}"
           ".row{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:12px}"
           ".col{border:1px solid #ddd;border-radius:6px;background:#f8f8f8;overflow-x:auto}"
           ".col h3{margin:0;padding:6px 10px;font-size:0.95em;background:#eee;border-bottom:1px solid #ddd}"
           "pre{margin:0;padding:8px 10px;font-size:12px;line-height:1.35;white-space:pre-wrap;overflow-wrap:anywhere}"
           ".where{font-family:monospace;font-size:0.8em;color:#666;padding:4px 10px;border-top:1px solid #ddd}"
           ".caption{color:#444;font-style:italic;margin:0.3em 0 0.8em}"
           ".numbers{margin-top:8px;background:#fffbe6;border:1px solid #eee1a8;border-radius:6px}"
           ".numbers pre{font-size:12px}")
    page = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            "<title>backproof: the three implementations side by side</title>", f"<style>{css}</style></head><body>",
            "<!-- generated by `make docs` (tools/docs.py) from the live source: do not edit -->",
            "<h1>NumPy (hand-derived) · PyTorch · JAX, stage by stage</h1>",
            f"<p>Each row is one stage, cut from the source by <code>backproof read</code>; under it, the stage's "
            f"numbers for <code>{SIDE_BY_SIDE_SCENARIO}</code> (post 002's worked example) in every framework.</p>"]
    md = ["<!-- generated by `make docs` (tools/docs.py) from the live source: do not edit -->",
          "# The three implementations side by side", "",
          f"Each stage as `backproof read` cuts it from the source, numpy, then torch, then JAX, with its numbers "
          f"for `{SIDE_BY_SIDE_SCENARIO}` (post 002's worked example). The same page with three columns: "
          "[side-by-side.html](side-by-side.html).", ""]
    for stage in SKELETON:
        caption = docstring(blocks[stage]["numpy"]) or STAGE_NOTES[stage]
        numbers = stage_numbers(stage, scenario, runs, stage_tensors(scenario, stage))
        page += [f'<h2 id="{stage}">{html.escape(stage)}</h2>', f'<p class="caption">{html.escape(caption)}</p>',
                 '<div class="row">']
        md += [f"## `{stage}`", "", f"*{caption}*", ""]
        for framework, block in blocks[stage].items():
            where = block.where(ROOT)
            code = highlight("\n".join(block.lines), PythonLexer(), formatter)
            page += [f'<div class="col"><h3>{framework}</h3><pre>{code}</pre>',
                     f'<div class="where">{html.escape(where)}</div></div>']
            md += [f"{framework} — [`{where}`](../{where.replace(':', '#L')})", "", "```python", *block.lines, "```", ""]
        page += ["</div>", '<div class="numbers"><pre>' + html.escape("\n".join(numbers)) + "</pre></div>"]
        md += ["```text", *numbers, "```", ""]
    page += ["</body></html>"]
    return "\n".join(page) + "\n", "\n".join(md).rstrip("\n") + "\n"


def generate(folder):
    """Write every generated page into ``folder``; returns the names written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for template in sorted(TEMPLATES.glob("*.md")):
        (folder / template.name).write_text(render(template), encoding="utf-8")
        written.append(template.name)
    page, markdown = side_by_side()
    (folder / "side-by-side.html").write_text(page, encoding="utf-8")
    (folder / "side-by-side.md").write_text(markdown, encoding="utf-8")
    return written + ["side-by-side.html", "side-by-side.md"]


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "docs"
    for name in generate(target):
        print(f"wrote {target}/{name}")
    if target == "docs" and SCHEMA.read_text(encoding="utf-8") != schema_text():
        SCHEMA.write_text(schema_text(), encoding="utf-8")
        print("wrote backproof/envelope.schema.json (its enums, from the registries)")
