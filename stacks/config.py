"""Deployment settings, read from CDK context (``cdk.json`` or ``-c key=value``).

Every key is optional; the default applies when it is absent.

======================  ==================================  =============================================
Context key             Default                             Meaning
======================  ==================================  =============================================
region                  see :func:`resolve_region`          where the stacks go; a US region is refused
defaultRegion           ``eu-west-1`` (cdk.json)            the region when nothing else names one
project                 ``backtest``                        value of the ``project`` tag on every resource
tags                    none                                more tags: JSON object or ``k=v,k2=v2``
alarmEmail              none: deploy refuses                e-mail subscribed to the alarm topic; ``none``
                                                            deploys without one on purpose
symbols                 ``BTCUSDT``                         symbols to ingest (list or comma string)
perpSymbols             none                                USDⓈ-M perp symbols whose trade klines, mark
                                                            klines (at ``intervals``) and funding to ingest
intervals               ``15m``                             kline intervals to ingest (list or comma string)
historyStart            ``2017-08-17``                      first day the ingest backfills from (ISO date)
binanceBaseUrl          ``https://data-api.binance.vision`` Binance public market-data endpoint
binanceFapiBaseUrl      ``https://fapi.binance.com``        Binance USDⓈ-M futures endpoint (perpSymbols)
maxPagesPerRun          ``200``                             kline pages one unit of work may fetch
sdkPandasVersion        lambdas/ingest/layer.json           AWS SDK for pandas managed layer version
ingestConcurrency       ``5``                               workers at once (2..25, Binance weight budget)
ingestTimeoutSeconds    ``120``                             one unit of work's time limit (30..900)
ingestLagAlarmMinutes   ``10``                              alarm when the oldest watermark age is above
rawRetentionDays        ``30``                              raw/ fetch batches expire after this
shardRetentionDays      ``14``                              Batch shard files expire after this
glueDatabase            ``backtest``                        Glue database of the candles table
athenaScanLimitGb       ``10``                              an Athena query is cancelled past this scan
fargateSpot             ``true``                            Batch compute on Fargate Spot (else on-demand)
onDemandFallback        ``false``                           a second, on-demand compute environment
jobVcpu                 ``2``                               vCPUs of one Batch job
jobMemoryMiB            ``4096``                            memory (MiB) of one Batch job
maxVcpus                ``64``                              cap of each Batch compute environment
jobTimeoutMinutes       ``120``                             a Batch attempt is killed after this
jobRetryAttempts        ``3``                               Batch attempts per job (interruptions, start-up)
runnableTimeoutMinutes  ``60``                              cancel a job stuck in RUNNABLE this long
======================  ==================================  =============================================

Values given with ``-c`` arrive as strings; they are parsed here. A bad value raises
:class:`SettingsError`, whose message names the context key.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Mapping

from constructs import Node

from engine.data.binance import INTERVAL_MS, is_symbol
from lambdas.ingest.lag import DEFAULT_LAG_ALARM_MINUTES
from lambdas.ingest.units import SeriesGroup, UnitError, schedule_input

#: The Lambda layer and runtime the ingest runs on (also what `make layer-check` installs).
LAYER = json.loads((Path(__file__).resolve().parent.parent / "lambdas" / "ingest" / "layer.json").read_text())
#: Binance's spot limit of request weight per minute and IP, and what one klines page (limit 1000) costs.
BINANCE_WEIGHT_PER_MINUTE, KLINES_PAGE_WEIGHT = 6000, 2
#: The most workers the budget allows: each fetches at most one page a second (a page is committed to
#: S3 before the next is asked for), so 25 workers use 25 x 60 x 2 = 3,000 a minute, the half of the
#: limit above which the klines client starts spreading its requests out.
MAX_INGEST_CONCURRENCY = 25
#: Where the CDK CLI's region comes from when no AWS configuration names one.
CLI_FALLBACK_REGION = "us-east-1"
_DATABASE = re.compile(r"^[a-z0-9_]{1,255}$")


class SettingsError(ValueError):
    """A context value the stacks cannot be built with; the message names the key."""


#: Kline intervals the ingest may keep, in minutes (engine.data.binance: the one list).
INTERVAL_MINUTES = {name: ms // 60_000 for name, ms in INTERVAL_MS.items()}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")

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
class AppSettings:
    """Settings of the whole app: where it goes, how it is tagged, who hears the alarms."""

    region: str | None = None
    region_source: str = "cli"  # context | environment | profile | cli | default (resolve_region)
    project: str = "backtest"
    tags: tuple[tuple[str, str], ...] = ()
    alarm_email: str | None = None
    no_alarm_email: bool = False  # -c alarmEmail=none: deploy without a subscription on purpose

    def __post_init__(self) -> None:
        for key, value in (("project", self.project), *self.tags):
            if not _TAG_KEY.match(key) or len(value) > 256:
                raise SettingsError(f"tags: invalid tag {key!r}={value!r}")
        if self.alarm_email is not None and not _EMAIL.match(self.alarm_email):
            raise SettingsError(f"alarmEmail: {self.alarm_email!r} is not an e-mail address "
                                "(or `none` to deploy without one)")

    @property
    def all_tags(self) -> dict[str, str]:
        return {"project": self.project, **dict(self.tags)}

    @property
    def pin_region(self) -> bool:
        """Pin the stacks to the region (from -c region, or the default when nothing else names one);
        otherwise they deploy to the CLI's region."""
        return self.region_source in ("context", "default")

    @classmethod
    def from_context(cls, node: Node, environ: Mapping[str, str] = os.environ,
                     profile_region: str | None = None) -> AppSettings:
        region, source = resolve_region(node.try_get_context("region"), node.try_get_context("defaultRegion"),
                                        environ, profile_region)
        email = str(node.try_get_context("alarmEmail") or "").strip()
        return cls(
            region=region,
            region_source=source,
            project=str(node.try_get_context("project") or cls.project),
            tags=_tags(node.try_get_context("tags")),
            alarm_email=email if email and email.lower() != "none" else None,
            no_alarm_email=email.lower() == "none",
        )


