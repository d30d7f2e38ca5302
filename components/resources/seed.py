"""CloudInitSeed: rendered NoCloud documents stored as an ISO volume in the pool.

The seed lives in the pool, never in a temp file that vanishes, and it is built
deterministically, so an unchanged declaration never rewrites or replaces it.
"""
from __future__ import annotations

import hashlib

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..cloudinit import SeedDocuments, nocloud_iso
from ..host.connection import connect, lookup
from ..errors import VdeskError
from .provider import ADOPT, OWNER, DeclaredProvider, Prop
from .volume import _volume_name_problem, find_volume, upload_bytes


def _iso(props) -> bytes:
    return nocloud_iso(SeedDocuments(props["user_data"], props["meta_data"], props["network_config"]))


class SeedProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True),
        "pool": Prop(str, required=True, replaces=True),
        "name": Prop(str, required=True, replaces=True, validate=_volume_name_problem),
        "user_data": Prop(str, required=True, secret=True, doc="rewritten in place"),
        "meta_data": Prop(str, required=True),
        "network_config": Prop(str, required=True),
        "adopt": ADOPT,
        "owner": OWNER,
    }
    OUTPUTS = ("path", "sha256")
    JOURNAL_KIND = "seed"

    def journal_name(self, props):
        return f"{props['pool']}/{props['name']}"

    def create(self, props):
        data = _iso(props)
        with connect(props["host_uri"]) as conn:
            pool = conn.storagePoolLookupByName(props["pool"])
            if lookup(pool.storageVolLookupByName, props["name"]):
                raise VdeskError(f"seed volume {props['name']!r} already exists in pool {props['pool']!r}; "
                                 "set adopt: true to take it over, or choose another name")
            vol = pool.createXML(xmlmodel.Volume(name=props["name"], format="raw", capacity=len(data)).to_xml(), 0)
            try:
                upload_bytes(conn, vol, data)
            except Exception:
                vol.delete(0)
                raise
            return CreateResult(vol.key(), self._outputs(props, vol, data))

    def existing_id(self, props):
        with connect(props["host_uri"]) as conn:
            vol = find_volume(conn, props["pool"], props["name"])
            return vol.key() if vol else None

    def read(self, id_, props):
        with connect(props["host_uri"]) as conn:
            vol = find_volume(conn, props["pool"], props["name"])
            if not vol:
                return ReadResult("", {})
            return ReadResult(id_, {**props, "path": vol.path()})

    def update(self, _id, _olds, news):
        data = _iso(news)
        with connect(news["host_uri"]) as conn:
            vol = conn.storagePoolLookupByName(news["pool"]).storageVolLookupByName(news["name"])
            if xmlmodel.Volume.from_xml(vol.XMLDesc(0)).capacity < len(data):
                vol.resize(len(data), 0)
            upload_bytes(conn, vol, data)
            return UpdateResult(self._outputs(news, vol, data))

    def delete(self, _id, props):
        with connect(props["host_uri"]) as conn:
            vol = find_volume(conn, props["pool"], props["name"])
            if vol:
                vol.delete(0)

    def _outputs(self, props, vol, data):
        return {**self.inputs_of(props), "path": vol.path(), "sha256": hashlib.sha256(data).hexdigest()}


class CloudInitSeed(Resource):
    """A NoCloud seed (user-data, meta-data, network-config) as a volume."""

    path: pulumi.Output[str]

    def __init__(self, name: str, *, host_uri, pool, volume_name, user_data, meta_data, network_config,
                 adopt=False, opts=None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["user_data"]))
        super().__init__(SeedProvider(), name, {
            "host_uri": host_uri, "pool": pool, "name": volume_name, "user_data": user_data,
            "meta_data": meta_data, "network_config": network_config, "adopt": adopt, "owner": pulumi.get_stack(),
            **dict.fromkeys(SeedProvider.OUTPUTS),
        }, opts)
