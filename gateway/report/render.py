"""Rendering a :class:`~gateway.report.model.Report`: table (rich), JSON, CSV, HTML.

* ``json``: ``{"report", "title", "generated_at", "database", "filters", "figures",
  "sections": {name: [row, ...]}}``; numbers stay numbers, nested evidence stays nested.
* ``csv``: a report with one table (endpoints, sessions, policies, noncompliant) is a plain
  CSV: a header row, then the rows (its headline figures are sums of the rows and left out).
  A report with several tables (summary, endpoint) is a series of blocks: each starts with a
  header row whose first cell is ``section``, and each of its rows starts with the section
  name; the headline figures come first as ``section,name,value`` / ``figures,...``.
  Text cells starting with ``= + - @`` get a leading ``'`` so a spreadsheet does not run them
  as formulas (the identity and reason strings come from endpoints).
* ``html``: one self-contained file (inline CSS, charts as inline SVG, no script, no external
  asset) an auditor can open offline or archive.
* ``table``: rich tables for a terminal.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from gateway.report.model import Chart, Report, Section

__all__ = ["FORMATS", "render", "render_csv", "render_html", "render_json", "render_table"]

FORMATS = ("table", "json", "csv", "html")


def render(report: Report, fmt: str, out: IO[str]) -> None:
    """Write ``report`` to ``out``; streamed sections are consumed as they are written."""
    if fmt == "json":
        render_json(report, out)
    elif fmt == "csv":
        render_csv(report, out)
    elif fmt == "html":
        render_html(report, out)
    elif fmt == "table":
        render_table(report, out)
    else:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _label(name: str) -> str:
    return name.replace("_", " ")


# --------------------------------------------------------------------------- JSON / CSV


def render_json(report: Report, out: IO[str]) -> None:
    head = {"report": report.name, "title": report.title, **report.meta, "figures": report.figures}
    text = json.dumps(head, indent=2, default=str)
    out.write(text[:-2] + ',\n  "sections": {')
    for i, section in enumerate(report.sections):
        out.write(("," if i else "") + f"\n    {json.dumps(section.name)}: [")
        for j, row in enumerate(section.rows):
            out.write(("," if j else "") + "\n      " + json.dumps(row, default=str))
        out.write("\n    ]")
    out.write("\n  }\n}\n")


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _safe(value: Any) -> str:
    # a spreadsheet runs text starting with = + - @ as a formula (CSV injection); an identity
    # or a reason string comes from the endpoint, so such text is quoted
    text = _cell(value)
    if isinstance(value, str) and text[:1] in _FORMULA:
        return "'" + text
    return text


def render_csv(report: Report, out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    if len(report.sections) == 1:
        section = report.sections[0]
        writer.writerow(section.columns)
        for row in section.rows:
            writer.writerow([_safe(row.get(c)) for c in section.columns])
        return
    if report.figures:
        writer.writerow(["section", "name", "value"])
        for key, value in report.figures.items():
            writer.writerow(["figures", key, _safe(value)])
    for section in report.sections:
        writer.writerow(["section", *section.columns])
        for row in section.rows:
            writer.writerow([section.name, *(_safe(row.get(c)) for c in section.columns)])


# --------------------------------------------------------------------------- table

#: Sections longer than this are written as plain aligned text, line by line (rich lays out
#: a whole table in memory, which takes minutes for 100,000 sessions).
RICH_ROWS = 500


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render_table(report: Report, out: IO[str]) -> None:
    isatty = getattr(out, "isatty", lambda: False)()
    console = Console(
        file=out,
        width=None if isatty else 200,
        highlight=False,
        soft_wrap=False,
        no_color=not isatty,
    )
    console.print(f"[bold]{report.title}[/bold]")
    if report.meta.get("filters"):
        shown = {k: v for k, v in report.meta["filters"].items() if v}
        if shown:
            console.print(", ".join(f"{k} {v}" for k, v in shown.items()))
    if report.figures:
        figures = Table(show_header=False, box=None, pad_edge=False)
        figures.add_column("name", style="bold")
        figures.add_column("value", overflow="fold")
        for key, value in report.figures.items():
            suffix = "%" if value is not None and key.endswith("rate") else ""
            figures.add_row(_label(key), _cell(value) + suffix)
        console.print(figures)
    for section in report.sections:
        console.print()
        rows = iter(section.rows)
        first = list(itertools.islice(rows, RICH_ROWS + 1))
        if not first:
            console.print(f"[bold]{section.title}[/bold]: {section.empty}")
            continue
        if len(first) > RICH_ROWS:
            console.file.flush()
            _plain_table(section, first, rows, out)
            continue
        table = Table(title=section.title, title_justify="left")
        for column in section.columns:
            numeric = all(_numeric(r.get(column)) for r in first if r.get(column) is not None)
            table.add_column(
                _label(column), justify="right" if numeric else "left", overflow="fold"
            )
        for row in first:
            table.add_row(*(_cell(row.get(c)) for c in section.columns))
        console.print(table)


def _plain_table(
    section: Section, first: list[dict[str, Any]], rest: Iterator[dict[str, Any]], out: IO[str]
) -> None:
    """Aligned text; column widths from the first rows (longer cells are not cut)."""
    widths = [max(len(_label(c)), *(len(_cell(r.get(c))) for r in first)) for c in section.columns]
    right = [
        all(_numeric(r.get(c)) for r in first if r.get(c) is not None) for c in section.columns
    ]

    def line(cells: Sequence[str]) -> str:
        return (
            "  ".join(
                cell.rjust(w) if r else cell.ljust(w)
                for cell, w, r in zip(cells, widths, right, strict=True)
            ).rstrip()
            + "\n"
        )

    out.write(section.title + "\n")
    out.write(line([_label(c) for c in section.columns]))
    out.write(line(["-" * w for w in widths]))
    count = 0
    for row in itertools.chain(first, rest):
        out.write(line([_cell(row.get(c)) for c in section.columns]))
        count += 1
    out.write(f"({count} rows)\n")


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em;color:#212121}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em}
.meta{color:#616161;font-size:.9em}
.figures{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.figure{border:1px solid #e0e0e0;border-radius:6px;padding:.6em 1em;min-width:9em}
.figure .v{font-size:1.4em;font-weight:600}.figure .k{color:#616161;font-size:.85em}
table{border-collapse:collapse;font-size:.88em;margin:.5em 0}
th,td{border:1px solid #e0e0e0;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#757575;font-style:italic}svg{display:block;margin:.5em 0}
.legend span{display:inline-block;margin-right:1em;font-size:.85em}
.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em}
"""


