"""The report as one static HTML page: inline CSS, relative links, no scripts, opened straight from disk.

Table cells that record a failed or skipped run get the CSS class ``bad`` (shaded), so they stand out; the best
value of a column (marked ``**...**`` by the tables) is bold on a green shade. The long tables come after the
figures, collapsed.

The page never grows wider than the window: every table sits in its own box that scrolls sideways
(``div.scroll``), images shrink to the width of the page, and long words and paths in the notes break. Verdicts
of the claims are coloured by the classes ``v-holds``, ``v-contradicted``, ``v-inconclusive``,
``v-not-measured`` and ``v-reported`` (:func:`verdict_class`); the claims section itself is
:mod:`odebench.bench.report.claims_page`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import pandas as pd

from odebench.bench.report.format import unmark

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-bottom: 0.3em; } p.caption, figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td.label, th.label { text-align: left; }
td.bad { background: #fde2e1; color: #8a1c1c; } td.reason { text-align: left; white-space: normal; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
nav a { margin-right: 1em; } ul.notes li { margin: 0.3em 0; }
p.reading { color: #555; font-size: 0.85em; max-width: 60em; margin-top: -0.8em; }
td.best { background: #e3f4e1; } details summary { cursor: pointer; color: #335; margin: 0.3em 0; }
p.warn { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
div.scroll { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
div.scroll > table { margin: 0; }
img { max-width: 100%; height: auto; }
p, li, figcaption, summary { overflow-wrap: anywhere; }
th.text, td.text { text-align: left; white-space: normal; min-width: 8em; max-width: 26em; }
td.statement { min-width: 16em; } td.note { min-width: 24em; } table.summary th { text-align: left; }
.v-holds { background: #d8f0d2; color: #1d5b12; } .v-contradicted { background: #f9d3d0; color: #8a1c1c; }
.v-inconclusive { background: #fff0c2; color: #6b5200; } .v-not-measured { background: #e6e6e6; color: #444; }
.v-reported { background: #e3ebf7; color: #2b4a7a; } .v-na { color: #999; }
span.verdict, a.verdict { display: inline-block; padding: 0 0.35em; border-radius: 3px; margin: 1px 0;
                          text-decoration: none; white-space: nowrap; }
span.verdict.holm { font-size: 0.85em; }
table.summary td.cell { text-align: left; white-space: normal; min-width: 7em; }
table.summary td.cell > div + div { margin-top: 2px; }
p.legend span.verdict { margin-right: 0.6em; }
tr:target td { outline: 2px solid #335; }
"""

LABEL_COLUMNS = {"method", "solver", "budget", "status", "seed"}
#: columns whose text may name a status without being a failed cell (reasons, counts of earlier records)
NEUTRAL_COLUMNS = {"reason", "records by status", "what changed since"}
_BAD = re.compile(r"\b(failed|skipped)\b")


def verdict_class(verdict: str) -> str:
    """The CSS class that colours a verdict: ``v-holds``, ``v-not-measured``, ... (``v-na``: none)."""
    text = str(verdict).strip().lower()
    return "v-" + re.sub(r"[^a-z0-9]+", "-", text).strip("-") if text else "v-na"


