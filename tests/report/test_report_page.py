"""index.html reads on a laptop screen: the verdicts at a glance on top, the claims table with its verdict second
and its statement wrapping, every table in its own sideways-scrolling box, and (in a real headless browser, where
one is installed) nothing wider than a 1,280 px window and every image loaded."""

from __future__ import annotations

import importlib.util
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from odebench.bench.report.claims import CSV_COLUMNS, Claims, to_html_section
from odebench.bench.report.html import CSS

ROOT = Path(__file__).resolve().parents[2]
STUDY_TOY = ROOT / "results" / "study-toy"
TINY = ROOT / "tests" / "fixtures" / "claims-tiny"
WIDTH = 1280


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_page_layout", ROOT / "scripts" / "check_page_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


# --------------------------------------------------------------------------------------------- parsing
class Tables(HTMLParser):
    """Every table of a page: its class, the classes of the elements it sits in, header texts, and rows of
    (td class, text, hrefs of its links, classes of its links)."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self.stack: list[tuple[str, str]] = []  # (tag, class) of the open elements
        self.current: list[dict] = []
        self.cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.current.append({"class": a.get("class", ""), "outer": [c for t, c in self.stack if t == "div"],
                                 "head": [], "rows": [], "row_ids": []})
        elif tag == "tr" and self.current:
            self.current[-1]["rows"].append([])
            self.current[-1]["row_ids"].append(a.get("id"))
        elif tag in ("td", "th") and self.current:
            self.cell = {"tag": tag, "class": a.get("class", ""), "text": "", "hrefs": [], "links": []}
        elif tag in ("a", "span") and self.cell is not None:
            if "href" in a:
                self.cell["hrefs"].append(a["href"])
            self.cell["links"].append(a.get("class", ""))
        if tag not in ("img", "br", "meta", "link", "base", "hr", "input"):
            self.stack.append((tag, a.get("class", "")))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.current:
            t = self.current[-1]
            if self.cell["tag"] == "th":
                t["head"].append(self.cell["text"].strip())
            else:
                t["rows"][-1].append(self.cell)
            self.cell = None
        elif tag == "table" and self.current:
            t = self.current.pop()
            t["row_ids"] = [i for i, r in zip(t["row_ids"], t["rows"], strict=True) if r]
            t["rows"] = [r for r in t["rows"] if r]  # the header's row holds no td
            self.tables.append(t)
        if tag in {t for t, _ in self.stack}:
            while self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


def tables_of(page: str) -> list[dict]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


# --------------------------------------------------------------------------------------------- claims rows
DATASETS = ["moons", "spirals", "digits"]
OT = "OT path needs fewer evaluations"


def _row(claim, part, dataset, verdict, statement="s", a="rf(k=2)", quantity="w2", **extra) -> dict:
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(claim=claim, part=part, dataset=dataset, verdict=verdict, statement=statement, a=a, b="rf",
               quantity=quantity, n=3, note="a long note " * 12, **extra)
    return row


def made_up_claims(holm: bool = False) -> Claims:
    """Three claims on up to three datasets: every verdict, a dataset a claim does not apply to, and a cell with
    two comparisons (one per tolerance)."""
    rows = [
        _row(1, "a", "moons", "holds", "Rectification does not increase the transport cost"),
        _row(1, "a", "spirals", "contradicted", "Rectification does not increase the transport cost"),
        _row(1, "a", "digits", "inconclusive", "Rectification does not increase the transport cost"),
        _row(7, "a", "moons", "holds", OT, quantity="NFE used at dopri5 tol 0.001"),
        _row(7, "a", "moons", "inconclusive", OT, quantity="NFE used at dopri5 tol 1e-05"),
        _row(7, "a", "spirals", "not measured", OT, quantity="NFE used at dopri5 tol 0.001"),
        _row(11, "NFE 4", "moons", "reported", "The ranking at NFE 4"),
    ]
    if holm:
        for r, adjusted in zip(rows, ["inconclusive", "contradicted", "inconclusive", "holds", "inconclusive",
                                      "not measured", ""], strict=True):
            r["holm_verdict"] = adjusted
    return Claims("made-up", rows)


def _summary(page: str) -> dict:
    found = [t for t in tables_of(page) if "summary" in t["class"].split()]
    assert len(found) == 1, "one summary table of the verdicts"
    return found[0]


def _full(page: str) -> dict:
    found = [t for t in tables_of(page) if t["head"][:1] == ["claim"] and "summary" not in t["class"].split()]
    assert len(found) == 1
    return found[0]


def test_summary_has_a_row_per_claim_and_a_column_per_dataset():
    page = to_html_section(made_up_claims())
    summary = _summary(page)
    assert summary["head"] == ["claim", "statement", *DATASETS]
    assert [r[0]["text"] for r in summary["rows"]] == ["1 a", "7 a", "11 NFE 4"]
    assert all(len(r) == 2 + len(DATASETS) for r in summary["rows"])
    # the checks with no row are named, with the datasets they need
    assert "5 rf (needs a dataset with a non-Gaussian source)" in page and "9 ddpm (needs an image dataset)" in page
    # it comes before the full table
    assert page.index('class="summary"') < page.index("Every check")


def test_summary_cells_are_coloured_by_verdict_and_link_to_their_rows():
    page = to_html_section(made_up_claims())
    cells = {r[0]["text"]: dict(zip(DATASETS, r[2:], strict=True)) for r in _summary(page)["rows"]}
    assert "v-holds" in cells["1 a"]["moons"]["class"].split()
    assert "v-contradicted" in cells["1 a"]["spirals"]["class"].split()
    assert "v-inconclusive" in cells["1 a"]["digits"]["class"].split()
    assert "v-not-measured" in cells["7 a"]["spirals"]["class"].split()
    assert "v-reported" in cells["11 NFE 4"]["moons"]["class"].split()
    assert "v-na" in cells["7 a"]["digits"]["class"].split()  # 7 a has no row on digits: it does not apply
    assert cells["7 a"]["digits"]["text"].strip() == "–"
    # two comparisons in one cell (one per tolerance): both shown, told apart, the cell marked mixed
    mixed = cells["7 a"]["moons"]
    assert "mixed" in mixed["class"].split()
    assert "tol 0.001" in mixed["text"] and "tol 1e-05" in mixed["text"] and "dopri5" not in mixed["text"]
    assert [c for c in mixed["links"] if "verdict" in c] == ["verdict v-holds", "verdict v-inconclusive"]
    # each verdict links to its row of the full table
    full = _full(page)
    for row in cells.values():
        for cell in row.values():
            for href in cell["hrefs"]:
                assert href.lstrip("#") in full["row_ids"]
    assert cells["1 a"]["spirals"]["hrefs"] == ["#claim-row-1"]
    # every verdict class has its own colour in the page's style
    for cls in ("v-holds", "v-contradicted", "v-inconclusive", "v-not-measured", "v-reported"):
        assert re.search(rf"\.{cls} {{ background: #[0-9a-f]{{6}}", CSS), cls
    assert ' holm"' not in page  # no Holm-adjusted verdict in the rows: no chip claims an adjustment


def test_summary_shows_the_holm_verdict_beside_the_rule_where_the_rows_carry_one():
    page = to_html_section(made_up_claims(holm=True))
    cells = {r[0]["text"]: dict(zip(DATASETS, r[2:], strict=True)) for r in _summary(page)["rows"]}
    cell = cells["1 a"]["moons"]
    assert cell["links"] == ["verdict v-holds", "verdict v-inconclusive holm"]
    assert "holds" in cell["text"] and "Holm: inconclusive" in cell["text"]
    assert "Holm:" not in cells["11 NFE 4"]["moons"]["text"]  # no adjusted verdict for a ranking


def test_claims_table_puts_the_verdict_second_and_lets_the_statement_wrap():
    page = to_html_section(made_up_claims())
    full = _full(page)
    assert full["head"][:4] == ["claim", "verdict", "dataset", "statement"]
    first = full["rows"][0]
    assert first[1]["text"] == "holds" and "v-holds" in first[1]["class"].split()
    assert "text" in first[3]["class"].split()  # statement: left-aligned, wrapping
    assert "label" in first[0]["class"].split() and "label" in first[2]["class"].split()  # claim, dataset: left
    assert "text" in first[full["head"].index("note")]["class"].split()
    assert re.search(r"td\.text \{[^}]*text-align: left;[^}]*white-space: normal", CSS)
    # the holm column, where present, stands right after the rule's verdict
    rows = pd.DataFrame({"claim": ["1"], "dataset": ["moons"], "verdict": ["holds"], "holm_verdict": ["holds"]})
    from odebench.bench.report.claims_page import shown_order

    assert list(shown_order(rows).columns) == ["claim", "verdict", "holm_verdict", "dataset"]


def test_every_table_scrolls_in_its_own_box_and_images_shrink(tiny_page):
    page = tiny_page
    tables = tables_of(page.read_text())
    assert len(tables) > 5
    for t in tables:
        assert t["outer"] and t["outer"][-1] == "scroll", t["head"][:3]
    assert re.search(r"div\.scroll \{[^}]*overflow-x: auto", CSS)
    assert re.search(r"(^|\n)img \{[^}]*max-width: 100%", CSS)
    assert "Verdicts at a glance" in page.read_text()


# --------------------------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def tiny_page(tmp_path_factory) -> Path:
    """index.html freshly built from a copy of the committed tiny sweep (tests/fixtures/claims-tiny), its figures
    drawn."""
    from odebench.bench.report.build import write_report

    copy = tmp_path_factory.mktemp("page") / "claims-tiny"
    shutil.copytree(TINY, copy)
    write_report(copy)
    return copy / "index.html"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium that renders a page on this machine (skip where there is none)."""
    path = checker.find_browser()
    if path is None:
        pytest.skip(f"no headless browser on the PATH (looked for {', '.join(checker.BROWSERS)}); "
                    f"apt-get install chromium to run the layout check")
    return path


