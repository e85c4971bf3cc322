#!/usr/bin/env bash
# The ingest Lambda's runtime, tested for real: Python 3.12 with the AWS SDK for pandas layer's
# packages (lambdas/ingest/layer.json: awswrangler 3.17.1, pandas 3.0.x, pyarrow 24.0.x) in a
# separate venv, running the worker's and the dispatcher's tests (moto S3/DynamoDB/SQS/SNS and a
# fake Binance on 127.0.0.1). Run by CI after `make test`; the cdk-nag acknowledgement of the
# pinned runtime (stacks/ingest_stack.py, layer_check_reason) says exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

MANIFEST=lambdas/ingest/layer.json
VENV=.venv-layer
read_manifest() { python3 -c "import json,sys; d=json.load(open('$MANIFEST')); print(eval(sys.argv[1]))" "$1"; }
MINOR=$(read_manifest 'd["python"]')
SPECS=$(read_manifest '" ".join(f"{k}=={v}" for k, v in d["packages"].items())')

# Python $MINOR: on PATH, else pyenv's (the machine image ships it), else say how to get it.
find_python() {
    local candidate
    for candidate in "python$MINOR" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$MINOR".*/bin/python"$MINOR" \
                                          /root/.pyenv/versions/"$MINOR".*/bin/python"$MINOR" 2>/dev/null); do
        if command -v "$candidate" >/dev/null 2>&1 && \
           [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$MINOR" ]; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}
PY=$(find_python) || { echo "error: layer-check needs Python $MINOR (the Lambda runtime's); none found on PATH or under pyenv" >&2; exit 2; }

STAMP="$VENV/.installed-$(cat "$MANIFEST" requirements-dev.txt | sha1sum | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    # The layer's packages, then the test tools pinned as in requirements-dev.txt (moto, pytest).
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check $SPECS \
        "$(grep -E '^moto\[server\]==' requirements-dev.txt)" \
        "$(grep -E '^pytest==' requirements-dev.txt)" \
        "$(grep -E '^pytest-xdist==' requirements-dev.txt)"
    touch "$STAMP"
fi

"$VENV/bin/python" - "$MANIFEST" <<'PY'
import fnmatch, json, platform, sys
from importlib.metadata import version
manifest = json.load(open(sys.argv[1]))
assert platform.python_version().startswith(manifest["python"] + "."), platform.python_version()
found = {name: version(name) for name in manifest["packages"]}
for name, spec in manifest["packages"].items():
    assert fnmatch.fnmatch(found[name], spec), f"{name} {found[name]} is not the layer's {spec}"
extra = {name: version(name) for name in ("numpy", "boto3", "botocore")}
print(f"layer-check: Python {platform.python_version()}, "
      + ", ".join(f"{k} {v}" for k, v in {**found, **extra}.items()))
PY

PYTHONPATH="$PWD" "$VENV/bin/python" -m pytest -q -n 2 --dist loadfile -p no:cacheprovider \
    tests/test_ingest.py tests/test_ingest_fanout.py
