"""Run reports: ranking, the run folder writer, report.html, trades.csv, the run index and comparison, PNG charts."""
