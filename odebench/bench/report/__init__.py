"""The report of a sweep: tables, figures, model figures, index.html, and the run's closing summary."""

from odebench.bench.report.build import build_report, write_report

__all__ = ["build_report", "write_report"]
