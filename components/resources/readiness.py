"""GuestReady: the gate that makes `pulumi up` mean "the desktop works".

IP known (bounded wait) -> SSH with the pinned host key -> cloud-init done with
no errors. Any failure fails the update with one readable report.
"""
from __future__ import annotations

import logging

import libvirt
import pulumi
from pulumi.dynamic import Resource

from pathlib import Path

from ..host.connection import connect
from ..guest.checks import GuestHost
from ..guest.checkrun import report, run_checks
from ..guest.checkspec import parse_checks
from ..guest.screenshot import assert_usable, capture, wait_for_desktop
from ..errors import VdeskError
from ..guest import GuestError, HostKeyMismatch, console_log
from ..guest.address import wait_for_address
from ..guest.agent import explain_ssh
from ..guest.cloudinit_status import wait_for_cloud_init
from ..guest.lifecycle import GuestStopped, raise_if_stopped, why_stopped
from ..guest.jump import JumpHost
from ..guest.ssh import SshTarget
from ..guest.ssh import connect as ssh_connect
from . import faults
from ..kinds import Count, Timeouts   # (the stack file's timeouts are declared with these)
from .provider import GateProvider, Prop, declared

log = logging.getLogger(__name__)


_POSITIVE = "must be positive"
_WAITS = Timeouts()