def resolve_region(context_region, default_region, environ: Mapping[str, str],
                   profile_region: str | None) -> tuple[str | None, str]:
    """(region, where it came from), first found of:

    1. ``-c region=…`` (context);
    2. ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (environment);
    3. the AWS profile's region, as botocore finds it (profile);
    4. ``CDK_DEFAULT_REGION``, which the CDK CLI sets from ``--profile``, unless it is the
       ``us-east-1`` the CLI assumes when no AWS configuration names a region (cli);
    5. ``defaultRegion`` from cdk.json (default; ``eu-west-1``).
    """
    if context_region:
        return str(context_region).strip(), "context"
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(name):
            return environ[name].strip(), "environment"
    if profile_region:
        return profile_region.strip(), "profile"
    cli = environ.get("CDK_DEFAULT_REGION", "").strip()
    if cli and cli != CLI_FALLBACK_REGION:
        return cli, "cli"
    if default_region:
        return str(default_region).strip(), "default"
    return (cli or None), "cli"


@dataclass(frozen=True)
class IngestSettings:
    symbols: tuple[str, ...] = ("BTCUSDT",)
    intervals: tuple[str, ...] = ("15m",)
    history_start: str = "2017-08-17"
    binance_base_url: str = "https://data-api.binance.vision"
    perp_symbols: tuple[str, ...] = ()
    binance_fapi_base_url: str = "https://fapi.binance.com"
    max_pages_per_run: int = 200
    sdk_pandas_version: str = LAYER["sdk_pandas_version"]
    concurrency: int = 5
    timeout_seconds: int = 120
    lag_alarm_minutes: int = DEFAULT_LAG_ALARM_MINUTES

    def __post_init__(self) -> None:
        if not self.symbols or not self.intervals:
            raise SettingsError("symbols and intervals must not be empty")
        for key, names in (("symbols", self.symbols), ("perpSymbols", self.perp_symbols)):
            for symbol in names:
                if not is_symbol(symbol):
                    raise SettingsError(f"{key}: {symbol!r} is not a Binance symbol like BTCUSDT")
        if not self.binance_fapi_base_url.startswith(("https://", "http://")):
            raise SettingsError(f"binanceFapiBaseUrl: {self.binance_fapi_base_url!r} is not an http(s) URL")
        for interval in self.intervals:
            if interval not in INTERVAL_MINUTES:
                raise SettingsError(f"intervals: {interval!r} is not a Binance interval "
                                    f"({', '.join(INTERVAL_MINUTES)})")
        try:
            date.fromisoformat(self.history_start)
        except ValueError:
            raise SettingsError(f"historyStart: {self.history_start!r} is not an ISO date like 2017-08-17") from None
        if self.max_pages_per_run < 1:
            raise SettingsError("maxPagesPerRun must be >= 1")
        if not 2 <= self.concurrency <= MAX_INGEST_CONCURRENCY:
            raise SettingsError(
                f"ingestConcurrency must be within 2..{MAX_INGEST_CONCURRENCY} (2: the SQS event source's "
                f"minimum; {MAX_INGEST_CONCURRENCY}: half of Binance's {BINANCE_WEIGHT_PER_MINUTE} request weight "
                "a minute at one page a second per worker)")
        if not 30 <= self.timeout_seconds <= 900:
            raise SettingsError("ingestTimeoutSeconds must be within 30..900 (a Lambda runs 15 minutes at most)")
        if self.lag_alarm_minutes < 5:
            raise SettingsError("ingestLagAlarmMinutes must be >= 5 (a healthy series reads up to 2 minutes)")
        try:
            self.schedule_input("ingest")
        except UnitError as exc:
            raise SettingsError(f"symbols: {exc}") from None

    @property
    def groups(self) -> tuple[SeriesGroup, ...]:
        """What the ingest keeps current, by market and kind: spot klines; per perp symbol its trade
        klines and mark klines at every interval, and its funding table."""
        spot = (SeriesGroup("spot", "klines", self.symbols, self.intervals),)
        if not self.perp_symbols:
            return spot
        return spot + (SeriesGroup("um", "klines", self.perp_symbols, self.intervals),
                       SeriesGroup("um", "mark", self.perp_symbols, self.intervals),
                       SeriesGroup("um", "funding", self.perp_symbols))

    @property
    def markets(self) -> tuple[str, ...]:
        return tuple(sorted({g.market for g in self.groups}))

    @property
    def series(self) -> tuple[tuple[str, str], ...]:
        return tuple((s, i) for s in self.symbols for i in self.intervals)

    def schedule_input(self, task: str) -> dict:
        return schedule_input(task, self.groups)

    @classmethod
    def from_context(cls, node: Node) -> IngestSettings:
        d = cls()
        if node.try_get_context("reservedConcurrency") not in (None, ""):
            raise SettingsError("reservedConcurrency: no longer used; the workers' bound is ingestConcurrency "
                                "(the SQS event source's maximum concurrency)")
        return cls(
            symbols=_list(node.try_get_context("symbols"), d.symbols),
            intervals=_list(node.try_get_context("intervals"), d.intervals),
            history_start=str(node.try_get_context("historyStart") or d.history_start),
            binance_base_url=str(node.try_get_context("binanceBaseUrl") or d.binance_base_url),
            perp_symbols=_list(node.try_get_context("perpSymbols"), d.perp_symbols),
            binance_fapi_base_url=str(node.try_get_context("binanceFapiBaseUrl") or d.binance_fapi_base_url),
            max_pages_per_run=_int(node.try_get_context("maxPagesPerRun"), d.max_pages_per_run, "maxPagesPerRun"),
            sdk_pandas_version=str(node.try_get_context("sdkPandasVersion") or d.sdk_pandas_version),
            concurrency=_int(node.try_get_context("ingestConcurrency"), d.concurrency, "ingestConcurrency"),
            timeout_seconds=_int(node.try_get_context("ingestTimeoutSeconds"), d.timeout_seconds,
                                 "ingestTimeoutSeconds"),
            lag_alarm_minutes=_int(node.try_get_context("ingestLagAlarmMinutes"), d.lag_alarm_minutes,
                                   "ingestLagAlarmMinutes"),
        )


