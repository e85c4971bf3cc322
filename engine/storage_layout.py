"""The one definition of where things live, in S3 and in local dataset folders.

Standard library only: the CDK stacks, the ingest Lambda, the Batch jobs and the
engine all import it.

Layout under a bucket (or a local root):
    raw/symbol=S/interval=I/<start_ms>-<end_ms>.json   immutable fetch batches
    candles/symbol=S/interval=I/year=YYYY/month=MM/    Parquet partitions
    runs/<run_id>/config.yaml                          a submitted sweep
    runs/<run_id>/strategies.zip                       its user strategy modules (when it names any)
    runs/<run_id>/submission.json                      its AWS Batch job ids
    runs/<run_id>/shards/<index>.parquet               one array child's rows
    runs/<run_id>/report/                              the reduced report
    locks/symbol=S/interval=I.json                     a series writer's lease (conditional put)
    locks/binance-blocked.json                         "blocked until" (HTTP 418) or "geo-blocked" (451)
    meta/symbol=S/interval=I/outages.json              ranges the exchange confirmed empty
    athena-results/                                    Athena query results (expire after 7 days)

Markets: the keys above are the spot market's. USDⓈ-M futures (market ``um``) keep the same
layout under one ``um/`` prefix (``um/raw/…``, ``um/candles/…``, ``um/meta/…``, ``um/locks/…``),
so access and lifecycle are granted per market prefix (:func:`market_prefix`).

A perp symbol has three kinds of series (:data:`KINDS`), each beside the others under the market
prefix, each with its own lock:
    um/candles/symbol=S/interval=I/year=YYYY/month=MM/  trade klines (the spot partitioning)
    um/mark/symbol=S/interval=I/year=YYYY/month=MM/     mark-price klines (same columns)
    um/funding/symbol=S/part-0.parquet                  the funding table (one file per symbol)
    um/locks/symbol=S/interval=I.json                   trade klines' lease (as spot's, under um/)
    um/locks/mark/symbol=S/interval=I.json              mark klines' lease
    um/locks/funding/symbol=S.json                      funding table's lease
A dataset is named by its spot candles root (``s3://B/candles/`` or a local folder DS);
:func:`kind_root` gives the root of each market's kind: ``s3://B/um/mark/``, ``DS/um/mark/``.
Existing datasets are spot: their keys and folders are unchanged.

Batch shard objects carry the tag :data:`SHARD_TAGGING`: a lifecycle rule expires them (S3
lifecycle filters match a key prefix or tags, never a pattern like ``runs/*/shards/``).

Nothing but Parquet lives under ``candles/``: a dataset read of that prefix
(``wr.s3.read_parquet(..., dataset=True)``) must see only partitions.

A local dataset folder is a candles root; its lock and metadata live inside it in
folders whose names start with ``_``, which pyarrow's dataset discovery and the
engine's partition scan both skip:
    _locks/symbol=S/interval=I.lock                    a series writer's OS file lock (holder's pid inside)
    _meta/symbol=S/interval=I/outages.json             ranges the exchange confirmed empty
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

RAW_PREFIX = "raw/"
CANDLES_PREFIX = "candles/"
RUNS_PREFIX = "runs/"
LOCKS_PREFIX = "locks/"
META_PREFIX = "meta/"
BLOCKED_KEY = f"{LOCKS_PREFIX}binance-blocked.json"
ATHENA_RESULTS_PREFIX = "athena-results/"
#: Markets, each with its own key prefix: spot keeps the bucket's top level, USDⓈ-M lives under um/.
MARKETS = ("spot", "um")
_MARKET_PREFIX = {"spot": "", "um": "um/"}
#: The tag every Batch shard object is written with (``Tagging=`` of the PUT), and its key and value.
SHARD_TAG_KEY, SHARD_TAG_VALUE = "backtest-artifact", "shard"
SHARD_TAGGING = f"{SHARD_TAG_KEY}={SHARD_TAG_VALUE}"
LOCAL_LOCKS_DIR = "_locks/"
LOCAL_META_DIR = "_meta/"

PARTITION_COLUMNS = ("symbol", "interval", "year", "month")


class S3Uri(NamedTuple):
    bucket: str
    key: str


def parse_s3_uri(uri: str) -> S3Uri:
    """Split ``s3://bucket/key`` into bucket and key (key may be empty)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket: {uri!r}")
    return S3Uri(bucket, key)


def s3_uri(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


def is_s3_uri(path: str) -> bool:
    return str(path).startswith("s3://")


def series_prefix(symbol: str, interval: str) -> str:
    """Relative folder of one symbol/interval inside a candles dataset root."""
    return f"symbol={symbol}/interval={interval}/"


def month_partition(symbol: str, interval: str, open_time_ms: int) -> str:
    """Relative folder of the month partition that holds ``open_time_ms``."""
    t = datetime.fromtimestamp(open_time_ms / 1000, tz=timezone.utc)
    return f"{series_prefix(symbol, interval)}year={t.year:04d}/month={t.month:02d}/"


def candles_prefix(symbol: str | None = None, interval: str | None = None) -> str:
    if symbol is None:
        return CANDLES_PREFIX
    if interval is None:
        return f"{CANDLES_PREFIX}symbol={symbol}/"
    return CANDLES_PREFIX + series_prefix(symbol, interval)


def raw_batch_key(symbol: str, interval: str, first_open_ms: int, last_open_ms: int, kind: str = "klines") -> str:
    """Deterministic key of a fetched batch: a repeat overwrites the same object (mark klines: ``raw/mark/…``)."""
    sub = "" if kind == "klines" else f"{kind}/"
    return f"{RAW_PREFIX}{sub}{series_prefix(symbol, interval)}{first_open_ms}-{last_open_ms}.json"


def series_lock_key(symbol: str, interval: str) -> str:
    """The lease every writer of one series takes (Lambda, ``data fetch/backfill/build`` on S3)."""
    return f"{LOCKS_PREFIX}symbol={symbol}/interval={interval}.json"


def series_meta_prefix(symbol: str, interval: str) -> str:
    return META_PREFIX + series_prefix(symbol, interval)


def outages_key(symbol: str, interval: str) -> str:
    """Ranges the exchange answered empty for this series (real outages), so they are not asked again."""
    return f"{series_meta_prefix(symbol, interval)}outages.json"


def local_lock_path(symbol: str, interval: str) -> str:
    """The series lock file, relative to a local dataset root."""
    return f"{LOCAL_LOCKS_DIR}symbol={symbol}/interval={interval}.lock"


def local_outages_path(symbol: str, interval: str) -> str:
    """The confirmed-empty ranges of a series, relative to a local dataset root."""
    return f"{LOCAL_META_DIR}{series_prefix(symbol, interval)}outages.json"


def run_prefix(run_id: str) -> str:
    return f"{RUNS_PREFIX}{run_id}/"


def run_config_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}config.yaml"


