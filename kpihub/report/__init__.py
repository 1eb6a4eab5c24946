"""Reports: scorecards as terminal tables and as JSON, CSV and Parquet files."""

from kpihub.report.scorecard import format_value, render_scorecard, write_scorecard

__all__ = ["format_value", "render_scorecard", "write_scorecard"]