@dataclass(frozen=True)
class StorageSettings:
    raw_retention_days: int = 30
    shard_retention_days: int = 14

    def __post_init__(self) -> None:
        for key, value in (("rawRetentionDays", self.raw_retention_days),
                           ("shardRetentionDays", self.shard_retention_days)):
            if value < 1:
                raise SettingsError(f"{key} must be >= 1 (days)")

    @classmethod
    def from_context(cls, node: Node) -> StorageSettings:
        d = cls()
        return cls(raw_retention_days=_int(node.try_get_context("rawRetentionDays"), d.raw_retention_days,
                                           "rawRetentionDays"),
                   shard_retention_days=_int(node.try_get_context("shardRetentionDays"), d.shard_retention_days,
                                             "shardRetentionDays"))


@dataclass(frozen=True)
class QuerySettings:
    database: str = "backtest"
    scan_limit_gb: int = 10
    first_year: int = 2017  # the candles table's year projection starts here (historyStart's year)

    def __post_init__(self) -> None:
        if not _DATABASE.match(self.database):
            raise SettingsError(f"glueDatabase: {self.database!r} must be lower-case letters, digits and _")
        if not 1 <= self.scan_limit_gb <= 10_000:
            raise SettingsError("athenaScanLimitGb must be within 1..10000")

    @classmethod
    def from_context(cls, node: Node, history_start: str) -> QuerySettings:
        d = cls()
        return cls(database=str(node.try_get_context("glueDatabase") or d.database),
                   scan_limit_gb=_int(node.try_get_context("athenaScanLimitGb"), d.scan_limit_gb,
                                      "athenaScanLimitGb"),
                   first_year=int(history_start[:4]))