class ReadinessProvider(GateProvider):
    PROPS = {
        "host_uri": Prop(str, required=True),
        "domain_name": Prop(str, required=True),
        "domain_uuid": Prop(str, required=True, doc="a new domain is checked again"),
        "mac": Prop(str, required=True),
        "address_sources": Prop(list, default=["lease", "agent"]),
        "netns": Prop(str, doc="network namespace the guests live in (embedded host)"),
        "jump": Prop(str, doc="user@host:port: a remote host's sshd, through which its guests are reached "
                              "(its key pinned in the runner's known_hosts)"),
        "user": Prop(str, required=True),
        "private_key": Prop(str, required=True, secret=True),
        "host_public_key": Prop(str, required=True),
        "seed_sha256": Prop(str, doc="a rewritten seed is checked again"),
        "domain_boot": Prop(str, doc="the domain's boot: a guest vdesk restarted (a new system disk) is checked "
                                     "again"),
        "checks": Prop(list, default=[], doc="declarative checks; a change re-runs the gate"),
        "screenshot_path": Prop(str, doc="where to save a PNG of the display, as proof it works"),
        "console_log_file": Prop(str, inert=True, doc="the domain's serial console log, quoted when the guest "
                                                      "never becomes reachable (embedded hosts)"),
        "graphical": Prop(bool, doc="a desktop image: the screenshot must show the graphical desktop"),
        "graphical_timeout_s": declared(Count, _POSITIVE, doc="how long to wait for the screen to show the "
                                                              f"desktop (default {_WAITS.graphical})"),
        "min_width": declared(Count, _POSITIVE, doc="the least display width a graphical desktop shows"),
        "min_height": declared(Count, _POSITIVE, doc="the least display height a graphical desktop shows"),
        "address_timeout_s": declared(Count, _POSITIVE, default=_WAITS.address),
        "ssh_timeout_s": declared(Count, _POSITIVE, default=_WAITS.ssh),
        "cloud_init_timeout_s": declared(Count, _POSITIVE, default=_WAITS.cloud_init),
    }
    OUTPUTS = ("ip", "cloud_init", "checks_passed", "screenshot")
    ID_PROP = "domain_uuid"

    def gate(self, props) -> dict:
        name = props["domain_name"]
        faults.point("ready")                   # the guest boots; the gate waits
        try:
            try:
                ip, status, outcomes = self._boot_to_ready(props)
            except GuestStopped as exc:
                if not exc.crashed:
                    raise
                # Its emulator died under it (QEMU under TCG has, on a loaded host): one more boot is what a
                # person would try first, and first boot resumes where it stopped. A second crash is reported.
                log.warning("desktop %s: %s; starting it again, once", name, exc.why)
                with connect(props["host_uri"]) as conn:
                    try:
                        conn.lookupByName(name).create()
                    except libvirt.libvirtError as again:
                        raise VdeskError(f"desktop {name!r} is not ready: {exc}; starting it again failed: "
                                         f"{again.get_error_message()}") from None
                ip, status, outcomes = self._boot_to_ready(props)
        except GuestError as exc:
            # A guest that stopped says why, and a wrong host key is not a boot problem; any other failure
            # (no address, no SSH) may have stopped inside the guest: quote what it last printed.
            said = "" if isinstance(exc, (GuestStopped, HostKeyMismatch)) else console_log.as_clause(
                props.get("console_log_file"))
            raise VdeskError(f"desktop {name!r} is not ready: {exc}{said}") from None
        if not all(o.passed for o in outcomes):
            raise VdeskError(report(name, outcomes))
        shot = None
        if props.get("screenshot_path"):
            with connect(props["host_uri"]) as conn:
                if props.get("graphical"):
                    # Its session may still be drawing: wait, with a deadline, for the desktop to show.
                    picture = wait_for_desktop(conn, name, Path(props["screenshot_path"]),
                                               timeout_s=props.get("graphical_timeout_s") or _WAITS.graphical,
                                               min_width=props.get("min_width") or 640,
                                               min_height=props.get("min_height") or 400)
                else:
                    picture = capture(conn, name, Path(props["screenshot_path"]))
            assert_usable(picture)
            shot = picture.path
        log.info("desktop %s ready at %s", name, ip)
        return {**self.inputs_of(props), "ip": ip, "cloud_init": status.state,
                "checks_passed": len(outcomes), "screenshot": shot}

    def _boot_to_ready(self, props) -> tuple:
        """Address, SSH with the pinned key, cloud-init, checks, sync: (ip, cloud-init status, check outcomes).

        A guest that stops on the way raises GuestStopped, with libvirt's reason, as soon as that is seen.
        """
        name, host_uri = props["domain_name"], props["host_uri"]
        try:
            with connect(host_uri) as conn:
                ip = wait_for_address(conn, name, props["mac"], sources=tuple(props["address_sources"]),
                                      timeout_s=props["address_timeout_s"])
            target = SshTarget(host=ip, user=props["user"], private_key=props["private_key"],
                               host_public_key=props["host_public_key"], netns=props.get("netns"),
                               jump=JumpHost.parse(props["jump"]) if props.get("jump") else None)
            with connect(host_uri) as conn:
                try:
                    session = ssh_connect(target, timeout_s=props["ssh_timeout_s"],
                                          still_booting=lambda: raise_if_stopped(conn, name))
                except (HostKeyMismatch, GuestStopped):
                    raise
                except GuestError as exc:
                    raise GuestError(f"{exc}{_guest_says(host_uri, name)}") from None
            with session:
                status = wait_for_cloud_init(session, timeout_s=props["cloud_init_timeout_s"])
                if not status.ok:
                    raise VdeskError(f"desktop {name!r} is not ready: {status.describe()}")
                outcomes = run_checks(GuestHost(session), parse_checks(props.get("checks") or [], "checks"))
                # First boot wrote users, keys and the rest; make them durable before "ready" is said,
                # so a power cut right after this cannot leave a desktop that no longer boots to sshd.
                session.run("sync", timeout_s=120)
        except (HostKeyMismatch, GuestStopped):
            raise
        except GuestError as exc:
            # A lost SSH session or a timeout may have a plainer cause: the guest is gone.
            raise _why_stopped(host_uri, name) or exc from None
        return ip, status, outcomes


def _why_stopped(host_uri: str, name: str) -> GuestStopped | None:
    try:
        with connect(host_uri) as conn:
            return why_stopped(conn, name)
    except VdeskError:
        return None                   # the host cannot be asked: the first failure is the one to report


def _guest_says(host_uri: str, name: str) -> str:
    """What the guest agent reports about sshd, as a clause to append to an SSH failure."""
    with connect(host_uri) as conn:
        said = explain_ssh(conn, name)
    return f"; the guest says: {said}" if said else "; the guest agent could not be asked why"


class GuestReady(Resource):
    ip: pulumi.Output[str]
    cloud_init: pulumi.Output[str]

    def __init__(self, name: str, props: dict, opts=None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key"]))
        super().__init__(ReadinessProvider(), name, ReadinessProvider.resource_props("GuestReady", props), opts)
