"""The pieces every page of the HTML report is built of: escaped text and static
tables. In: text and rows of cells already escaped. Out: HTML fragments."""

from __future__ import annotations

import html
from collections.abc import Sequence


def escape(text: object) -> str:
    """Text (from a trace, a judge or a user) as HTML text, quotes included."""
    return html.escape(str(text), quote=True)


def table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A static table in a scrolling wrapper; cells are already escaped HTML."""
    th = "".join(f"<th>{h}</th>" for h in head)
    thead = f"<thead><tr>{th}</tr></thead>" if any(head) else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="wrap"><table class="{cls}">{thead}<tbody>{body}</tbody></table></div>'


__all__ = ["escape", "table"]
