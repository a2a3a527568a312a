"""backproof report: one self-contained, deterministic HTML page per scenario, with the pictures."""

import functools
import importlib.util
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import backproof
from backproof.cli import main
from conftest import NUMPY_ONLY, require

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = backproof.builtin_names() + ["examples/sigmoid-2-3-2.json"]
# one worker imports matplotlib and renders the pages; the other runs the rest of the suite meanwhile
pytestmark = pytest.mark.xdist_group("report")


@functools.lru_cache(maxsize=None)
def page(name, frameworks=("numpy", "torch"), epochs=3, explain=None, finite_differences=False):
    """(html, ScenarioReport) of one scenario, a few epochs: what the report tests read."""
    pytest.importorskip("matplotlib")
    from backproof.report import build
    require("torch")
    return build(str(ROOT / name) if name.endswith(".json") else name, frameworks, epochs, finite_differences,
                 explain)


class Page(HTMLParser):
    """The sections, every fetch a page could make, and the tags left open."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "wbr"}

    def __init__(self):
        super().__init__()
        self.sections, self.fetches, self.open, self.texts = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag in ("script", "link", "img", "iframe", "object", "embed"):
            self.fetches.append(tag)
        for key in ("src", "href", "xlink:href", "data"):
            if key in attrs and not str(attrs[key]).startswith("#"):
                self.fetches.append(f"{tag} {key}={attrs[key]}")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.open.pop()

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()


def parse(text):
    parser = Page()
    parser.feed(text)
    parser.close()
    return parser


# make test builds the pages with the most sections (aliases and errata, training, kinks, a classifier); make
# test-all every page
QUICK = ("blog-2-3-3-1", "grokking-3-4-1", "deep-1-2-2-1", "spiral-2-16-3-adam", "conv-stride2-stem")


@pytest.mark.parametrize("name", [name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
                                  for name in SCENARIOS])
def test_every_page_parses_fetches_nothing_and_has_the_sections_that_apply(name):
    from backproof import relu_kinks
    text, result = page(name)
    parsed = parse(text)
    assert parsed.open == [] and parsed.fetches == []
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "") and "https://" not in text
    assert not re.search(r"url\((?!#)", text) and "@import" not in text      # url(#clip) is a local reference
    sc = result.scenario
    expected = ["verdict", "diagram", "agreement"] + (["expected"] if sc.expected else []) \
        + (["training"] if sc.train else []) + (["kinks"] if sc.train and relu_kinks.applies(sc) else []) \
        + (["sequence"] if sc.sequence else []) + ["epsilon"]
    assert parsed.sections == expected


def test_two_runs_give_the_same_bytes(tmp_path, capsys):
    require("jax")
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    for target in (first, second):
        assert main(["report", "deep-1-2-2-1", "--epochs", "20", "-o", str(target)]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert "wrote" in capsys.readouterr().out


def test_the_kinks_drawn_are_the_analytic_kinks():
    """deep-1-2-2-1: every kink line's position, read back from the SVG, is an analytic kink of the reference's
    weights before training and of its trained weights after (relu_kinks, as `train` computes them)."""
    from backproof.relu_kinks import analytic_kinks
    text, result = page("deep-1-2-2-1", epochs=40)
    drawn = {when: sorted(float(x) for x in re.findall(rf'id="kink-{when}-layer\d+-unit\d+-x([-0-9.e+]+)"', text))
             for when in ("before", "after")}
    sc = result.scenario
    trained = sc.with_parameters({k[len("trained."):]: v for k, v in result.training.results["numpy"].items()
                                  if k.startswith("trained.layers")})
    assert drawn["before"] == sorted(k.x for k in analytic_kinks(sc)) and drawn["before"]
    assert drawn["after"] == sorted(k.x for k in analytic_kinks(trained)) and drawn["after"]


def test_the_blog_diagram_shows_the_trace_and_the_posts_topology():
    """Post 002's figure, computed: x1, x2, n3…n9, every weight with its alias, and z, a, ∂L/∂z of every unit,
    read back out of the SVG text, equal to the trace (to the 6 digits printed)."""
    text, result = page("blog-2-3-3-1")
    svg = text[text.index('<section id="diagram">'):text.index("</section>", text.index('<section id="diagram">'))]
    for name in ["x1", "x2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"]:
        assert f">{name}</text>" in svg, name
    trace = result.traces["numpy"]
    values = re.findall(r'data-node="layers\.(\d+)\.(\d+)" data-value="(\w+)">[^=]+= ([-0-9.e+]+)</text>', svg)
    assert len(values) == 7 * 3
    for layer, unit, kind, shown in values:
        assert float(shown) == pytest.approx(trace[f"layers.{layer}.{kind}"][0, int(unit)], rel=5e-6, abs=1e-12)
    assert len(re.findall(r'data-parameter="layers\.\d\.weight\[\d,\d\]"', svg)) == 6 + 9 + 3
    assert ">w17 = 0.8 (erratum)</text>" in svg and ">w18 = 0.9 (erratum)</text>" in svg


def test_a_typed_network_is_drawn_as_blocks_with_its_shapes_and_values():
    """conv-stride2-stem: one box per layer with its caption and output shape, and the range of its output a read back
    equal to the trace (to the 4 digits printed)."""
    text, result = page("conv-stride2-stem")
    svg = text[text.index('<section id="diagram">'):text.index("</section>", text.index('<section id="diagram">'))]
    sc, trace = result.scenario, result.traces["numpy"]
    for i, shape in enumerate(sc.layer_shapes()):
        assert f'data-layer="layers.{i}"' in svg and "×".join(map(str, (2,) + shape)) in svg
        low, mean, high = (float(v) for v in re.search(
            rf'data-node="layers\.{i}">a: min ([-0-9.e+]+) · mean ([-0-9.e+]+) · max ([-0-9.e+]+)', svg).groups())
        a = trace[f"layers.{i}.a"]
        assert (low, mean, high) == pytest.approx((a.min(), a.mean(), a.max()), rel=5e-4, abs=1e-12)
    assert "conv2d 4@7×7, stride (2, 2), padding 3 · relu" in svg and "max_pool2d 3×3, stride (2, 2), padding" in svg
    assert "<circle" not in svg                 # no unit-level hairball


def test_explain_draws_the_paths_on_the_diagram():
    text, _ = page("blog-2-3-3-1", explain="w1")
    blue = set(re.findall(r'stroke="#1f5fbf"[^>]*data-parameter="([^"]+)"', text))
    assert blue == {"layers.0.weight[0,0]", "layers.1.weight[0,0]", "layers.1.weight[1,0]", "layers.1.weight[2,0]",
                    "layers.2.weight[0,0]", "layers.2.weight[0,1]", "layers.2.weight[0,2]"}
    assert 'id="explain"' in text and "n3 → n6 → n9" in text


def test_grokking_draws_post_001s_aliasing_erratum():
    text, _ = page("grokking-3-4-1", epochs=20, finite_differences=True)
    assert "Erratum 001-aliasing" in text and 'id="aliasing-analytic' in text and 'id="loss-numpy+fd"' in text


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    require("torch")
    bad = ROOT / "tests" / "bad_scenarios" / "shape-chain.json"
    assert main(["report", str(bad), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layers[1].weight has 2 columns" in err
    assert main(["report", "blog-2-3-3-1", "-o", str(tmp_path / "missing" / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["report", "blog-2-3-3-1", "-o", str(locked / "x.html")])
        err = capsys.readouterr().err
        if code != 0:           # root may write anywhere; everyone else is refused
            assert code == 2 and "cannot be written" in err
    finally:
        locked.chmod(0o700)
    assert main(["train", "grokking-3-4-1", "--epochs", "2", "--plot", str(tmp_path / "x.pdf")]) == 2
    assert "--plot writes .svg or .png" in capsys.readouterr().err
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written in ([], ["locked/x.html"]), written            # nothing half-written, no temporary left


def test_train_plot_writes_the_figure_alone(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    for suffix in ("svg", "png"):
        target = tmp_path / f"curves.{suffix}"
        assert main(["train", "grokking-3-4-1", "--epochs", "5", "--frameworks", "numpy,torch",
                     "--plot", str(target)]) == 0
        assert target.stat().st_size > 1000
    assert "<svg" in (tmp_path / "curves.svg").read_text()
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()


def test_without_matplotlib_report_says_how_to_get_it(tmp_path, capsys):
    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed here; `make test-numpy-only` runs this where it is missing for real")
    assert main(["report", "blog-2-3-3-1", "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err == ("error: report needs matplotlib, which is not installed: "
                   "pip install 'backproof[report]' -c constraints.txt\n")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow       # a real browser takes seconds to start: make test-all (CI) runs it
def test_the_page_renders_in_a_real_browser(tmp_path):
    """Headless Chromium, no network: the page renders to a screenshot that is not blank."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium: apt-get update && apt-get install -y chromium")
    text, _ = page("blog-2-3-3-1", explain="w1")
    html_path, png = tmp_path / "blog.html", tmp_path / "blog.png"
    html_path.write_text(text, encoding="utf-8")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    f"--screenshot={png}", "--window-size=1400,3000", html_path.as_uri()],
                   capture_output=True, timeout=120, check=False)
    pytest.importorskip("PIL")
    from PIL import Image
    image = np.asarray(Image.open(png).convert("L"))
    assert image.shape == (3000, 1400) and image.std() > 10


