"""One Kubernetes object as a Pulumi dynamic resource, through the official client.

Create and update are server-side applies under vdesk's field manager, so a changed field (a
VirtualMachine's memory) is patched in place; check runs the same apply as a server-side dry run, so
the cluster's own validation (CRD schemas, admission) speaks at preview, and components.kubevirt.preflight
adds what no dry run checks (the storage class, the namespace's memory quota). Stateless: every
method opens its own client from the kubeconfig named in its inputs."""
from __future__ import annotations

import json
import logging
import re

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult
from pydantic import BaseModel, ConfigDict

from . import preflight
from ..errors import VdeskError
from ..resources.provider import ADOPT, DeclaredProvider, Prop, _is_unknown, _normal, declared, has_unknown

log = logging.getLogger(__name__)

FIELD_MANAGER = "vdesk"
# A value of the wrong type fails server-side apply before validation, as one message naming the field:
# "failed to create typed patch object (...): .spec.x.y: expected numeric (int or float), got string".
_TYPED_PATCH_ERROR = re.compile(r"typed patch object \([^)]*\): (?P<field>(?:\.[^.:\s]+)+): (?P<message>.+)$")


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str
    namespace: str | None = None


class Manifest(BaseModel):
    """What the provider needs of any object to apply it: what it is and its name (the rest is the server's to
    judge, at preview, by a dry run)."""
    model_config = ConfigDict(extra="allow", strict=True)
    apiVersion: str
    kind: str
    metadata: _Metadata


def identity(manifest: dict) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): what the object is; a change of any one is a new object."""
    metadata = manifest["metadata"]
    return manifest["apiVersion"], manifest["kind"], metadata.get("namespace", ""), metadata["name"]


def object_id(manifest: dict) -> str:
    return "/".join(part for part in identity(manifest) if part)


def projected(live, desired):
    """The part of the live object that the declaration speaks about: the server's defaults and status
    are left out, so only a change to a declared field shows as drift."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {key: projected(live[key], value) for key, value in desired.items() if key in live}
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [projected(have, want) for have, want in zip(live, desired)]
    return live


