"""A host of kind `kubevirt` as written: a namespace of a KubeVirt cluster, reached through a kubeconfig.

Its settings sit beside a libvirt host's in stackfile.Host (one `hosts:` section, one kind of entry);
resolve_kubevirt.py checks that each kind is given only its own.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..desktop.settings import Settings, Wording, _rule
from ..names import name_problem

LIBVIRT, KUBEVIRT = "libvirt", "kubevirt"
HOST_KINDS = (LIBVIRT, KUBEVIRT)
# What a kubevirt host takes; the rest of a host's settings are a libvirt host's.
KUBEVIRT_SETTINGS = ("kubeconfig", "context", "namespace", "storage_class", "images")
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Kubeconfig = Annotated[str, Field(pattern="^/"), Wording(invalid="{input} must be the absolute path of a kubeconfig "
                                                                 "file")]
Namespace = Annotated[str, _rule(name_problem), Wording(expected="a namespace name, got {got}")]
StorageClassName = Annotated[str, Field(pattern=_DNS_SUBDOMAIN, max_length=253),
                             Wording(invalid="{input} is not a storage class name (lowercase letters, digits, "
                                             "'-' and '.')")]
ImageUrl = Annotated[str, Field(pattern=r"^https?://[^\s]+$"),
                     Wording(invalid="{input} must be an http:// or https:// URL of a disk image")]
DataSourceName = Annotated[str, Field(pattern=r"^([a-z0-9][-a-z0-9]*/)?[a-z0-9][-a-z0-9.]*$"),
                           Wording(invalid="{input} must name a CDI DataSource as <namespace>/<name> or <name>")]


class KubevirtImage(Settings):
    """Where a kubevirt host's CDI takes one of the stack's images from: a URL, or the administrator's DataSource."""
    noun: ClassVar[str] = "image source"
    url: ImageUrl | None = Field(None, description="A cloud image that CDI imports into each desktop's DataVolume.")
    data_source: DataSourceName | None = Field(
        None, description="A CDI DataSource (<namespace>/<name>, default namespace: the host's) each desktop's "
                          "DataVolume is cloned from.")


class HostKind(Settings):
    """The settings of a host that say which kind it is and, for a KubeVirt cluster, how to reach it."""
    kind: Literal[HOST_KINDS] = Field(LIBVIRT, description="libvirt (a KVM host, by `uri`), or kubevirt (a "
                                                           "namespace of a KubeVirt cluster, by `kubeconfig`).")
    kubeconfig: Kubeconfig | None = Field(None, description="kubevirt: the kubeconfig file that reaches the "
                                                            "cluster.")
    context: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="kubevirt: its context (default: the file's current context).")
    namespace: Namespace | None = Field(None, description="kubevirt: the namespace the desktops' objects go in (it "
                                                          "must exist).")
    storage_class: StorageClassName | None = Field(
        None, description="kubevirt: the storage class of the desktops' disks and homes (default: the "
                          "cluster's default class).")
    images: dict[Annotated[str, _rule(name_problem)], KubevirtImage] = Field(
        {}, description="kubevirt: for each image of the stack its desktops use, where CDI takes it from.")

    @model_validator(mode="after")
    def _no_libvirt_uri(self):
        """A cluster is reached by its kubeconfig: a kubevirt host keeps no libvirt URI (not the default
        `embedded`), so whatever reads the stack file judges the cluster, never a libvirtd it does not reach."""
        if self.kind == KUBEVIRT and "uri" in type(self).model_fields and "uri" not in self.model_fields_set:
            self.__dict__["uri"] = None       # (as written: not an assignment, which would mark it set)
        return self
