"""The report as one static HTML page: inline CSS, relative links, no scripts, opened straight from disk.

Table cells that record a failed or skipped run get the CSS class ``bad`` (shaded), so they stand out; the best
value of a column (marked ``**...**`` by the tables) is bold on a green shade. The long tables come after the
figures, collapsed.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from odebench.bench.report.figure_files import is_headline
from odebench.bench.report.format import unmark

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-bottom: 0.3em; } p.caption, figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td.label { text-align: left; }
td.bad { background: #fde2e1; color: #8a1c1c; } td.reason { text-align: left; white-space: normal; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
nav a { margin-right: 1em; } ul.notes li { margin: 0.3em 0; }
p.reading { color: #555; font-size: 0.85em; max-width: 60em; margin-top: -0.8em; }
td.best { background: #e3f4e1; } details summary { cursor: pointer; color: #335; margin: 0.3em 0; }
p.warn { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
"""

LABEL_COLUMNS = {"method", "solver", "budget", "status", "seed"}
#: columns whose text may name a status without being a failed cell (reasons, counts of earlier records)
NEUTRAL_COLUMNS = {"reason", "records by status", "what changed since"}
_BAD = re.compile(r"\b(failed|skipped)\b")


def table_html(frame: pd.DataFrame) -> str:
    """A DataFrame of strings as an HTML table; failed/skipped cells carry class ``bad``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for col, value in row.items():
            text, best = unmark("" if pd.isna(value) else str(value))
            classes = ["best"] if best else []
            if col in LABEL_COLUMNS:
                classes.append("label")
            if col == "reason":
                classes.append("reason")
            if _BAD.search(text) and col not in NEUTRAL_COLUMNS:
                classes.append("bad")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            body = f"<strong>{html.escape(text)}</strong>" if best else html.escape(text)
            cells.append(f"<td{attr}>{body}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _table_block(t, collapsed: bool = False) -> list[str]:
    """A table's title, caption, the table (inside <details> when ``collapsed``) and its reading."""
    esc = html.escape
    table = table_html(t.frame)
    if collapsed:
        table = f"<details><summary>{len(t.frame)} row(s)</summary>\n{table}\n</details>"
    reading = [f'<p class="reading">How to read it: {esc(t.reading)}</p>'] if t.reading else []
    return [f"<h3>{esc(t.title)}</h3>", f'<p class="caption">{esc(t.caption)}</p>', table, *reading]


def _figure_block(fig) -> list[str]:
    """A figure: title, the PNG linked to its PDF (or itself), and its caption (which lists its outliers)."""
    esc = html.escape
    link = fig.pdf or fig.png
    pdf = f' (<a href="{esc(fig.pdf)}">PDF</a>)' if fig.pdf else ""
    return ["<figure>", f'<h3>{esc(fig.title)}</h3>',
            f'<a href="{esc(link)}"><img src="{esc(fig.png)}" alt="{esc(fig.title)}"></a>',
            f"<figcaption>{esc(fig.caption)}{pdf}</figcaption>", "</figure>"]


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
    if report.sections:
        out.append("<nav>" + "".join(f'<a href="#{_anchor(s.dataset)}">{esc(s.dataset)}</a>'
                                     for s in report.sections) + "</nav>")
    if with_figures and getattr(report, "claims_html", ""):
        out.append(report.claims_html)  # odebench.bench.report.claims.to_html_section
    for s in report.sections:
        out.append(f'<section id="{_anchor(s.dataset)}">')
        out.append(f"<h2>{esc(s.dataset)}</h2>")
        figures = s.figures if with_figures else []
        heads = [f for f in figures if is_headline(f)]  # the headline figure opens the section
        out += [line for f in heads for line in _figure_block(f)]
        for t in s.first_tables:
            out += _table_block(t)
        out += [line for f in figures if not is_headline(f) for line in _figure_block(f)]
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
