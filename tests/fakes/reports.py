"""Reading run folders in tests: report.html without the one element that changes from run to run."""

from __future__ import annotations

import json
import re
from pathlib import Path

# Written independently of engine.report.html: the page keeps its run id, time and timings here only.
_RUN = re.compile(rb'<script id="report-run" type="application/json">(.*?)</script>', re.S)


def run_block(html: bytes) -> dict:
    (found,) = _RUN.findall(html)
    return json.loads(found)


def stable_html(html: bytes) -> bytes:
    """report.html with the run's id, creation time and timings blanked out."""
    out, n = _RUN.subn(b'<script id="report-run" type="application/json">{}</script>', html)
    assert n == 1, "report.html must keep its run-specific values in exactly one element"
    return out


def stable_tree(root: Path) -> dict[str, bytes]:
    """Every file of a run folder but manifest.json, report.html made stable."""
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != "manifest.json"}
    if "report.html" in files:
        files["report.html"] = stable_html(files["report.html"])
    return files
