"""`pulumi import` for vdesk's dynamic providers.

Pulumi's engine imports by calling Read with an id and no state. A dynamic
provider's server finds its provider *in* that state, so on its own it cannot
serve an import. vdesk's import ids therefore name the provider:

    vdesk:pool:<name>@<libvirt URI>
    vdesk:network:<name>@<libvirt URI>
    vdesk:volume:<pool>/<name>@<libvirt URI>
    vdesk:domain:<name>@<libvirt URI>

e.g. `pulumi import pulumi-python:dynamic:Resource network-lan
'vdesk:network:dev-lan@qemu:///system' --generate-code=false`. The object is
read as it is, and its inputs become the state; the program's next `up` shows
(and applies in place) whatever differs from the declaration. The `adopt`
setting does the same from stack config, without the CLI.
"""
from __future__ import annotations

import dataclasses
import logging

import libvirt

from .. import xmlmodel
from ..host.connection import connect, lookup
from . import ownership
from .domain import DomainProvider
from ..errors import VdeskError
from .network import NetworkProvider
from .pool import PoolProvider
from .provider import DeclaredProvider
from .volume import VolumeProvider, find_volume

log = logging.getLogger(__name__)
PREFIX = "vdesk:"
PROVIDERS: dict[str, type[DeclaredProvider]] = {
    "pool": PoolProvider, "network": NetworkProvider, "volume": VolumeProvider, "domain": DomainProvider,
}
FORMS = ", ".join(f"{PREFIX}{kind}:{'<pool>/' if kind == 'volume' else ''}<name>@<libvirt URI>"
                  for kind in PROVIDERS)


@dataclasses.dataclass(frozen=True)
class Imported:
    id: str
    inputs: dict
    outputs: dict
    provider: DeclaredProvider


def is_import_id(id_: str) -> bool:
    return id_.startswith(PREFIX)


def parse(id_: str) -> tuple[str, dict]:
    """(kind, identity properties) of an import id; raises VdeskError showing the accepted forms."""
    kind, _, rest = id_.removeprefix(PREFIX).partition(":")
    name, at, uri = rest.partition("@")
    if kind not in PROVIDERS or not at or not name or "://" not in uri:
        raise VdeskError(f"{id_!r} is not a vdesk import id; use one of: {FORMS}")
    if kind == "volume":
        pool, slash, name = name.partition("/")
        if not slash or not pool or not name:
            raise VdeskError(f"{id_!r}: a volume is named <pool>/<name>")
        return kind, {"host_uri": uri, "pool": pool, "name": name}
    return kind, {"host_uri": uri, "name": name}


def _as_found(kind: str, props: dict) -> dict:
    """Properties that read() takes from the declaration but an import must take from the object."""
    with connect(props["host_uri"]) as conn:
        if kind == "domain":
            dom = lookup(conn.lookupByName, props["name"])
            if dom:
                live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                boot = "kernel" if live.kernel else "uefi" if live.firmware == "efi" else "bios"
                secure = live.loader_secure or any(f.name == "secure-boot" and f.enabled
                                                   for f in live.firmware_features)
                return {"boot": boot, "max_vcpus": live.vcpus if live.vcpu_current else None,
                        "secure_boot": True if secure else None, "tpm": True if live.tpms else None}
        if kind == "volume":
            vol = find_volume(conn, props["pool"], props["name"])
            if vol:
                live = xmlmodel.Volume.from_xml(vol.XMLDesc(0))
                return {"format": live.format, "capacity_bytes": live.capacity,
                        "backing_path": live.backing_path,
                        "backing_format": live.backing_format if live.backing_path else None}
    return {}


class OwnedElsewhere(VdeskError):
    """The object an import names belongs to another stack: importing it would take it over."""


def urn_stack(urn: str) -> tuple[str, str]:
    """(stack, project) of a resource URN, urn:pulumi:<stack>::<project>::<type>::<name>; ("", "") if not one."""
    head, _, rest = urn.partition("::")
    project = rest.split("::", 1)[0] if rest else ""
    return (head.removeprefix("urn:pulumi:"), project) if head.startswith("urn:pulumi:") else ("", "")


def read_for_import(id_: str, *, stack: str = "", project: str = "") -> Imported | None:
    """The object an import id names, as inputs and outputs of its provider; None when it does not exist.

    Importing is adopting by the CLI: an object another stack owns (its metadata, or that stack's creation
    journal) is refused, as `adopt` refuses it at preview. `stack`: the importing stack, from the URN."""
    kind, identity = parse(id_)
    provider = PROVIDERS[kind]()
    defaults = {name: prop.default for name, prop in provider.PROPS.items() if prop.default is not None}
    props = {**defaults, **_as_found(kind, identity), **identity}
    real_id = provider.existing_id(props)
    if real_id is None:
        return None
    theirs = ownership.others(identity["host_uri"], provider.owner_kind(), provider.journal_name(props),
                              stack, project=project)
    if theirs:
        raise OwnedElsewhere(f"cannot import {id_!r}: " + ownership.refusal(kind, identity["name"], theirs))
    outputs = provider.read(real_id, props).outs
    inputs = {name: outputs[name] for name in provider.PROPS if outputs.get(name) is not None}
    log.info("importing %s %r as %s", kind, identity["name"], real_id)
    return Imported(real_id, inputs, outputs, provider)
