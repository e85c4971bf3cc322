"""AWS Batch entry points: shard and reduce a sweep whose config and candles live in S3."""