def test_sequence_networks_show_attention_per_head_and_recurrent_layers_unrolled():
    """The report's "Through the steps": one heat map per head of each attention layer (T × T cells, rows summing to 1,
    the causal triangle empty), and each recurrent layer one box per step; a long sequence is named, not drawn."""
    from dataclasses import replace

    from backproof.report import MAX_UNROLLED_STEPS, sequence_section
    transformer = backproof.load("transformer-prenorm-2-heads")
    text = sequence_section(transformer)
    steps = transformer.inputs.shape[1]
    assert text.count("<rect") == 2 * steps * steps and "head 1: query t" in text
    weights = [float(w) for w in re.findall(r"with weight ([0-9.e-]+)</title>", text)]
    rows = np.array(weights).reshape(2, steps, steps)
    np.testing.assert_allclose(rows.sum(axis=-1), 1.0, atol=1e-3)                # the titles' 4 digits
    assert np.all(rows[:, np.triu_indices(steps, 1)[0], np.triu_indices(steps, 1)[1]] == 0)
    recurrent = backproof.load("lstm-gru-count-bits")
    text = sequence_section(recurrent)
    assert text.count("lstm t=") == text.count("gru t=") == recurrent.inputs.shape[1]
    assert "Recurrent: h_t" in text and "Attention:" not in text
    long = replace(recurrent, inputs=np.repeat(recurrent.inputs, 3, axis=1))
    assert f"runs {3 * recurrent.inputs.shape[1]} steps: it is drawn unrolled up to {MAX_UNROLLED_STEPS}" in \
        sequence_section(long)
