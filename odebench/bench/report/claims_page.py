"""The claims section of index.html: the verdicts at a glance on top, then the table of every check.

The summary has one row per checked claim (claim number and part, as in the table) and one column per dataset;
each cell shows the verdict of every comparison of that claim on that dataset (several where a claim compares
several configurations of a method, or one per tolerance), coloured by its class
(:func:`odebench.bench.report.html.verdict_class`: holds green, contradicted red, inconclusive amber,
not measured grey; ``reported`` is claim 11's ranking, a measurement without a verdict), and links to its row of
the table below. A dataset the claim does not apply to reads a dash. Where the rows carry a ``holm_verdict``
(the verdict after Holm's correction within the claim's family: every judged row of one claim number), it
stands beside the rule's verdict.

The table below puts the verdict second, after the claim, and lets the statement and the notes wrap; like every
table of the page it scrolls sideways in its own box instead of widening the page.
"""

from __future__ import annotations

import html

import pandas as pd

from odebench.bench.report import claims_table as ct
from odebench.bench.report.html import table_html, verdict_class

HOLM = "holm_verdict"
#: the columns of the shown table that hold prose: left-aligned, wrapping
TEXT_COLUMNS = ("statement", "a", "b", "quantity", "compute", "note")
#: what each ``where`` of a check asks of a dataset, for the line naming the checks no dataset here admits
WHERE = {"transfer": "a dataset with a non-Gaussian source", "gaussian": "a dataset with a Gaussian source",
         "image": "an image dataset"}


def row_id(i: int) -> str:
    """The anchor of row ``i`` of the claims table."""
    return f"claim-row-{i}"


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def shown_order(shown: pd.DataFrame) -> pd.DataFrame:
    """The shown table with the claim first and its verdict(s) next (``verdict`` and any other ``*verdict*``
    column), the other columns in their order."""
    first = ["claim"] if "claim" in shown.columns else []
    verdicts = [c for c in shown.columns if "verdict" in str(c).lower() and c not in first]
    verdicts.sort(key=lambda c: c != "verdict")
    return shown[first + verdicts + [c for c in shown.columns if c not in first and c not in verdicts]]


def _common_words(texts: list[str]) -> int:
    """How many leading words all ``texts`` share, less one (the last shared word stays: 'tol 0.001')."""
    words = [t.split(" ") for t in texts]
    n = 0
    while all(len(w) > n + 1 for w in words) and len({w[n] for w in words}) == 1:
        n += 1
    return max(n - 1, 0)


def qualifiers(rows: pd.DataFrame) -> list[str]:
    """What tells apart several comparisons of one claim on one dataset: the first of the sides and the quantity
    that differs between them, then any other that tells them apart further, each less the words they all begin
    with ('' for a single comparison)."""
    if len(rows) < 2:
        return [""] * len(rows)
    parts: list[list[str]] = []
    told: list[tuple] = [()] * len(rows)
    for column in ("a", "b", "quantity"):
        if column not in rows.columns:
            continue
        texts = [_text(v) for v in rows[column]]
        finer = [(*t, x) for t, x in zip(told, texts, strict=True)]
        if len(set(finer)) > len(set(told)):  # tells apart rows the columns before did not
            cut = _common_words(texts)
            parts.append([" ".join(t.split(" ")[cut:]) for t in texts])
            told = finer
    return [", ".join(p[i] for p in parts) for i in range(len(rows))]


def summary_grid(rows: pd.DataFrame, labels: list[str]) -> tuple[list[str], list[tuple[str, str, dict]]]:
    """(datasets, one (label, statement, {dataset: row positions}) per claim label), both in order of first
    appearance; ``labels`` names each row's claim ("6 b NFE 1")."""
    datasets = list(dict.fromkeys(_text(d) for d in rows["dataset"]))
    claims: dict[str, tuple[str, dict]] = {}
    for i, (label, dataset) in enumerate(zip(labels, rows["dataset"], strict=True)):
        statement, cells = claims.setdefault(label, (_text(rows["statement"].iloc[i]), {}))
        cells.setdefault(_text(dataset), []).append(i)
    return datasets, [(label, statement, cells) for label, (statement, cells) in claims.items()]


def _chip(verdict: str, href: str | None = None, extra: str = "", prefix: str = "") -> str:
    cls = f"verdict {verdict_class(verdict)}{' ' + extra if extra else ''}"
    body = html.escape(prefix + verdict)
    if href:
        return f'<a class="{cls}" href="#{href}">{body}</a>'
    return f'<span class="{cls}">{body}</span>'