class KubeObjectProvider(DeclaredProvider):
    """Server-side apply of one manifest; read reports what the cluster holds of the declared fields."""

    PROPS = {
        "kubeconfig": Prop(str, required=True, replaces=True, doc="path of the kubeconfig file to reach the cluster"),
        "context": Prop(str, default="", replaces=True, doc="its context (empty: the current one)"),
        "manifest": declared(Manifest, required=True,
                             doc="the object; its apiVersion, kind, namespace or name changing replaces it"),
        "adopt": ADOPT,
    }
    OUTPUTS = ("uid",)

    # -- connection -------------------------------------------------------------------
    @staticmethod
    def _api_client(props: dict):
        from kubernetes import config
        return config.new_client_from_config(config_file=props["kubeconfig"], context=props.get("context") or None)

    def _resource(self, props: dict):
        """(dynamic client, resource API) for the manifest's kind; the caller closes the client."""
        from kubernetes import dynamic
        client = dynamic.DynamicClient(self._api_client(props))
        manifest = props["manifest"]
        return client, client.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])

    def _apply(self, props: dict, dry_run: bool = False) -> dict:
        client, resource = self._resource(props)
        try:
            manifest = props["manifest"]
            live = client.server_side_apply(
                resource, body=manifest, name=manifest["metadata"]["name"],
                namespace=manifest["metadata"].get("namespace"), field_manager=FIELD_MANAGER,
                force_conflicts=True, **({"dry_run": "All"} if dry_run else {}))
            return live.to_dict()
        finally:
            client.client.close()

    # -- check: the cluster's own validation at preview --------------------------------
    def check_more(self, inputs: dict) -> list[tuple[str, str]]:
        manifest = inputs.get("manifest")
        if not isinstance(manifest, dict) or self.PROPS["manifest"].validate(manifest) \
                or not isinstance(inputs.get("kubeconfig"), str):
            return []        # the property check above has said what is wrong
        if any(_is_unknown(value) for value in inputs.values()) or has_unknown(manifest):
            return []        # depends on something not made yet; create() meets the server's word
        props = {**inputs, "manifest": _normal(manifest)}
        from kubernetes.client.rest import ApiException
        from kubernetes.config import ConfigException
        from urllib3.exceptions import HTTPError
        try:
            return self._preflight_problems(props) + self._dry_run_refusals(props)
        except (ConfigException, OSError, HTTPError) as err:
            return [("kubeconfig", f"cannot reach the cluster of {inputs['kubeconfig']}: {err}")]
        except ApiException as err:      # a preview query refused (e.g. RBAC): the check cannot be made
            return [("kubeconfig", f"the cluster of {inputs['kubeconfig']} refused a preview query: "
                                   f"HTTP {err.status} {err.reason}")]

    def _preflight_problems(self, props: dict, checks=preflight.CHECKS) -> list[tuple[str, str]]:
        api_client = self._api_client(props)
        try:
            return [problem for check in checks for problem in check(api_client, props["manifest"])]
        finally:
            api_client.close()

    def _dry_run_refusals(self, props: dict) -> list[tuple[str, str]]:
        from kubernetes.client.rest import ApiException
        try:
            self._apply(props, dry_run=True)
        except ApiException as err:
            return _refusal(err)
        return []

    # -- CRUD --------------------------------------------------------------------------
    def existing_id(self, props: dict) -> str | None:
        from kubernetes.client.rest import ApiException
        client, resource = self._resource(props)
        manifest = props["manifest"]
        try:
            client.get(resource, name=manifest["metadata"]["name"], namespace=manifest["metadata"].get("namespace"))
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        finally:
            client.client.close()
        return object_id(manifest)

    def create(self, props):
        if self.existing_id(props) is not None:     # an apply would silently take over someone else's object
            raise VdeskError(f"{object_id(props['manifest'])} already exists; declare adopt: true to take it over")
        live = self._apply(props)
        log.info("created %s", object_id(props["manifest"]))
        return CreateResult(object_id(props["manifest"]), {**props, "uid": live["metadata"]["uid"]})

    def read(self, id_, props):
        from kubernetes.client.rest import ApiException
        client, resource = self._resource(props)
        try:
            manifest = props["manifest"]
            live = client.get(resource, name=manifest["metadata"]["name"],
                              namespace=manifest["metadata"].get("namespace")).to_dict()
        except ApiException as err:
            if err.status == 404:
                return ReadResult("", {})      # gone: the engine plans to make it again
            raise
        finally:
            client.client.close()
        return ReadResult(id_, {**props, "manifest": projected(live, manifest), "uid": live["metadata"]["uid"]})

    def update(self, _id, _olds, news):
        live = self._apply(news)
        return UpdateResult({**news, "uid": live["metadata"]["uid"]})

    def delete(self, _id, props):
        from kubernetes.client.rest import ApiException
        client, resource = self._resource(props)
        manifest = props["manifest"]
        try:
            client.delete(resource, name=manifest["metadata"]["name"],
                          namespace=manifest["metadata"].get("namespace"),
                          body={"propagationPolicy": "Background"})
        except ApiException as err:
            if err.status != 404:             # already gone is what delete wants
                raise
        finally:
            client.client.close()

    def diff(self, _id, olds, news):
        changed = [name for name, prop in self.PROPS.items()
                   if not prop.inert and _normal(olds.get(name)) != _normal(news.get(name))]
        replaces = [name for name in ("kubeconfig", "context") if name in changed]
        old_manifest, new_manifest = olds.get("manifest"), news.get("manifest")
        if "manifest" in changed and isinstance(old_manifest, dict) and isinstance(new_manifest, dict) \
                and not self.PROPS["manifest"].validate(old_manifest) \
                and identity(old_manifest) != identity(new_manifest):
            replaces.append("manifest")
        return DiffResult(changes=bool(changed), replaces=replaces,
                          stables=[name for name in self.PROPS if name not in changed and name not in replaces],
                          delete_before_replace=bool(replaces))


def _refusal(err) -> list[tuple[str, str]]:
    """The server's refusal as (property path, message) pairs: one per field it names."""
    try:
        status = json.loads(err.body)
    except (TypeError, ValueError):
        return [("manifest", f"the cluster refused it: HTTP {err.status} {err.reason}")]
    causes = (status.get("details") or {}).get("causes") or []
    message = status.get("message") or f"HTTP {err.status}"
    if not causes and (typed := _TYPED_PATCH_ERROR.search(message)):
        return [(f"manifest{typed['field']}", typed["message"])]
    if not causes:
        return [("manifest", message)]
    return [(f"manifest.{cause['field']}" if cause.get("field") else "manifest",
             cause.get("message", status.get("message", ""))) for cause in causes]


class KubeObject(Resource):
    """One Kubernetes object; a Secret's manifest (it holds the guest's host key) is secret in state."""

    uid: pulumi.Output[str]
    manifest: pulumi.Output[dict]

    def __init__(self, name: str, *, kubeconfig, manifest, kind: str, context="", adopt=False, opts=None):
        if kind == "Secret":
            manifest = pulumi.Output.secret(manifest)
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["manifest"]))
        super().__init__(KubeObjectProvider(), name, {
            "kubeconfig": kubeconfig, "context": context, "manifest": manifest, "adopt": adopt,
            **dict.fromkeys(KubeObjectProvider.OUTPUTS)}, opts)
