"""Old module paths of pickled providers, so stacks created before the package split still load; and the
names of a desktop's resources of before, which a state may still hold.

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

# A desktop's credentials were three resources, by their name's suffix under a Desktop; they are one now
# (components.resources.credentials moves a state over). Named here so that the front door can tell that a
# state has none without importing the providers.
CREDENTIALS = {"login": "-login-key", "host": "-host-key", "display": "-display-password"}
DESKTOP_TYPE = "vdesk:index:Desktop"
DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"


def has_legacy_credentials(deployment: dict) -> bool:
    """Whether any dynamic resource of the deployment has a name of before (cheap: names only)."""
    return any(r.get("type") == DYNAMIC_TYPE and r.get("urn", "").endswith(tuple(CREDENTIALS.values()))
               for r in deployment.get("resources") or ())


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
