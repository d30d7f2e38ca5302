"""Entry point of vdesk's dynamic providers: Pulumi's own server, with more workers.

Pulumi's Python dynamic-provider server handles at most 4 operations at once;
a readiness gate waits minutes for a guest to boot, so with 10 desktops the
other creates would queue behind it. Same server, larger pool.
"""
from __future__ import annotations

import concurrent.futures
import os
import types

import pulumi.dynamic.__main__ as server

WORKERS = int(os.environ.get("VDESK_PROVIDER_WORKERS", "32"))



def _executor(max_workers=None, **kwargs):
    return concurrent.futures.ThreadPoolExecutor(max_workers=max(WORKERS, max_workers or 0), **kwargs)


server.futures = types.SimpleNamespace(ThreadPoolExecutor=_executor)

if __name__ == "__main__":
    server.main()
