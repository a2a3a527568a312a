"""Docs that stay true: every generated page is what `make docs` writes now, every page is linked, and the
README's excerpt is what the command prints."""

import importlib.util
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from backproof.cli import main
from backproof.scenario_file import KNOWN
from conftest import NUMPY_ONLY

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHROMIUM_HINT = "apt-get update && apt-get install -y chromium"


@pytest.fixture(scope="session")      # once per worker: xdist may run the mutation tests between these two
def generated(tmp_path_factory):
    """Every page regenerated into a temporary folder, as `make docs` would write it."""
    if NUMPY_ONLY:
        pytest.skip("the pages show every framework's numbers: regenerated only where torch and JAX are installed")
    if importlib.util.find_spec("pygments") is None:
        pytest.skip("Pygments highlights the side-by-side page: pip install 'backproof[docs]'")
    from tools.docs import generate
    folder = tmp_path_factory.mktemp("docs")
    return folder, generate(folder)


@pytest.mark.slow       # every page made again, the mutation table over every built-in: make test-all (CI)
@pytest.mark.xdist_group("mutations")       # on the worker that runs tests/test_mutations.py: one mutation run
def test_every_generated_page_is_fresh(generated):
    folder, names = generated
    stale = [name for name in names if not (DOCS / name).exists()
             or (DOCS / name).read_bytes() != (folder / name).read_bytes()]
    assert not stale, f"stale or missing under docs/: {stale}; run `make docs` and commit the result"
    hand_written = sorted(p.name for p in DOCS.glob("*.*") if p.name not in names and p.name != "measurements.json")
    assert hand_written == [], f"pages under docs/ that `make docs` does not write: {hand_written}"


@pytest.mark.slow
@pytest.mark.xdist_group("mutations")
def test_a_hand_edit_is_caught(generated):
    """The same comparison fails when one character of a committed page differs."""
    folder, _ = generated
    fresh = (folder / "evidence.md").read_bytes()
    committed = (DOCS / "evidence.md").read_bytes()
    assert committed == fresh
    edited = committed.decode("utf-8").replace("Tolerances", "Tolerance", 1)
    assert edited.encode() != fresh


def links(text):
    """Markdown link targets outside fenced code blocks (code such as ``f[k](x)`` is no link)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose)


def test_every_page_is_linked_from_the_readme_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = set(links(readme))
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")} | {"docs/side-by-side.html"}
    assert pages <= targets, f"not linked from the README: {sorted(pages - targets)}"
    assert len(readme.encode()) < 8 * 1024
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in links(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            assert (page.parent / target).resolve().exists(), f"{page.name} links to a missing {target}"


@pytest.mark.skipif(NUMPY_ONLY, reason="the README's excerpt shows all three frameworks")
def test_the_readme_excerpt_is_what_check_prints(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("$ backproof check blog-2-3-3-1\n", 1)[1].split("```", 1)[0]
    main(["check", "blog-2-3-3-1"])
    # How far two correct frameworks differ at the rounding level (0 on one CPU, 4.4e-16 on another) is the machine's,
    # so every |Δ| figure of the agreement table and the verdict is compared as a number within the step tolerance;
    # every other character exactly.
    delta = re.compile(r"(?<=\s)(0|\d\.\de-\d\d|\d\.\de-\d)(?=\s|\)|$)")
    out = capsys.readouterr().out.splitlines()
    mask = lambda line: " ".join(delta.sub("Δ", line).split())          # noqa: E731 (columns shift with the figure)
    masked = [mask(printed) for printed in out]
    for line in block.splitlines():
        if line.strip() and line.strip() != "...":
            assert mask(line) in masked, f"the README shows a line check does not print: {line!r}"
    table = out[:next(k for k, line in enumerate(out) if "printed by the source" in line)]
    for printed in [line.split(")", 1)[-1] for line in table if line.startswith("   ") and ")" in line] + \
            [line for line in out if "largest |Δ|" in line]:
        for figure in delta.findall(printed):
            assert float(figure) <= 1e-12, printed


def test_the_scenario_format_documents_every_field():
    """The generated page: the layer types' hyperparameters are a table derived from reference.registry."""
    text = (DOCS / "scenario-format.md").read_text(encoding="utf-8")
    prefixes = {"scenario": "", "layer": "layers[i].", "optimizer": "optimizer.", "loss": "loss.", "train": "train.",
                "errata": "errata[i].", "expected": "expected[key]."}
    for block, fields in KNOWN.items():
        for field in fields:
            assert f"`{prefixes[block]}{field}`" in text or f"`{field}`" in text and block == "scenario", \
                f"docs/scenario-format.md does not document {prefixes[block]}{field}"


class Page(HTMLParser):
    """Collects what a self-contained page must not have and counts the code columns."""

    def __init__(self):
        super().__init__()
        self.fetches, self.columns, self.stages = [], 0, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key, "") and not attrs[key].startswith("#"):
                self.fetches.append(f"{tag} {key}={attrs[key]}")
        if tag in ("script", "iframe", "link"):
            self.fetches.append(tag)
        if tag == "div" and attrs.get("class") == "col":
            self.columns += 1
        if tag == "h2":
            self.stages += 1


def test_the_side_by_side_page_is_self_contained_with_three_columns_per_stage():
    from backproof.read import SKELETON
    text = (DOCS / "side-by-side.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    assert page.fetches == [] and "http://" not in text and "https://" not in text and "@import" not in text
    assert page.stages == len(SKELETON) and page.columns == 3 * len(SKELETON)
    assert "[[0.803482]]" in text           # post 002's out_n9 beside the forward stage


@pytest.mark.slow       # a real browser takes seconds to start: make test-all (CI) runs it
def test_the_side_by_side_page_renders_in_a_real_browser(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(f"needs Debian's chromium to take a screenshot: {CHROMIUM_HINT}")
    shot = tmp_path / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1400,3000", (DOCS / "side-by-side.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000      # a real page, not a blank one