def _cell(rows: pd.DataFrame, positions: list[int]) -> str:
    if not positions:
        return '<td class="cell v-na" title="the claim does not apply to this dataset">–</td>'
    sub = rows.iloc[positions]
    verdicts = [_text(v) for v in sub["verdict"]]
    holm = [_text(v) for v in sub[HOLM]] if HOLM in sub.columns else [""] * len(sub)
    lines = []
    for pos, verdict, adjusted, qualifier in zip(positions, verdicts, holm, qualifiers(sub), strict=True):
        line = (f'<span class="qual">{html.escape(qualifier)}:</span> ' if qualifier else "") + _chip(verdict,
                                                                                                      row_id(pos))
        if adjusted:
            line += " " + _chip(adjusted, extra="holm", prefix="Holm: ")
        lines.append(f"<div>{line}</div>")
    kind = verdict_class(verdicts[0]) if len(set(verdicts)) == 1 else "mixed"
    return f'<td class="cell {kind}">{"".join(lines)}</td>'


def summary_html(rows: pd.DataFrame, labels: list[str]) -> str:
    """The summary table: claims x datasets, each cell the coloured verdict(s) of that claim there."""
    datasets, grid = summary_grid(rows, labels)
    head = "<th>claim</th><th class=\"text\">statement</th>" + "".join(f"<th>{html.escape(d)}</th>"
                                                                       for d in datasets)
    body = []
    for label, statement, cells in grid:
        body.append(f'<tr><td class="label">{html.escape(label)}</td>'
                    f'<td class="text statement">{html.escape(statement)}</td>'
                    + "".join(_cell(rows, cells.get(d, [])) for d in datasets) + "</tr>")
    return ('<div class="scroll"><table class="summary">\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table></div>")


def _has_holm(rows: pd.DataFrame) -> bool:
    """Whether any row carries a Holm-adjusted verdict (the column may exist with every value empty)."""
    return HOLM in rows.columns and any(_text(v) for v in rows[HOLM])


def _legend(holm: bool) -> str:
    chips = " ".join(_chip(v) for v in ("holds", "contradicted", "inconclusive", "not measured", "reported"))
    extra = (f" {_chip('holds', extra='holm', prefix='Holm: ')} the verdict after Holm's correction within the "
             f"claim's family, every judged row of one claim number (claims.csv, {HOLM})." if holm else "")
    return (f'<p class="legend caption">{chips} (reported: a ranking, measured without a verdict); – the claim '
            f"does not apply to the dataset.{extra}</p>")


def _unchecked(labels: list[str]) -> str:
    """The line naming the checks of claims_table that no dataset of the sweep admits ('' if none)."""
    seen = set(labels)
    missing = [c for c in ct.CHECKS if f"{c.claim}{c.part and ' ' + c.part}" not in seen]
    if not missing:
        return ""
    named = "; ".join(f"{c.claim}{c.part and ' ' + c.part}" + (f" (needs {WHERE[c.where]})" if c.where in WHERE else "")
                      for c in missing)
    return (f'<p class="caption">Not checked on this sweep (none of its datasets is one they apply to): '
            f"{html.escape(named)}.</p>")


def claims_section(rows: pd.DataFrame, shown: pd.DataFrame, rule: str) -> str:
    """The ``<section id="claims">`` of index.html from the claims' rows (claims.csv's columns; a
    ``holm_verdict`` column is shown where present) and the table as shown (one row per row of ``rows``,
    odebench.bench.report.claims.display_frame), with the verdict rule ``rule`` as its caption."""
    labels = [_text(c) for c in shown["claim"]] if len(shown) else []
    counts = rows["verdict"].value_counts().to_dict() if len(rows) else {}
    tally = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    table = table_html(shown_order(shown), text_columns=TEXT_COLUMNS,
                       verdict_columns=[c for c in shown.columns if "verdict" in str(c).lower()],
                       row_ids=[row_id(i) for i in range(len(shown))],
                       column_classes={"statement": "statement", "note": "note", "claim": "label",
                                       "dataset": "label"})
    out = ['<section id="claims">', "<h2>Claims</h2>"]
    if len(rows):
        out += ["<h3>Verdicts at a glance</h3>",
                f'<p class="caption">Verdicts: {html.escape(tally)}. One row per checked claim, one column per '
                f"dataset; a cell with several comparisons (several configurations of a method, or one per "
                f"tolerance) shows each. A verdict links to its row of the table below.</p>",
                _legend(_has_holm(rows)), summary_html(rows, labels), _unchecked(labels)]
    out += ["<h3>Every check</h3>",
            f'<p class="caption">{html.escape(rule)} Full precision: <a href="claims.csv">claims.csv</a>, '
            f'<a href="claims.md">claims.md</a>.</p>',
            f"<details open><summary>{len(shown)} row(s)</summary>", table, "</details>", "</section>"]
    return "\n".join(x for x in out if x)
