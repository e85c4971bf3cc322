"""Compile the venv's bytecode at install time, except code that nothing here imports (make .venv/.runtime, .dev).

uv's --compile-bytecode compiles every installed .py. Most of aws-cdk-lib's 183 MB of Python is
the bindings of services the stacks never use, and plotly's Python is never imported (the report
only copies its plotly.min.js). So:

* every package in site-packages is compiled (``compileall``, one process per core), except
  plotly and narwhals (plotly's dependency) and aws_cdk;
* aws_cdk's modules are compiled by importing what the suite imports and building the real app
  (``stacks.build``, no synth) in a second process with bytecode writing on: the modules that the
  jsii runtime loads while the stacks are built, about 40% of aws_cdk. It runs beside compileall.

Nothing depends on this list being complete: a module left out (a stack that starts using another
AWS service, or plotly if something imports it) is compiled on its first import and its .pyc
written then (``make test`` lets Python write bytecode). Without node the CDK step is skipped
with a note, and aws_cdk compiles on first import.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Not compiled by the pool: plotly and narwhals are never imported here; aws_cdk is compiled by the CDK
#: import run (cdk_imports), which compiles only the modules the stacks use.
SKIP = re.compile(r"[/\\]site-packages[/\\](?:plotly|narwhals|aws_cdk)[/\\]")


def cdk_imports() -> None:
    """Import what the CDK tests import and build the app once (bytecode is written as a side effect)."""
    import json

    sys.path.insert(0, str(REPO))
    import aws_cdk as cdk
    import aws_cdk.assertions  # noqa: F401
    import cdk_nag  # noqa: F401

    import stacks

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    stacks.build(cdk.App(context={**context, "alarmEmail": "ops@example.com"}), environ={})


def stale(site: str) -> list[str]:
    """The .py files under ``site`` (SKIP aside) whose .pyc is missing or older than the source.

    Checked here, in one process, so that the second run (make .venv/.dev) hands the pool only
    the dev packages and not again every file of the runtime's."""
    found = []
    for folder, dirs, files in os.walk(site):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not name.endswith(".py") or SKIP.search(path):
                continue
            try:
                st = os.stat(path)
                with open(importlib.util.cache_from_source(path), "rb") as pyc:
                    header = pyc.read(16)
                if header[4:8] == b"\0\0\0\0" and header[8:16] == (
                        (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")):
                    continue
            except OSError:
                pass
            found.append(path)
    return found


def compile_one(path: str) -> None:
    compileall.compile_file(path, quiet=2, force=True)  # a file that does not compile fails on import, as before


def main() -> int:
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    cdk = None
    if "--cdk" in sys.argv[1:] and any((Path(p) / "aws_cdk").is_dir() for p in site):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cdk = subprocess.Popen([sys.executable, __file__, "--cdk-imports"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    todo = [path for p in site for path in stale(p)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(compile_one, todo, chunksize=16))
    if cdk is not None:
        _, err = cdk.communicate()
        if cdk.returncode != 0:
            last = (err.strip().splitlines() or ["no output"])[-1]
            print(f"note: aws_cdk's modules will compile on first import (building the app failed: {last})")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--cdk-imports"]:
        sys.dont_write_bytecode = False
        cdk_imports()
        sys.exit(0)
    sys.exit(main())