def run_code_key(run_id: str) -> str:
    """The user strategy modules a submitted sweep names by path, for its jobs to import."""
    return f"{run_prefix(run_id)}strategies.zip"


def submission_key(run_id: str) -> str:
    """What ``backtest submit`` sent to AWS Batch (job ids, array size)."""
    return f"{run_prefix(run_id)}submission.json"


def shard_key(run_id: str, index: int) -> str:
    return f"{run_prefix(run_id)}shards/{index:05d}.parquet"


def shards_prefix(run_id: str) -> str:
    return f"{run_prefix(run_id)}shards/"


def report_prefix(run_id: str) -> str:
    return f"{run_prefix(run_id)}report/"


def market_prefix(market: str) -> str:
    """Key prefix of a market's data: ``""`` for spot (today's keys), ``"um/"`` for USDⓈ-M futures."""
    try:
        return _MARKET_PREFIX[market]
    except KeyError:
        raise ValueError(f"unknown market {market!r}; expected one of {', '.join(MARKETS)}") from None


def market_prefixes(market: str) -> dict[str, str]:
    """The per-market top-level prefixes: raw batches, candles, meta records and locks."""
    root = market_prefix(market)
    return {"raw": root + RAW_PREFIX, "candles": root + CANDLES_PREFIX, "meta": root + META_PREFIX,
            "locks": root + LOCKS_PREFIX}


#: The kinds of series of each market, and the folder (key part) each lives in under the market prefix.
KINDS: dict[str, tuple[str, ...]] = {"spot": ("klines",), "um": ("klines", "mark", "funding")}
KIND_DIRS = {"klines": CANDLES_PREFIX, "mark": "mark/", "funding": "funding/"}
FUNDING_FILE = "part-0.parquet"


#: the partition keys of a funding table (one file per symbol, no interval or month)
FUNDING_PARTITION_COLUMNS = ("symbol",)


def kind_prefix(market: str, kind: str) -> str:
    """Key prefix of a market's kind of series in a bucket: ``candles/`` (spot), ``um/candles/``, ``um/mark/``,
    ``um/funding/``."""
    check_kind(market, kind)
    return market_prefix(market) + KIND_DIRS[kind]


def check_kind(market: str, kind: str) -> None:
    market_prefix(market)
    if kind not in KINDS[market]:
        raise ValueError(f"{market} has no {kind!r} series; expected one of {', '.join(KINDS[market])}")


def kind_root(root: str, market: str = "spot", kind: str = "klines") -> str:
    """The root of a market's kind of series, given the dataset's (spot) candles root.

    Spot klines: ``root`` itself. Otherwise, on S3 (``s3://B/<p>candles/``) the sibling
    ``s3://B/<p>um/<kind dir>``; for a local folder ``DS``, ``DS/um/<kind dir>``."""
    check_kind(market, kind)
    if market == "spot":
        return root
    sub = market_prefix(market) + KIND_DIRS[kind]
    if is_s3_uri(root):
        bucket, key = parse_s3_uri(root)
        key = key if not key or key.endswith("/") else key + "/"
        if key.endswith(CANDLES_PREFIX):
            key = key[:-len(CANDLES_PREFIX)]
        return s3_uri(bucket, key + sub)
    return str(root).rstrip("/") + "/" + sub


def lock_key_for_root(root_key: str, symbol: str, interval: str | None) -> str:
    """The lease key of one series of the S3 dataset whose root has key ``root_key``: beside the kind's
    folder, ``<p>locks/[<kind>/]symbol=S/interval=I.json`` (spot: today's ``locks/…``); a root in no kind
    folder keeps the bucket's top-level ``locks/``."""
    key = root_key if not root_key or root_key.endswith("/") else root_key + "/"
    name = f"symbol={symbol}" + (f"/interval={interval}" if interval else "") + ".json"
    for kind, d in KIND_DIRS.items():
        if key.endswith(d):
            base = key[:-len(d)]
            return base + LOCKS_PREFIX + ("" if kind == "klines" else d) + name
    return LOCKS_PREFIX + name


def funding_file(symbol: str) -> str:
    """The funding table of a symbol, relative to the funding root."""
    return f"symbol={symbol}/{FUNDING_FILE}"


def local_table_lock_path(symbol: str) -> str:
    """The lock file of a one-file-per-symbol table (funding), relative to its root."""
    return f"{LOCAL_LOCKS_DIR}symbol={symbol}.lock"


def blocked_key(market: str = "spot") -> str:
    """Where the ingest stores "blocked until" (HTTP 418) or "geo-blocked" (HTTP 451) for a market's host."""
    return market_prefix(market) + BLOCKED_KEY
