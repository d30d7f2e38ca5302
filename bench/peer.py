"""The peer: kcli's `create plan` / `delete plan` of the same N stopped VMs, on the same host, in the same run.

kcli (PyPI, in a venv of its own: tools/kcli-venv.sh) drives the bench's
embedded host through a client config `url: <host uri>` in a HOME of the
bench's own, so the user's ~/.kcli is never read or written.  Its plan
declares what vdesk's stack declares: a dir pool, a NAT network with DHCP, the
golden disk as an image in that pool, and N VMs that are linked clones of it
with a cloud-init ISO each, defined and not started.

`create` is `kcli create plan`; `delete` is `kcli delete plan` and then
removing what that leaves (the pool with the image in it, and the network if
the plan's delete left it: vdesk's destroy and the floor's remove those too),
each with kcli's own commands.  The host's
libvirt objects are listed before and after: anything kcli leaves is a leak,
reported as a failure (and swept so that the next measurement starts clean).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree

import libvirt
import yaml

REPO = Path(__file__).resolve().parents[1]
KCLI_VENV = REPO / "tools" / "kcli-venv.sh"
CLIENT = "bench"
PREFIX = "kcli"
IMAGE = f"{PREFIX}-image.qcow2"
TIMEOUT_S = 1800


def install() -> Path:
    """kcli's executable (installed on first use; cached per user)."""
    out = subprocess.run([str(KCLI_VENV)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def version(kcli: Path, env: dict) -> str:
    """`kcli version`'s own line, without the update check it appends (no reachable release feed here)."""
    out = subprocess.run([str(kcli), "version"], env=env, capture_output=True, text=True)
    return parse_version(out.stdout or out.stderr)


def parse_version(text: str) -> str:
    """'version: 99.0 commit: ec5eb9c 2026/10/25 Available Updates: N/A' -> 'kcli 99.0 commit ec5eb9c 2026/10/25'."""
    words = " ".join(text.split()).split(" Available Updates")[0]
    return "kcli " + words.replace("version: ", "", 1).replace("commit: ", "commit ", 1) if words else "kcli ?"


@dataclasses.dataclass(frozen=True)
class PeerPlan:
    """kcli's plan for n VMs, and the names it declares (for the leak check and the sweep)."""

    name: str
    text: str
    pool: str
    pool_path: str
    network: str
    vms: tuple[str, ...]


def plan(n: int, *, disk: str, pool_root: str, cidr: str, memory_mib: int, vcpus: int, disk_gib: int,
         name: str = "bench") -> PeerPlan:
    """The plan file's text: pool, network, image, then n stopped VMs (linked clones with a cloud-init ISO)."""
    pool, network = f"{PREFIX}-main", f"{PREFIX}-lan"
    pool_path = os.path.join(pool_root, pool)
    vms = tuple(f"{PREFIX}-d{i:02d}" for i in range(n))
    entries: dict = {
        network: {"type": "network", "cidr": cidr, "dhcp": True, "nat": True},
        pool: {"type": "pool", "path": pool_path},
        IMAGE: {"type": "image", "url": f"file://{disk}", "pool": pool},
    }
    for vm in vms:
        entries[vm] = {"image": IMAGE, "pool": pool, "nets": [network], "memory": memory_mib, "numcpus": vcpus,
                       "disks": [disk_gib], "start": False, "cloudinit": True}
    return PeerPlan(name, yaml.safe_dump(entries, sort_keys=False), pool, pool_path, network, vms)


def client_config(uri: str, pool: str) -> str:
    """~/.kcli/config.yml for one client: the bench's host, by its URI."""
    return yaml.safe_dump({"default": {"client": CLIENT}, CLIENT: {"type": "kvm", "url": uri, "pool": pool}},
                          sort_keys=False)


def shape_problems(conn, pp: PeerPlan) -> list[str]:
    """What of pp's VMs is not what vdesk makes: a defined, stopped domain on a linked clone of the image,
    with a cloud-init ISO.  Empty when every VM is."""
    problems = []
    for vm in pp.vms:
        try:
            dom = conn.lookupByName(vm)
        except libvirt.libvirtError:
            problems.append(f"{vm}: not defined")
            continue
        if dom.isActive():
            problems.append(f"{vm}: running (declared stopped)")
        root = ElementTree.fromstring(dom.XMLDesc(0))
        disks = root.findall("./devices/disk")
        backing = [d.find("./backingStore/source") for d in disks if d.get("device") == "disk"]
        if not any(b is not None and b.get("file", "").endswith(f"/{IMAGE}") for b in backing):
            problems.append(f"{vm}: no disk backed by {IMAGE}")
        if not any((d.find("./source") is not None and d.find("./source").get("file", "").lower().endswith(".iso"))
                   for d in disks if d.get("device") == "cdrom"):
            problems.append(f"{vm}: no cloud-init ISO")
    return problems


def inventory(uri: str) -> dict[str, list[str]]:
    """Every libvirt object on the host, by kind (volumes as pool/name), sorted."""
    with contextlib.closing(libvirt.open(uri)) as conn:
        vols = []
        for p in conn.listAllStoragePools(0):
            if p.isActive():
                with contextlib.suppress(libvirt.libvirtError):
                    p.refresh(0)
                vols += [f"{p.name()}/{v.name()}" for v in p.listAllVolumes(0)]
        return {"domains": sorted(d.name() for d in conn.listAllDomains(0)),
                "networks": sorted(x.name() for x in conn.listAllNetworks(0)),
                "pools": sorted(x.name() for x in conn.listAllStoragePools(0)),
                "volumes": sorted(vols)}


def leaks(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, list[str]]:
    """What is in `after` and was not in `before`, by kind (kinds with nothing new left out)."""
    return {kind: sorted(set(after.get(kind, [])) - set(names)) for kind, names in before.items()
            if set(after.get(kind, [])) - set(names)}


def sweep(uri: str, pp: PeerPlan) -> None:
    """Remove whatever of pp's objects is still on the host (after a failed or leaky run)."""
    with contextlib.closing(libvirt.open(uri)) as conn:
        for vm in pp.vms:
            with contextlib.suppress(libvirt.libvirtError):
                dom = conn.lookupByName(vm)
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                dom.undefine()
        with contextlib.suppress(libvirt.libvirtError):
            net = conn.networkLookupByName(pp.network)
            with contextlib.suppress(libvirt.libvirtError):
                net.destroy()
            net.undefine()
        with contextlib.suppress(libvirt.libvirtError):
            pool = conn.storagePoolLookupByName(pp.pool)
            with contextlib.suppress(libvirt.libvirtError):
                pool.refresh(0)
                for vol in pool.listAllVolumes(0):
                    vol.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.delete(0)
            pool.undefine()
    shutil.rmtree(pp.pool_path, ignore_errors=True)


@dataclasses.dataclass
class Step:
    argv: list[str]
    seconds: float
    rc: int
    output_tail: str


@dataclasses.dataclass
class PeerRound:
    create_s: float | None
    delete_s: float | None
    steps: list[Step]
    domains_after_create: int
    leaked: dict[str, list[str]]
    failures: list[str]


class Kcli:
    """kcli with a HOME of its own (in the bench's state root, removed with it) whose config points at one host."""

    def __init__(self, kcli: Path, uri: str, pp: PeerPlan, *, home: Path, logs: Path):
        self.kcli, self.uri, self.pp = kcli, uri, pp
        self.home = home
        (self.home / ".kcli").mkdir(parents=True, exist_ok=True)
        (self.home / ".kcli" / "config.yml").write_text(client_config(uri, pp.pool))
        self.plan_file = self.home / "kcli_plan.yml"
        self.plan_file.write_text(pp.text)
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("KCLI", "PULUMI_", "VIRTUAL_ENV"))},
                    "HOME": str(self.home)}

    def step(self, label: str, *args: str) -> Step:
        argv = [str(self.kcli), *args]
        log = self.logs / f"kcli-{self.pp.name}-{label}.log"
        with open(log, "w") as out:
            started = time.perf_counter()
            proc = subprocess.run(argv, env=self.env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=TIMEOUT_S)
            seconds = time.perf_counter() - started
        return Step(argv[1:], round(seconds, 3), proc.returncode, log.read_text(errors="replace")[-1500:])

    def round(self) -> PeerRound:
        """One timed round: create plan, count domains (untimed), delete plan and what it leaves; leak check."""
        failures: list[str] = []
        before = inventory(self.uri)
        create = self.step("create", "create", "plan", "-f", str(self.plan_file), self.pp.name)
        created = inventory(self.uri)
        domains = sum(1 for d in created["domains"] if d in self.pp.vms)
        if create.rc != 0 or domains != len(self.pp.vms):
            failures.append(f"kcli create plan: rc {create.rc}, {domains} of {len(self.pp.vms)} VMs defined: "
                            f"{create.output_tail[-600:]}")
        else:
            with contextlib.closing(libvirt.open(self.uri)) as conn:
                problems = shape_problems(conn, self.pp)
            if problems:
                failures.append(f"kcli made other VMs than vdesk: {'; '.join(problems[:5])}")
        steps = [create,
                 self.step("delete", "delete", "plan", "--yes", self.pp.name),
                 self.step("delete-pool", "delete", "pool", "--yes", "--full", self.pp.pool)]
        left = inventory(self.uri)
        if self.pp.network in left["networks"]:       # the plan's delete removes it; if not, kcli's own command
            steps.append(self.step("delete-network", "delete", "network", "--yes", self.pp.network))
            left = inventory(self.uri)
        failures += [f"kcli {' '.join(s.argv[:2])}: rc {s.rc}: {s.output_tail[-400:]}" for s in steps[1:] if s.rc]
        leaked = leaks(before, left)
        if os.path.isdir(self.pp.pool_path) and os.listdir(self.pp.pool_path):
            leaked["files"] = sorted(os.listdir(self.pp.pool_path))
        if leaked:
            failures.append(f"kcli left on the host: {leaked}")
            sweep(self.uri, self.pp)
        ok = not failures
        return PeerRound(create.seconds if create.rc == 0 else None,
                         round(sum(s.seconds for s in steps[1:]), 3) if ok else None,
                         steps, domains, leaked, failures)


def summary(rounds: list[PeerRound], kcli_version: str) -> dict:
    """The JSON entry of kcli's rounds at one N: medians of the clean rounds, and every round's steps."""
    clean = [r for r in rounds if not r.failures]
    return {
        "create": round(statistics.median(r.create_s for r in clean), 3) if clean else None,
        "delete": round(statistics.median(r.delete_s for r in clean), 3) if clean else None,
        "rounds": [{"create": r.create_s, "delete": r.delete_s,
                    "steps": {" ".join(s.argv[:2]): s.seconds for s in r.steps}, "leaked": r.leaked}
                   for r in rounds],
        "version": kcli_version,
    }
