# One image for local sweeps (`docker run`) and AWS Batch array jobs.
# BASE: python:3.11-slim, or where Docker Hub is out of reach the stand-in that
# scripts/image_base.sh builds from Debian packages (`make image-check` does).
ARG BASE=python:3.11-slim
FROM ${BASE}

# NUMBA_CPU_NAME=generic: kernels compiled here for a portable x86-64 target, so a host with
# another CPU (any Fargate machine) loads them instead of recompiling (cost: `make bench`).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HOME=/home/backtest \
    NUMBA_CACHE_DIR=/opt/backtest/cache/numba \
    MPLCONFIGDIR=/opt/backtest/cache/matplotlib \
    NUMBA_CPU_NAME=generic

WORKDIR /app

# Dependencies first, so code changes do not invalidate this layer.
COPY requirements.txt ./
# pip's download cache lives outside the image (a build cache mount): a rebuild reuses the wheels.
RUN --mount=type=cache,target=/root/.cache/pip PIP_CACHE_DIR=/root/.cache/pip pip install -r requirements.txt

COPY pyproject.toml ./
COPY engine/ engine/
COPY batch_jobs/ batch_jobs/
COPY backtest_cli/ backtest_cli/
COPY configs/ configs/
# Compile every kernel into the image's cache, so jobs start computing at once. Caches and
# results belong to uid 10001 and group 0 and are group-writable: OpenShift-style arbitrary
# uids run in group 0; any other uid gets a private copy of the caches (backtest_cli/caches.py).
RUN --mount=type=cache,target=/root/.cache/pip PIP_CACHE_DIR=/root/.cache/pip pip install --no-deps -e . \
 && useradd --uid 10001 --gid 0 --home-dir /home/backtest --create-home backtest \
 && mkdir -p /app/data /app/results "$NUMBA_CACHE_DIR" "$MPLCONFIGDIR" \
 && python -m compileall -q engine batch_jobs backtest_cli \
 && python -m engine.warmup \
 && python -c "import matplotlib.font_manager" \
 && chown -R 10001:0 /opt/backtest /app/results /home/backtest \
 && chmod -R g=u /opt/backtest /app/results /home/backtest

USER 10001:0

VOLUME ["/app/data", "/app/results"]

ENTRYPOINT ["backtest"]
CMD ["run", "--config", "configs/default.yaml", "--out", "/app/results"]
