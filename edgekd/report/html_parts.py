"""The pieces every report.html section is made of; every value from a manifest is escaped here."""

from __future__ import annotations

from html import escape
from typing import Any

from edgekd.report.plots import Plot


def esc(value: Any) -> str:
    """A value as HTML text (quotes escaped too: safe inside attributes)."""
    return escape(str(value), quote=True)


def html_table(
    header: list[str], rows: list[list[Any]], *, numeric: set[int] | None = None, row_classes: list[str] | None = None
) -> str:
    """A table; cells are escaped text, or (text, css class) pairs; `numeric` columns align right."""
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        cells = []
        for column, value in enumerate(row):
            text, css = value if isinstance(value, tuple) else (value, "num" if column in numeric else "")
            cells.append(f'<td class="{css}">{esc(text)}</td>' if css else f"<td>{esc(text)}</td>")
        css_row = row_classes[index] if row_classes else ""
        opening = f'<tr class="{css_row}">' if css_row else "<tr>"
        body.append(opening + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(plot: Plot | None) -> str:
    if plot is None:
        return ""
    return (
        f'<figure id="plot-{esc(plot.key)}"><img src="{plot.data_uri()}" alt="{esc(plot.title)}">'
        f'<figcaption class="caption">{esc(plot.title)}: {esc(plot.caption)}</figcaption></figure>'
    )
