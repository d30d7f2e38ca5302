"""Cloud-init seeds for vdesk guests: render, validate against cloud-init's own schema, pack as NoCloud ISO.

Shared vocabulary lives here (the error type and the seed documents) so every
submodule reports user errors the same way; the functions are re-exported.
"""

import importlib
from dataclasses import dataclass


class CloudInitError(Exception):
    """A user error in seed inputs or rendered documents.

    ``errors`` holds every problem found as ``(path, message)`` pairs, where
    ``path`` names the offending field (``"users[0].sudo"``, ``"profile"``,
    ``"user-data"``); ``str()`` lists them all, one per line.
    """

    def __init__(self, errors):
        self.errors = [(str(path), str(message)) for path, message in errors]
        if not self.errors:
            raise ValueError("CloudInitError needs at least one (path, message)")
        super().__init__(format_errors(self.errors))

    def __reduce__(self):  # pickles (e.g. across a provider process) keep the pairs
        return (type(self), (self.errors,))


def format_errors(errors) -> str:
    """Render ``(path, message)`` pairs as one readable block."""
    count = len(errors)
    lines = [f"{count} cloud-init error{'s' if count != 1 else ''}:"]
    lines += [f"  {path}: {message}" for path, message in errors]
    return "\n".join(lines)


@dataclass(frozen=True)
class SeedDocuments:
    """The three NoCloud documents, as the guest will read them."""

    user_data: str
    meta_data: str
    network_config: str


# Functions are exported lazily (PEP 562): submodules import the names above,
# and ``python -m components.cloudinit.schema`` must not find itself pre-imported.
_EXPORTS = {
    "TEMPLATES_DIR": "render",
    "available_profiles": "render",
    "render_seed": "render",
    "ensure_schema": "schema",
    "validate_user_data": "schema",
    "nocloud_iso": "seed",
    "hash_password": "passwords",
    "verify_password": "passwords",
}

__all__ = ["CloudInitError", "SeedDocuments", "format_errors", *_EXPORTS]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
