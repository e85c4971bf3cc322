"""SQL over the bucket: a Glue table over ``candles/`` with partition projection, and an Athena workgroup.

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


class QueryStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket,
                 settings: QuerySettings = QuerySettings(), **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        location = Fn.join("", ["s3://", bucket.bucket_name, "/", storage_layout.CANDLES_PREFIX])

        database = glue.CfnDatabase(self, "Database", catalog_id=self.account, database_input={
            "name": settings.database, "description": "Backtest candles in the dataset bucket (Parquet)"})
        self.table = glue.CfnTable(self, "CandlesTable", catalog_id=self.account, database_name=settings.database,
                                   table_input={
            "name": TABLE,
            "description": "Closed Binance klines, one row per candle; partitions are projected (no crawler)",
            "tableType": "EXTERNAL_TABLE",
            "parameters": {"classification": "parquet", "EXTERNAL": "TRUE", **projection(settings.first_year,
                                                                                           location)},
            "partitionKeys": [{"name": k, "type": t} for k, t in PARTITION_KEYS],
            "storageDescriptor": {
                "location": location,
                "columns": candle_columns(),
                "inputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "outputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "serdeInfo": {"serializationLibrary":
                              "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
            },
        })
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
        CfnOutput(self, "AthenaWorkGroup", value=self.workgroup.name)
