"""Old module paths of pickled providers, so stacks created before the package split still load.

Pulumi stores each dynamic provider pickled by reference (`components.domain.DomainProvider`).
The providers moved into `components.resources` (and friends); this finder answers the old
names with the new modules, so refresh, update and destroy of an existing stack keep working.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "components.domain": "components.resources.domain", "components.network": "components.resources.network",
    "components.pool": "components.resources.pool", "components.volume": "components.resources.volume",
    "components.seed": "components.resources.seed", "components.keys": "components.resources.keys",
    "components.readiness": "components.resources.readiness", "components.provider": "components.resources.provider",
    "components.container": "components.resources.container",
    "components.container_ready": "components.resources.container_ready",
    "components.importing": "components.resources.importing",
    "components.connection": "components.host.connection",
    "components.images.build": "components.resources.image_build",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # the new module is already executed; the import system files it under the old name


def install() -> None:
    """Make the old names importable (idempotent)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
