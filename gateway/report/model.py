"""What a report is before it is rendered: headline figures and tables (sections)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chart", "Report", "Section"]


@dataclass(frozen=True)
class Chart:
    """How the HTML report draws a section.

    ``kind`` is ``bars`` (one horizontal bar per row, the ``series`` stacked) or ``columns``
    (one column per row, e.g. per day). ``series`` are (column, colour) pairs."""

    kind: str
    label: str
    series: tuple[tuple[str, str], ...]
    title: str = ""


@dataclass
class Section:
    name: str
    """Machine name: the key in JSON, the first CSV column."""
    title: str
    columns: list[str]
    rows: Iterable[dict[str, Any]]
    """A list, or (for reports that can be long: sessions) a one-shot iterator that streams
    from the database while the report is written; a section with a chart has a list."""
    chart: Chart | None = None
    empty: str = "nothing to show"


@dataclass
class Report:
    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    """Headline numbers (compliance rate, counts) in the order they are shown."""
    sections: list[Section] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    """generated_at, database (password hidden), filters."""