def _esc(value: Any) -> str:
    return html.escape(_cell(value), quote=True)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _legend(chart: Chart) -> str:
    items = "".join(
        f'<span><i style="background:{c}"></i>{_esc(_label(k))}</span>' for k, c in chart.series
    )
    return f'<div class="legend">{items}</div>'


def svg_bars(rows: Sequence[dict[str, Any]], chart: Chart, width: int = 720) -> str:
    """Horizontal stacked bars, one per row, with the total at the end."""
    bar_h, gap, label_w, right = 18, 6, 220, 70
    rows = list(rows)[:60]
    height = max(1, len(rows)) * (bar_h + gap) + gap
    top = max((sum(_num(r.get(k)) for k, _ in chart.series) for r in rows), default=0.0)
    scale = (width - label_w - right) / top if top > 0 else 0.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{_esc(chart.title or chart.label)}">'
    ]
    for i, row in enumerate(rows):
        y = gap + i * (bar_h + gap)
        label = _cell(row.get(chart.label))
        short = label if len(label) <= 32 else label[:31] + "\u2026"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 5}" text-anchor="end" '
            f'font-size="12">{html.escape(short)}</text>'
        )
        x = float(label_w)
        total = 0.0
        for key, colour in chart.series:
            value = _num(row.get(key))
            total += value
            if value <= 0:
                continue
            w = value * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                f'fill="{colour}"><title>{html.escape(label)}: '
                f"{html.escape(_label(key))} {_cell(row.get(key))}</title></rect>"
            )
            x += w
        parts.append(
            f'<text x="{x + 5:.1f}" y="{y + bar_h - 5}" font-size="12">'
            f"{_cell(int(total) if total.is_integer() else total)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_columns(rows: Sequence[dict[str, Any]], chart: Chart, height: int = 220) -> str:
    """Stacked columns, one per row (e.g. per day), with an axis of the largest total."""
    rows = list(rows)[-120:]
    col_w = max(4, min(36, 700 // max(1, len(rows))))
    left, bottom, top_pad = 50, 40, 12
    width = left + len(rows) * (col_w + 2) + 64  # room for the last label
    top = max((sum(_num(r.get(k)) for k, _ in chart.series) for r in rows), default=0.0)
    plot_h = height - bottom - top_pad
    scale = plot_h / top if top > 0 else 0.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{_esc(chart.title or chart.label)}">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 5}" '
        f'y2="{top_pad + plot_h}" stroke="#9e9e9e"/>',
        f'<text x="{left - 4}" y="{top_pad + 10}" text-anchor="end" font-size="11">'
        f"{_cell(int(top))}</text>",
        f'<text x="{left - 4}" y="{top_pad + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    step = max(1, -(-62 // (col_w + 2)), len(rows) // 8)  # labels ~60 px wide never overlap
    for i, row in enumerate(rows):
        x = left + 2 + i * (col_w + 2)
        y = float(top_pad + plot_h)
        label = _cell(row.get(chart.label))
        for key, colour in chart.series:
            value = _num(row.get(key))
            if value <= 0:
                continue
            h = value * scale
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{col_w}" height="{h:.1f}" '
                f'fill="{colour}"><title>{html.escape(label)}: '
                f"{html.escape(_label(key))} {_cell(row.get(key))}</title></rect>"
            )
        if i % step == 0:
            parts.append(
                f'<text x="{x}" y="{top_pad + plot_h + 14}" font-size="10">'
                f"{html.escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(section: Section, out: IO[str]) -> None:
    rows = iter(section.rows)
    first = next(rows, None)
    if first is None:
        out.write(f'<p class="empty">{html.escape(section.empty)}</p>\n')
        return
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in section.columns)
    out.write(f"<table><thead><tr>{head}</tr></thead><tbody>\n")
    for row in itertools.chain((first,), rows):
        cells = []
        for c in section.columns:
            value = row.get(c)
            cells.append(
                f'<td class="n">{_esc(value)}</td>'
                if _numeric(value)
                else f"<td>{_esc(value)}</td>"
            )
        out.write("<tr>" + "".join(cells) + "</tr>\n")
    out.write("</tbody></table>\n")


def render_html(report: Report, out: IO[str]) -> None:
    meta = []
    for key in ("generated_at", "database"):
        if report.meta.get(key):
            meta.append(f"{html.escape(_label(key))}: {_esc(report.meta[key])}")
    for key, value in (report.meta.get("filters") or {}).items():
        if value:
            meta.append(f"{html.escape(key)}: {_esc(value)}")
    figures = "".join(
        f'<div class="figure"><div class="v">{_esc(v)}'
        f"{'%' if v is not None and k.endswith('rate') else ''}</div>"
        f'<div class="k">{html.escape(_label(k))}</div></div>'
        for k, v in report.figures.items()
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(report.title)} - nea-report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
        f'<p class="meta">{" &middot; ".join(meta)}</p>',
    ]
    if figures:
        parts.append(f'<div class="figures">{figures}</div>')
    if report.figures.get("compliance_rate") is not None:
        rate = _num(report.figures["compliance_rate"])
        parts.append(
            svg_bars(
                [
                    {
                        "label": "devices",
                        "compliant": report.figures.get("compliant_devices", 0),
                        "noncompliant": report.figures.get("noncompliant_devices", 0),
                    }
                ],
                Chart(
                    "bars",
                    "label",
                    (("compliant", "#2e7d32"), ("noncompliant", "#c62828")),
                    title=f"compliance {rate:g}%",
                ),
            )
        )
    states = [
        {"state": k[len("state_") :], "count": v}
        for k, v in report.figures.items()
        if k.startswith("state_") and isinstance(v, int)
    ]
    if states:
        parts.append(
            svg_bars(states, Chart("bars", "state", (("count", "#1565c0"),), title="by state"))
        )
    for section in report.sections:
        parts.append(f'<h2 id="{html.escape(section.name)}">{html.escape(section.title)}</h2>')
        rows = section.rows
        if section.chart is not None:
            rows = list(rows)
            if rows:
                draw = svg_columns if section.chart.kind == "columns" else svg_bars
                parts.append(draw(rows, section.chart))
                parts.append(_legend(section.chart))
        out.write("\n".join(parts) + "\n")
        parts = []
        _html_table(replace(section, rows=rows), out)
    out.write('<p class="meta">nea-report (nea-gateway evidence database)</p>\n')
    out.write("</body></html>\n")