@dataclass(frozen=True)
class BatchSettings:
    fargate_spot: bool = True
    on_demand_fallback: bool = False
    job_vcpu: float = 2
    job_memory_mib: int = 4096
    max_vcpus: int = 64
    job_timeout_minutes: int = 120
    job_retry_attempts: int = 3
    runnable_timeout_minutes: int = 60

    def __post_init__(self) -> None:
        if self.job_vcpu not in _FARGATE_MEMORY:
            raise SettingsError(f"jobVcpu must be one of {sorted(_FARGATE_MEMORY)}, got {self.job_vcpu}")
        low, high, step = _FARGATE_MEMORY[self.job_vcpu]
        if not (low <= self.job_memory_mib <= high and (self.job_memory_mib - low) % step == 0):
            raise SettingsError(
                f"jobMemoryMiB {self.job_memory_mib} is not valid on Fargate with {self.job_vcpu} vCPU "
                f"({low}..{high} in steps of {step})")
        if self.max_vcpus < self.job_vcpu:
            raise SettingsError("maxVcpus must be at least jobVcpu")
        if not 1 <= self.job_retry_attempts <= 10:
            raise SettingsError("jobRetryAttempts must be within 1..10")
        if self.job_timeout_minutes < 1:
            raise SettingsError("jobTimeoutMinutes must be >= 1")
        if not 10 <= self.runnable_timeout_minutes <= 1440:
            raise SettingsError("runnableTimeoutMinutes must be within 10..1440 (AWS Batch's limits)")
        if self.on_demand_fallback and not self.fargate_spot:
            raise SettingsError("onDemandFallback needs fargateSpot=true (the main compute is on-demand already)")

    @classmethod
    def from_context(cls, node: Node) -> BatchSettings:
        d = cls()
        vcpu = _float(node.try_get_context("jobVcpu"), d.job_vcpu, "jobVcpu")
        return cls(
            fargate_spot=_bool(node.try_get_context("fargateSpot"), d.fargate_spot, "fargateSpot"),
            on_demand_fallback=_bool(node.try_get_context("onDemandFallback"), d.on_demand_fallback,
                                     "onDemandFallback"),
            job_vcpu=int(vcpu) if vcpu >= 1 else vcpu,
            job_memory_mib=_int(node.try_get_context("jobMemoryMiB"), d.job_memory_mib, "jobMemoryMiB"),
            max_vcpus=_int(node.try_get_context("maxVcpus"), d.max_vcpus, "maxVcpus"),
            job_timeout_minutes=_int(node.try_get_context("jobTimeoutMinutes"), d.job_timeout_minutes,
                                     "jobTimeoutMinutes"),
            job_retry_attempts=_int(node.try_get_context("jobRetryAttempts"), d.job_retry_attempts,
                                    "jobRetryAttempts"),
            runnable_timeout_minutes=_int(node.try_get_context("runnableTimeoutMinutes"),
                                          d.runnable_timeout_minutes, "runnableTimeoutMinutes"),
        )


def _list(value, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None or value == "":
        return default
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(i).strip() for i in items if str(i).strip())


def _int(value, default: int | None, key: str) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{key}: {value!r} is not a whole number") from None


def _float(value, default: float, key: str) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{key}: {value!r} is not a number") from None


def _bool(value, default: bool, key: str) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"{key}: not a boolean: {value!r}")


def _tags(value) -> tuple[tuple[str, str], ...]:
    """A JSON object (cdk.json, or ``-c 'tags={"team":"quant"}'``) or ``key=value,key2=value2``."""
    if value is None or value == "":
        return ()
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise SettingsError(f"tags: {value!r} is not a JSON object") from None
    if isinstance(value, str):
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep or not k.strip() for k, sep, _ in pairs):
            raise SettingsError(f"tags: {value!r} is not key=value,key=value")
        value = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(value, dict):
        raise SettingsError(f"tags: {value!r} is not a JSON object or key=value list")
    return tuple((str(k), str(v)) for k, v in value.items())


def check_ingest_region(region: str | None) -> None:
    """Binance answers HTTP 451 to US addresses: an ingest Lambda in a US region fails every call."""
    if region and region.lower().startswith("us-"):
        raise SettingsError(
            f"region {region}: the ingest cannot run in a US region (Binance answers HTTP 451 to US addresses); "
            "deploy outside the US, e.g. `-c region=eu-west-1` or AWS_REGION=eu-west-1")
