"""SQL over the bucket: Glue tables with partition projection, and an Athena workgroup.

Tables (each at its prefix from engine/storage_layout.py):

* ``candles`` over ``candles/`` (spot klines);
* ``um_candles`` over ``um/candles/`` and ``um_mark`` over ``um/mark/`` (USDⓈ-M trade and mark-price
  klines): the spot table's partitioning and columns;
* ``um_funding`` over ``um/funding/``: one Parquet file per symbol (``symbol=S/part-0.parquet``), so
  ``symbol`` is its only partition key (injected); columns ``funding_time`` (bigint, ms UTC),
  ``funding_rate`` (double), ``mark_price`` (double, null when not given), ``interval_hours`` (bigint).

No crawler and no partitions to add: every partition key is projected, so a query sees a month
the moment its Parquet file lands.

* ``symbol``: ``injected`` (queries name it: ``WHERE symbol = 'BTCUSDT'``; any symbol in the
  bucket, configured for the ingest or backfilled by hand);
* ``interval``: ``enum`` of every Binance interval the project stores (engine/data/binance.py;
  ``interval`` is a reserved word in Athena SQL: write ``"interval"``);
* ``year``: ``date`` (``yyyy``) from historyStart's year to NOW;
* ``month``: ``integer`` 1–12, two digits.

Columns are the stored kline fields (engine/data/binance.py), bigint for times and counts,
double for prices and volumes. The workgroup enforces its settings: results under
``athena-results/`` (SSE-S3, expired after 7 days by the storage stack), engine version 3,
CloudWatch metrics, and a per-query scan limit (``athenaScanLimitGb``) as the cost guard.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Fn, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from engine import storage_layout
from engine.data.binance import INT_FIELDS, INTERVALS, KEPT_FIELDS

from .config import QuerySettings

TABLE = "candles"
PARTITION_KEYS = (("symbol", "string"), ("interval", "string"), ("year", "string"), ("month", "int"))
assert tuple(k for k, _ in PARTITION_KEYS) == storage_layout.PARTITION_COLUMNS
#: the USDⓈ-M tables: name -> (construct id, kind of series)
UM_TABLES = {"um_candles": ("UmCandlesTable", "klines"), "um_mark": ("UmMarkTable", "mark"),
             "um_funding": ("UmFundingTable", "funding")}
FUNDING_PARTITION_KEYS = (("symbol", "string"),)
assert tuple(k for k, _ in FUNDING_PARTITION_KEYS) == storage_layout.FUNDING_PARTITION_COLUMNS
#: engine/data/funding_table.py's FUNDING_SCHEMA in Glue types (a test checks them against a written table)
FUNDING_COLUMNS = (("funding_time", "bigint"), ("funding_rate", "double"), ("mark_price", "double"),
                   ("interval_hours", "bigint"))
_PARQUET_IO = {
    "inputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "outputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "serdeInfo": {"serializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}


def candle_columns() -> list[dict[str, str]]:
    """The Glue columns of a candles Parquet file, from the one list of kept kline fields."""
    return [{"name": f, "type": "bigint" if f in INT_FIELDS else "double"} for f in KEPT_FIELDS]


def projection(first_year: int, location: str) -> dict[str, str]:
    return {
        "projection.enabled": "true",
        "projection.symbol.type": "injected",
        "projection.interval.type": "enum",
        "projection.interval.values": ",".join(INTERVALS),
        "projection.year.type": "date",
        "projection.year.format": "yyyy",
        "projection.year.range": f"{first_year},NOW",
        "projection.year.interval": "1",
        "projection.year.interval.unit": "YEARS",
        "projection.month.type": "integer",
        "projection.month.range": "1,12",
        "projection.month.digits": "2",
        "storage.location.template": location + "symbol=${symbol}/interval=${interval}/year=${year}/month=${month}/",
    }


def funding_projection(location: str) -> dict[str, str]:
    return {"projection.enabled": "true", "projection.symbol.type": "injected",
            "storage.location.template": location + "symbol=${symbol}/"}


def table_input(name: str, description: str, location: str, parameters: dict, partition_keys, columns) -> dict:
    return {
        "name": name, "description": description, "tableType": "EXTERNAL_TABLE",
        "parameters": {"classification": "parquet", "EXTERNAL": "TRUE", **parameters},
        "partitionKeys": [{"name": k, "type": t} for k, t in partition_keys],
        "storageDescriptor": {"location": location, "columns": columns, **_PARQUET_IO},
    }


class QueryStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket,
                 settings: QuerySettings = QuerySettings(), **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        location = Fn.join("", ["s3://", bucket.bucket_name, "/", storage_layout.CANDLES_PREFIX])

        database = glue.CfnDatabase(self, "Database", catalog_id=self.account, database_input={
            "name": settings.database, "description": "Backtest candles in the dataset bucket (Parquet)"})
        self.table = glue.CfnTable(self, "CandlesTable", catalog_id=self.account, database_name=settings.database,
                                   table_input=table_input(
            TABLE, "Closed Binance klines, one row per candle; partitions are projected (no crawler)", location,
            projection(settings.first_year, location), PARTITION_KEYS, candle_columns()))
        self.um_tables = {}
        for name, (cid, kind) in UM_TABLES.items():
            where = Fn.join("", ["s3://", bucket.bucket_name, "/", storage_layout.kind_prefix("um", kind)])
            if kind == "funding":
                spec = table_input(name, "USD-M funding events, one row per event; symbol is projected", where,
                                   funding_projection(where), FUNDING_PARTITION_KEYS,
                                   [{"name": c, "type": t} for c, t in FUNDING_COLUMNS])
            else:
                what = "trade" if kind == "klines" else "mark-price"
                spec = table_input(name, f"Closed USD-M {what} klines, one row per candle; partitions are projected",
                                   where, projection(settings.first_year, where), PARTITION_KEYS, candle_columns())
            t = glue.CfnTable(self, cid, catalog_id=self.account, database_name=settings.database,
                              table_input=spec)
            t.node.add_dependency(database)
            self.um_tables[name] = t
        self.table.node.add_dependency(database)

        self.workgroup = athena.CfnWorkGroup(
            self, "WorkGroup",
            name=settings.database,
            description="Backtest queries over the candles table; results expire after 7 days",
            state="ENABLED",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=settings.scan_limit_gb * 1024 ** 3,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=Fn.join("", ["s3://", bucket.bucket_name, "/",
                                                 storage_layout.ATHENA_RESULTS_PREFIX]),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3")),
            ),
        )

        CfnOutput(self, "GlueDatabase", value=settings.database)
        CfnOutput(self, "CandlesTableName", value=f"{settings.database}.{TABLE}")
        CfnOutput(self, "UmTableNames", value=",".join(f"{settings.database}.{n}" for n in UM_TABLES))
        CfnOutput(self, "AthenaWorkGroup", value=self.workgroup.name)
