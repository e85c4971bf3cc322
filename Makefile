# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test browser bench bench-scaling screenshot synth image-check layer-check clean

# No pip in the venv: uv installs everything, and the system's pip fetches uv itself (one binary)
# into a scratch folder (the venv's own pip when the system has none). A venv with pip took 3.4 s
# (5 s of CPU) to create; without, 0.1 s.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

# uv installs the pinned requirements in seconds from its cache (~/.cache/uv), where pip takes
# minutes unpacking the same wheels: a fresh clone's `make test` spends its time on the tests.
UV_VERSION := 0.13.9
UV := $(BIN)/uv pip install -q --python $(BIN)/python

$(BIN)/uv: $(BIN)/python
	$(PYTHON) -m pip install -q --no-compile --root-user-action=ignore --target $(VENV)/.uv uv==$(UV_VERSION) \
	  || { $(BIN)/python -m ensurepip -q && $(BIN)/python -m pip install -q --target $(VENV)/.uv uv==$(UV_VERSION); }
	mv $(VENV)/.uv/bin/uv $@ && rm -rf $(VENV)/.uv

# Stamp files make re-runs cheap; they are rebuilt when the requirement files change.
# Bytecode: scripts/compile_bytecode.py compiles what the product and the suite import, not the
# whole of aws-cdk-lib and plotly (uv's --compile-bytecode did: 35 s of CPU for the dev packages).
$(VENV)/.runtime: $(BIN)/uv requirements.txt pyproject.toml scripts/compile_bytecode.py
	$(UV) -r requirements.txt
	$(UV) --no-deps -e .
	$(BIN)/python scripts/compile_bytecode.py
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(UV) -r requirements-dev.txt
	$(BIN)/python scripts/compile_bytecode.py --cdk
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.runtime
	$(BIN)/backtest run

# worksteal: a worker that runs out of tests takes some of the other's (property tests, end-to-end
# runs and synths differ a lot in length). Fixtures that cost seconds are built once per run and
# shared by both workers (tests/conftest.py), as is the compiled code (one numba cache).
# PYTHONDONTWRITEBYTECODE (set on this machine) is cleared: the suite starts the console script some
# 300 times, and each would compile the engine's modules from source again.
test: $(VENV)/.dev node_modules/.installed browser
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 2 --dist worksteal

# The report's browser test drives Debian's chromium through chromedriver (selenium is in
# requirements-dev.txt). Installed here when missing and we are root with apt-get (as CI
# runs); elsewhere that test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and chromium-driver for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null; \
	else echo "note: chromium/chromedriver missing and not root: the browser test will skip"; fi

# Prints the figures; bench/results.json (committed) is rewritten only with SAVE=1.
bench: $(VENV)/.dev
	$(BIN)/python -m bench.run $(if $(SAVE),--save,)
	$(BIN)/python bench/parquet_vs_csv.py
	$(BIN)/python -m bench.report
	$(BIN)/python -m bench.universe

# Re-takes docs/report.png, the README's screenshot of the default run's report.html.
screenshot: $(VENV)/.dev browser
	REPORT_SCREENSHOT=$(CURDIR)/docs/report.png $(BIN)/python -m pytest -q tests/test_report_browser.py

bench-scaling: $(VENV)/.dev
	$(BIN)/python -m bench.scaling

# The app runs as `python3 cdk_app.py` (cdk.json); the venv's python must come first on PATH.
synth: $(VENV)/.dev node_modules/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" npx cdk synth --quiet --no-notices

# The ingest Lambda's runtime for real: Python 3.12 with the AWS SDK for pandas layer's pandas and
# pyarrow (lambdas/ingest/layer.json) in .venv-layer, running the ingest tests; see scripts/layer_check.sh.
layer-check:
	scripts/layer_check.sh

# Builds the Docker image for real (buildah) and runs it with podman; see scripts/image_check.sh.
image-check:
	scripts/image_check.sh

clean:
	rm -rf $(VENV) .venv-layer node_modules cdk.out results .pytest_cache .hypothesis
