"""Placeholder so the CDK app synthesizes; the ingest work replaces this file."""


def handler(event, context):
    raise NotImplementedError("ingest handler not implemented yet")
