"""``nea-report``: compliance reports from the evidence database (see :mod:`gateway.report.cli`).

:mod:`gateway.report.queries` builds each report with SQL aggregates into a
:class:`~gateway.report.model.Report`; :mod:`gateway.report.render` writes it as a table,
JSON, CSV or a self-contained HTML file with inline SVG charts.
"""

from gateway.report.cli import main
from gateway.report.model import Chart, Report, Section

__all__ = ["Chart", "Report", "Section", "main"]