def _check(browser: str, page: Path) -> None:
    try:
        measured = checker.measure(page, WIDTH, browser=browser)
    except checker.NoBrowser as exc:
        pytest.skip(f"the browser cannot render pages here: {exc}")
    assert measured["client_width"] <= WIDTH
    assert measured["images"] > 0
    assert checker.problems(measured, WIDTH) == []
    assert measured["scroll_width"] <= WIDTH


def test_a_fresh_page_fits_a_1280_px_window_in_a_browser(browser, tiny_page):
    _check(browser, tiny_page)


COMMITTED_PAGES = sorted((ROOT / "results").glob("*/index.html"))


@pytest.mark.parametrize("page", COMMITTED_PAGES, ids=lambda p: p.parent.name)
def test_every_committed_page_fits_a_1280_px_window_in_a_browser(browser, page):
    _check(browser, page)


def test_the_study_toy_page_is_committed():
    assert (STUDY_TOY / "index.html").is_file() and STUDY_TOY / "index.html" in COMMITTED_PAGES


@pytest.mark.parametrize("page", COMMITTED_PAGES, ids=lambda p: p.parent.name)
def test_every_dataset_section_of_a_committed_page_opens_with_its_headline_figure(page):
    """Each dataset's section (an h2 after the claims) shows its headline figure before any table or other
    figure, and the figure file is committed beside the page."""
    import html as html_text

    html = page.read_text()
    datasets = set(pd.read_csv(page.parent / "leaderboard.csv")["dataset"])
    heads = list(re.finditer(r"<h2[^>]*>(.*?)</h2>", html))
    assert {html_text.unescape(h.group(1)) for h in heads} >= datasets, page
    for i, head in enumerate(heads):
        if html_text.unescape(head.group(1)) not in datasets:  # the claims, the notes
            continue
        section = html[head.end():heads[i + 1].start() if i + 1 < len(heads) else len(html)]
        first = re.search(r'<img src="([^"]+)"', section)
        assert first and Path(first.group(1)).name.startswith("headline_"), (page, head.group(1))
        assert section.index(first.group(0)) < section.find("<table") or "<table" not in section
        assert (page.parent / first.group(1)).is_file()


def test_the_browser_check_sees_a_page_wider_than_the_window(browser, tmp_path):
    """The check itself can fail: a table outside any scroll box, and a missing image, are both named."""
    page = tmp_path / "index.html"
    cells = "".join(f"<td>{'x' * 40}</td>" for _ in range(60))
    page.write_text(f"<!DOCTYPE html><html><body><table><tr>{cells}</tr></table><img src=missing.png alt=gone>"
                    f'<div style="overflow-x: auto"><table><tr>{cells}</tr></table></div></body></html>')
    try:
        measured = checker.measure(page, WIDTH, browser=browser)
    except checker.NoBrowser as exc:
        pytest.skip(f"the browser cannot render pages here: {exc}")
    found = checker.problems(measured, WIDTH)
    assert measured["scroll_width"] > WIDTH
    assert len([p for p in found if p.startswith("wider than the window: table")]) == 1  # not the scrolled one
    assert "image not loaded: missing.png" in found
