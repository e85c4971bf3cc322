"""Run reports: ranking, the run folder writer and the PNG charts."""
