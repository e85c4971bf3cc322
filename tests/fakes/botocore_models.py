"""One botocore data loader for the whole test process, so service models are parsed once.

Every new ``boto3.Session`` gets its own loader and parses the JSON service models (S3 alone is
about 0.1 s of CPU) and the endpoint rules again. The tests make many: a default session per test
(fixtures reset it), a session per thread in the ingest functions (lambdas/ingest/runtime.py), one
per moto call. The product makes one per process or thread and is left as it is; here sessions
made with the same data path share one loader (its cache holds what it parsed, read-only to its
users, as within one session).
"""

from __future__ import annotations

import threading

_loaders: dict = {}
_lock = threading.Lock()


def share_loaders() -> None:
    """Make botocore sessions created from now on share one loader per data path (idempotent)."""
    import botocore.session

    original = botocore.session.create_loader
    if getattr(original, "shared", False):
        return

    def create_loader(search_path_string=None):
        with _lock:
            if search_path_string not in _loaders:
                _loaders[search_path_string] = original(search_path_string)
            return _loaders[search_path_string]

    create_loader.shared = True
    botocore.session.create_loader = create_loader
