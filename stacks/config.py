"""Deployment settings, read from CDK context (``cdk.json`` or ``-c key=value``).

Every key is optional; the default applies when it is absent.

=====================  ==================================  ============================================
Context key            Default                             Meaning
=====================  ==================================  ============================================
symbols                ``BTCUSDT``                         symbols to ingest (list or comma string)
intervals              ``15m``                             kline intervals to ingest (list or comma string)
historyStart           ``2017-08-17``                      first day the ingest backfills from (ISO date)
binanceBaseUrl         ``https://data-api.binance.vision`` Binance public market-data endpoint
maxPagesPerRun         ``200``                             kline pages one ingest invocation may fetch
sdkPandasVersion       ``3.17.1``                          AWS SDK for pandas managed layer version
fargateSpot            ``true``                            Batch compute on Fargate Spot (else on-demand)
jobVcpu                ``2``                               vCPUs of one Batch job
jobMemoryMiB           ``4096``                            memory (MiB) of one Batch job
maxVcpus               ``64``                              cap of the Batch compute environment
jobTimeoutMinutes      ``120``                             a Batch attempt is killed after this
jobRetryAttempts       ``3``                               Batch attempts per job (Spot interruptions)
=====================  ==================================  ============================================

Values given with ``-c`` arrive as strings; they are parsed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from constructs import Node

# Valid Fargate (vCPU -> memory MiB range, step) combinations.
_FARGATE_MEMORY = {
    0.25: (512, 2048, 512),
    0.5: (1024, 4096, 1024),
    1: (2048, 8192, 1024),
    2: (4096, 16384, 1024),
    4: (8192, 30720, 1024),
    8: (16384, 61440, 4096),
    16: (32768, 122880, 8192),
}


@dataclass(frozen=True)
class IngestSettings:
    symbols: tuple[str, ...] = ("BTCUSDT",)
    intervals: tuple[str, ...] = ("15m",)
    history_start: str = "2017-08-17"
    binance_base_url: str = "https://data-api.binance.vision"
    max_pages_per_run: int = 200
    sdk_pandas_version: str = "3.17.1"

    def __post_init__(self) -> None:
        if not self.symbols or not self.intervals:
            raise ValueError("symbols and intervals must not be empty")
        date.fromisoformat(self.history_start)
        if self.max_pages_per_run < 1:
            raise ValueError("maxPagesPerRun must be >= 1")

    @classmethod
    def from_context(cls, node: Node) -> IngestSettings:
        d = cls()
        return cls(
            symbols=_list(node.try_get_context("symbols"), d.symbols),
            intervals=_list(node.try_get_context("intervals"), d.intervals),
            history_start=str(node.try_get_context("historyStart") or d.history_start),
            binance_base_url=str(node.try_get_context("binanceBaseUrl") or d.binance_base_url),
            max_pages_per_run=_int(node.try_get_context("maxPagesPerRun"), d.max_pages_per_run),
            sdk_pandas_version=str(node.try_get_context("sdkPandasVersion") or d.sdk_pandas_version),
        )


@dataclass(frozen=True)
class BatchSettings:
    fargate_spot: bool = True
    job_vcpu: float = 2
    job_memory_mib: int = 4096
    max_vcpus: int = 64
    job_timeout_minutes: int = 120
    job_retry_attempts: int = 3

    def __post_init__(self) -> None:
        if self.job_vcpu not in _FARGATE_MEMORY:
            raise ValueError(f"jobVcpu must be one of {sorted(_FARGATE_MEMORY)}, got {self.job_vcpu}")
        low, high, step = _FARGATE_MEMORY[self.job_vcpu]
        if not (low <= self.job_memory_mib <= high and (self.job_memory_mib - low) % step == 0):
            raise ValueError(
                f"jobMemoryMiB {self.job_memory_mib} is not valid on Fargate with {self.job_vcpu} vCPU "
                f"({low}..{high} in steps of {step})")
        if self.max_vcpus < self.job_vcpu:
            raise ValueError("maxVcpus must be at least jobVcpu")
        if not 1 <= self.job_retry_attempts <= 10:
            raise ValueError("jobRetryAttempts must be within 1..10")
        if self.job_timeout_minutes < 1:
            raise ValueError("jobTimeoutMinutes must be >= 1")

    @classmethod
    def from_context(cls, node: Node) -> BatchSettings:
        d = cls()
        vcpu = _float(node.try_get_context("jobVcpu"), d.job_vcpu)
        return cls(
            fargate_spot=_bool(node.try_get_context("fargateSpot"), d.fargate_spot),
            job_vcpu=int(vcpu) if vcpu >= 1 else vcpu,
            job_memory_mib=_int(node.try_get_context("jobMemoryMiB"), d.job_memory_mib),
            max_vcpus=_int(node.try_get_context("maxVcpus"), d.max_vcpus),
            job_timeout_minutes=_int(node.try_get_context("jobTimeoutMinutes"), d.job_timeout_minutes),
            job_retry_attempts=_int(node.try_get_context("jobRetryAttempts"), d.job_retry_attempts),
        )


def _list(value, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None or value == "":
        return default
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(i).strip() for i in items if str(i).strip())


def _int(value, default: int) -> int:
    return default if value is None or value == "" else int(value)


def _float(value, default: float) -> float:
    return default if value is None or value == "" else float(value)


def _bool(value, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")
