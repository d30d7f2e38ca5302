"""Which stack a libvirt object belongs to, so that no stack adopts, refreshes or deletes another's.

Two records say it, and either one is enough to make an object a stack's:
- the object's own vdesk <metadata> (domains, containers, networks), written when vdesk creates it;
- the creation journal ($VDESK_STATE/journal/<stack>/), which vdesk's create and adopt write for every object
  (pools, volumes and seeds too, where libvirt keeps no metadata).
Neither can be written from a stack file: metadata names the stack that runs (pulumi.get_stack()), and
the journal is written under that same name, in the runner's state directory.
"""
from __future__ import annotations

import logging

import libvirt

from .. import xmlmodel
from ..xmlmodel.container import Container
from ..host.connection import connect, lookup
from ..errors import VdeskError
from . import journal

log = logging.getLogger(__name__)

_METADATA_KINDS = ("domain", "container", "network")


def metadata_owner(conn, kind: str, name: str) -> tuple[str, str] | None:
    """(stack, project) named in an object's vdesk metadata, or None (no such object, or not vdesk's);
    the project is "" when the metadata predates it."""
    if kind in ("domain", "container"):
        dom = lookup(conn.lookupByName, name)
        if dom is None:
            return None
        model = (xmlmodel.Domain if kind == "domain" else Container).from_xml(dom.XMLDesc(0))
    elif kind == "network":
        net = lookup(conn.networkLookupByName, name)
        if net is None:
            return None
        model = xmlmodel.Network.from_xml(net.XMLDesc(0))
    else:
        return None
    if model.owner is None or not model.owner.stack:
        return None
    return model.owner.stack, model.owner.project or ""


def exists(conn, kind: str, name: str) -> bool:
    """Whether the object is on the host (`name` is pool/volume for volumes and seeds)."""
    if kind in ("domain", "container"):
        return lookup(conn.lookupByName, name) is not None
    if kind == "network":
        return lookup(conn.networkLookupByName, name) is not None
    if kind == "pool":
        return lookup(conn.storagePoolLookupByName, name) is not None
    pool_name, _, volume = name.partition("/")
    pool = lookup(conn.storagePoolLookupByName, pool_name)
    return pool is not None and bool(pool.isActive()) and lookup(pool.storageVolLookupByName, volume) is not None


def owners(uri: str, kind: str, name: str, *, project: str = "", conn=None) -> list[str]:
    """Every stack that owns the object (`name` is pool/volume for volumes and seeds); empty: no stack.

    A stack of another Pulumi project (where both projects are known) is named "<project>/<stack>": it is
    not this project's stack of the same name."""
    found = set(journal.owners(kind, uri, name))
    if kind in _METADATA_KINDS:
        if conn is None:
            with connect(uri) as own:
                meta = metadata_owner(own, kind, name)
        else:
            meta = metadata_owner(conn, kind, name)
        if meta:
            stack, theirs = meta
            found.add(stack if not project or not theirs or theirs == project else f"{theirs}/{stack}")
    return sorted(found)


def others(uri: str, kind: str, name: str, stack: str, *, project: str = "", conn=None) -> list[str]:
    """The stacks other than `stack` (of `project`) that own the object."""
    return [s for s in owners(uri, kind, name, project=project, conn=conn) if s != stack]


def refusal(kind: str, name: str, theirs: list[str]) -> str:
    """Why an object of another stack is not this one's to take or remove."""
    return (f"{kind} {name!r} belongs to stack {', '.join(repr(s) for s in theirs)}; a stack never adopts, "
            "changes or removes another stack's objects")


def safe_others(uri: str, kind: str, name: str, stack: str, project: str = "") -> list[str]:
    """others(), or [] when the host cannot be asked (the create or delete that follows then says why)."""
    try:
        return others(uri, kind, name, stack, project=project)
    except (libvirt.libvirtError, VdeskError, OSError) as exc:
        log.info("owner of %s %r not known: %s", kind, name, exc)
        return []


def stack_problems(stack: str, config, hosts, project: str = "") -> list[tuple[str, str]]:
    """At preview: every object the stack would make or adopt that another stack owns, named by the field
    that asks for it (`pools.main.adopt`, `users[0].adopt`) or, for a name made from the prefix, `vdesk:prefix`.

    `config` is the validated StackConfig, `hosts` its hosts resolved (a host that cannot be reached is not
    asked: what is on it fails at `up`, where the providers check again)."""
    wanted = []       # (field, uri, kind, libvirt name)

    def want(adopt, uri: str | None, kind: str, name: str, adopt_field: str) -> None:
        if uri:
            wanted.append((adopt_field if adopt else "vdesk:prefix", uri, kind, name))

    def reachable(host: str) -> str | None:
        h = hosts.get(host)
        return None if h is None or h.unreachable else h.uri

    pool_names = {}
    for name, p in config.pools.items():
        pool_names[name] = p.libvirt_name or f"{config.prefix}-{name}"
        for h in p.hosts or (p.host,):
            want(p.adopt, reachable(h), "pool", pool_names[name], f"pools.{name}.adopt")
    for name, n in config.networks.items():
        for h in n.hosts or (n.host,):
            want(n.adopt, reachable(h), "network", n.libvirt_name or f"{config.prefix}-{name}",
                 f"networks.{name}.adopt")
    for d in config.desktops.values():
        vm, uri, pool = f"{config.prefix}-{d.name}", reachable(d.host), pool_names.get(d.pool)
        want(d.adopt, uri, "domain", vm, d.field("adopt"))
        if pool:
            want(d.adopt, uri, "volume", f"{pool}/{vm}.qcow2", d.field("adopt"))
            want(d.adopt, uri, "seed", f"{pool}/{vm}-seed.iso", d.field("adopt"))
    for name, c in config.containers.items():
        h = hosts.get(c.host)
        if h is not None and not h.unreachable and h.lxc_uri:
            want(False, h.lxc_uri, "container", f"{config.prefix}-{name}", "vdesk:prefix")
    problems = []
    for uri in dict.fromkeys(u for _, u, _, _ in wanted):
        try:
            with connect(uri) as conn:
                found = [(field, kind, name, others(uri, kind, name, stack, project=project, conn=conn))
                         for field, u, kind, name in wanted if u == uri and exists(conn, kind, name)]
        except (libvirt.libvirtError, VdeskError) as exc:
            log.info("owners on %s not known at preview: %s", uri, exc)
            continue
        problems += _worded(found, config.prefix)
    return list(dict.fromkeys(problems))


def _worded(found, prefix: str) -> list[tuple[str, str]]:
    problems = []
    for field, kind, name, theirs in found:
        if theirs:
            shown = name.split("/", 1)[-1]
            if field == "vdesk:prefix":
                problems.append((field, f"{prefix!r} makes the name of {kind} {shown!r}, which belongs to "
                                        f"stack {', '.join(repr(s) for s in theirs)}: choose a prefix of this "
                                        "stack's own"))
            else:
                problems.append((field, refusal(kind, shown, theirs)))
    return list(dict.fromkeys(problems))
