# One image for local sweeps (`docker run`) and AWS Batch array jobs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/home/backtest/.cache/numba \
    MPLCONFIGDIR=/home/backtest/.cache/matplotlib

WORKDIR /app

# Dependencies first, so code changes do not invalidate this layer.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml ./
COPY engine/ engine/
COPY batch_jobs/ batch_jobs/
COPY backtest_cli/ backtest_cli/
COPY configs/ configs/
RUN pip install --no-deps -e . \
 && useradd --create-home --uid 10001 backtest \
 && mkdir -p /app/data /app/results "$NUMBA_CACHE_DIR" "$MPLCONFIGDIR" \
 && chown -R backtest:backtest /app/data /app/results /home/backtest/.cache

USER backtest
# Compile the numba kernels into the image's cache, so jobs start computing at once.
RUN python -m engine.fast.warmup

VOLUME ["/app/data", "/app/results"]

ENTRYPOINT ["backtest"]
CMD ["run", "--config", "configs/default.yaml", "--out", "/app/results"]
