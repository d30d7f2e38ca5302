"""Entry point of vdesk's dynamic providers: Pulumi's own server, with more workers and imports.

Pulumi's Python dynamic-provider server handles at most 4 operations at once;
a readiness gate waits minutes for a guest to boot, so with 10 desktops the
other creates would queue behind it. Same server, larger pool.

It also cannot serve `pulumi import` (Read without state has no provider);
a vdesk import id names the provider instead (components.resources.importing).
"""
from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import functools
import importlib.util
import os
import threading
import time
import types
from pathlib import Path

from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto, rpc

from . import importing, legacy

legacy.install()   # providers pickled before the package split name their old modules


def _is_bare_main_call(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "main")


def load_sdk_server() -> types.ModuleType:
    """Pulumi's server module (pulumi/dynamic/__main__.py), loaded without starting it.

    Its last statement is a bare `main()`, not under `if __name__ == "__main__"`: a plain
    import would start the server, with 4 workers, before it could be changed.
    """
    spec = importlib.util.find_spec("pulumi.dynamic.__main__")
    tree = ast.parse(Path(spec.origin).read_text(), spec.origin)
    kept = [node for node in tree.body if not _is_bare_main_call(node)]
    if len(tree.body) - len(kept) != 1:
        raise RuntimeError(f"{spec.origin} changed: expected one top-level main() call to hold back")
    tree.body = kept
    module = types.ModuleType("pulumi_dynamic_server")
    module.__file__ = spec.origin
    exec(compile(tree, spec.origin, "exec"), module.__dict__)  # noqa: S102 (the pinned SDK's own code)
    return module


server = load_sdk_server()
WORKERS = int(os.environ.get("VDESK_PROVIDER_WORKERS", "32"))



def _executor(max_workers=None, **kwargs):
    return concurrent.futures.ThreadPoolExecutor(max_workers=max(WORKERS, max_workers or 0), **kwargs)


server.futures = types.SimpleNamespace(ThreadPoolExecutor=_executor)
_load_provider = server.get_provider


@functools.lru_cache(maxsize=64)
def _provider_from(blob: str):
    return _load_provider({server.PROVIDER_KEY: blob})


def _cached_provider(props):
    """Every resource carries its provider pickled (a few KiB of dill); a stack of 60 desktops makes
    hundreds of calls with a handful of distinct blobs. Providers are stateless, so one object per blob
    serves every call (Check, Diff, Read, ...), instead of unpickling it each time."""
    blob = props[server.PROVIDER_KEY]
    return _provider_from(blob) if isinstance(blob, str) else _load_provider(props)


server.get_provider = _cached_provider
_read = server.DynamicResourceProviderServicer.Read


def _read_or_import(self, request, context):
    """An ordinary read, or (no state, a vdesk import id) the read of an import: inputs included."""
    if request.properties.fields or not importing.is_import_id(request.id):
        return _read(self, request, context)
    stack, project = importing.urn_stack(request.urn)
    found = importing.read_for_import(request.id, stack=stack, project=project)
    if found is None:
        return proto.ReadResponse(id="")   # the engine reports that the resource does not exist
    blob = serialize_provider(found.provider)
    loop = asyncio.new_event_loop()
    try:
        outputs = loop.run_until_complete(rpc.serialize_properties({**found.outputs, server.PROVIDER_KEY: blob}, {}))
        inputs = loop.run_until_complete(rpc.serialize_properties({**found.inputs, server.PROVIDER_KEY: blob}, {}))
    finally:
        loop.close()
    return proto.ReadResponse(id=found.id, properties=outputs, inputs=inputs)


server.DynamicResourceProviderServicer.Read = _read_or_import

def _exit_with_the_engine(engine: int, poll_s: float = 0.5) -> None:
    """The engine starts this server in a process group of its own, so a killed `pulumi up` leaves it
    running, possibly still changing the host while the next run starts. It ends with its engine."""
    while os.getppid() == engine:
        time.sleep(poll_s)
    os._exit(70)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_the_engine, args=(os.getppid(),), daemon=True,
                     name="exit-with-the-engine").start()
    server.main()