def table_html(frame: pd.DataFrame, text_columns: Iterable[str] = (), verdict_columns: Iterable[str] = (),
               row_ids: list[str] | None = None, column_classes: dict[str, str] | None = None) -> str:
    """A DataFrame of strings as an HTML table in its own sideways-scrolling box (``div.scroll``); failed/skipped
    cells carry class ``bad``.

    ``text_columns`` hold prose (left-aligned, wrapping); ``verdict_columns`` hold a claim's verdict, coloured by
    :func:`verdict_class`; ``row_ids`` (one per row) are the rows' anchors; ``column_classes`` adds a class to
    every cell of a column.
    """
    text_columns, verdict_columns = set(text_columns), set(verdict_columns)
    column_classes = column_classes or {}
    left = LABEL_COLUMNS | verdict_columns | {c for c, k in column_classes.items() if k == "label"}
    th_class = {c: "text" if c in text_columns else "label" for c in frame.columns if c in text_columns | left}
    head = "".join((f'<th class="{th_class[c]}">' if c in th_class else "<th>") + f"{html.escape(str(c))}</th>"
                   for c in frame.columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for col, value in row.items():
            text, best = unmark("" if pd.isna(value) else str(value))
            classes = ["best"] if best else []
            if col in LABEL_COLUMNS:
                classes.append("label")
            if col == "reason":
                classes.append("reason")
            if col in text_columns:
                classes.append("text")
            if col in verdict_columns:
                classes += ["label", verdict_class(text)]
            if col in column_classes:
                classes.append(column_classes[col])
            if _BAD.search(text) and col not in NEUTRAL_COLUMNS and col not in verdict_columns:
                classes.append("bad")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            body = f"<strong>{html.escape(text)}</strong>" if best else html.escape(text)
            cells.append(f"<td{attr}>{body}</td>")
        row_id = f' id="{html.escape(row_ids[i])}"' if row_ids is not None else ""
        rows.append(f"<tr{row_id}>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows)
            + "\n</tbody>\n</table></div>")


def _table_block(t, collapsed: bool = False) -> list[str]:
    """A table's title, caption, the table (inside <details> when ``collapsed``) and its reading."""
    esc = html.escape
    table = table_html(t.frame)
    if collapsed:
        table = f"<details><summary>{len(t.frame)} row(s)</summary>\n{table}\n</details>"
    reading = [f'<p class="reading">How to read it: {esc(t.reading)}</p>'] if t.reading else []
    return [f"<h3>{esc(t.title)}</h3>", f'<p class="caption">{esc(t.caption)}</p>', table, *reading]


def _anchor(name: str) -> str:
    return "ds-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def to_html(report, with_figures: bool = True) -> str:
    """The page for a :class:`odebench.bench.report.build.Report`: every table, and (if asked) every figure with a
    link to its PDF, plus the notes on what could not be drawn."""
    esc = html.escape
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status_counts.items())) or "none"
    title = f"odebench leaderboard: {report.sweep}"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<h1>{esc(title)}</h1>",
           f"<p>Cells: {esc(counts)}. Tables: <a href=\"leaderboard.md\">markdown</a>, "
           f"<a href=\"leaderboard.csv\">CSV</a>, <a href=\"leaderboard.tex\">LaTeX</a>, "
           f"<a href=\"leaderboard.html\">HTML</a>.</p>"]
    if getattr(report, "earlier_note", None):
        out.append(f'<p class="warn">{esc(report.earlier_note)}</p>')
    claims = with_figures and getattr(report, "claims_html", "")
    if report.sections:
        out.append("<nav>" + ('<a href="#claims">claims</a>' if claims else "")
                   + "".join(f'<a href="#{_anchor(s.dataset)}">{esc(s.dataset)}</a>' for s in report.sections)
                   + "</nav>")
    if claims:
        out.append(report.claims_html)  # odebench.bench.report.claims_page: the verdicts on top, then the table
    for s in report.sections:
        out.append(f'<section id="{_anchor(s.dataset)}">')
        out.append(f"<h2>{esc(s.dataset)}</h2>")
        for t in s.first_tables:
            out += _table_block(t)
        if with_figures:
            for fig in s.figures:
                link = fig.pdf or fig.png
                pdf = f' (<a href="{esc(fig.pdf)}">PDF</a>)' if fig.pdf else ""
                out += ["<figure>", f'<h3>{esc(fig.title)}</h3>',
                        f'<a href="{esc(link)}"><img src="{esc(fig.png)}" alt="{esc(fig.title)}"></a>',
                        f"<figcaption>{esc(fig.caption)}{pdf}</figcaption>", "</figure>"]
        for t in s.long_tables:  # after the figures, collapsed: open them to read every configuration
            out += _table_block(t, collapsed=True)
        out.append("</section>")
    if getattr(report, "earlier", None) is not None:
        t = report.earlier
        out += [f'<section id="earlier"><h2>{esc(t.title)}</h2>', f'<p class="caption">{esc(t.caption)}</p>',
                f"<details><summary>{len(t.frame)} row(s)</summary>", table_html(t.frame), "</details>",
                "</section>"]
    if report.notes:
        notes = [f"<li>{esc(n)}</li>" for n in report.notes]
        out += ["<h2>Notes</h2>", '<ul class="notes">', *notes, "</ul>"]
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
