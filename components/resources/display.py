"""Protected displays: a generated password per desktop, set on its VNC/SPICE devices and rotated live.

The password is made with the desktop's SSH keys by one dynamic resource
(components.resources.credentials) and kept in Pulumi state as a secret.
libvirt shows it only to callers that ask for secure XML, so `virsh dumpxml`
without --security-info never prints it. A new
password reaches a running guest through a graphics device update (no restart).
"""
from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import re
import secrets
import string

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..kinds import Seconds   # (a desktop's display.password_valid_for, converted)
from .provider import DeclaredProvider, Prop, declared

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# VNC authentication (DES) uses at most 8 characters; SPICE gets the same password.
PASSWORD_LENGTH = 8
_ALPHABET = string.ascii_letters + string.digits
_VALID_TO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# Domain properties applied to a running guest by a graphics device update.
LIVE_PROPS = frozenset({"display_password", "display_password_valid_to"})


def valid_to_problem(value: str) -> str | None:
    return None if value == "" or _VALID_TO.match(value) else f"{value!r} must be a UTC time YYYY-MM-DDTHH:MM:SS"


def address_problem(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address"
    return None


def spice_socket(vnc_socket: str) -> str:
    """The SPICE socket beside a desktop's VNC socket (<vm>.vnc -> <vm>.spice)."""
    return os.path.splitext(vnc_socket)[0] + ".spice"


def graphics_devices(props) -> list[xmlmodel.Graphics]:
    """VNC (and SPICE when asked) on a unix socket, or on an address with a port libvirt picks."""
    socket = props.get("graphics_socket")
    secret = {"passwd": props.get("display_password"), "passwd_valid_to": props.get("display_password_valid_to") or None}

    def device(kind: str, path: str | None) -> xmlmodel.Graphics:
        if path:
            return xmlmodel.Graphics(type=kind, listen_type="socket", listen_socket=path, **secret)
        return xmlmodel.Graphics(type=kind, autoport=True, listen_type="address",
                                 listen_address=props.get("graphics_listen") or LOOPBACK, **secret)

    devices = [device("vnc", socket)]
    if props.get("spice"):
        devices.append(device("spice", spice_socket(socket) if socket else None))
    return devices


def set_password_live(dom, desired: xmlmodel.Domain) -> bool:
    """Give the running guest's displays the declared password (live and persistent); False when refused."""
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    for device in desired.graphics:
        try:
            dom.updateDeviceFlags(device.to_element_xml(), flags)
        except libvirt.libvirtError as exc:
            log.warning("%s: live change of the %s password refused: %s", dom.name(), device.type,
                        exc.get_error_message())
            return False
    log.info("%s: display password changed live, without a restart", dom.name())
    return True


def remove_sockets(vnc_socket: str | None) -> None:
    """qemu leaves its display sockets behind; a destroyed desktop leaves no file."""
    for path in (vnc_socket, spice_socket(vnc_socket) if vnc_socket else None):
        if path and os.path.exists(path):
            os.unlink(path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def new_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))


def generated_now() -> str:
    return _now().strftime(_TIME_FORMAT)


def valid_to(generated_at: str, valid_for_s: int | None) -> str:
    """The expiry, or "" for none: a null output would read as unknown in a preview, and show as a change."""
    if not valid_for_s:
        return ""
    start = datetime.datetime.strptime(generated_at, _TIME_FORMAT)
    return (start + datetime.timedelta(seconds=int(valid_for_s))).strftime(_TIME_FORMAT)


class DisplayPasswordProvider(DeclaredProvider):
    """A desktop's display password of before DesktopCredentials held it (components.resources.credentials):
    kept so a state that still names one loads; its properties are the credentials' display_password_*."""

    PROPS = {
        "rotation": Prop(str, default="", replaces=True,
                         doc="a rotation trigger: any new value generates a new password (e.g. '2026-12')"),
        "valid_for_s": declared(Seconds, "must be a positive number of seconds",
                                doc="how long the password works after it was generated (unset: no expiry)"),
    }
    OUTPUTS = ("password", "generated_at", "valid_to")
    DELETE_BEFORE_REPLACE = False

    def create(self, props):
        generated_at = generated_now()
        return CreateResult(secrets.token_hex(8), {
            **self.inputs_of(props), "password": new_password(), "generated_at": generated_at,
            "valid_to": valid_to(generated_at, props.get("valid_for_s"))})

    def update(self, _id, olds, news):
        """A new validity counts from when the password was generated; the password stays."""
        return UpdateResult({**self.inputs_of(news), "password": olds["password"],
                             "generated_at": olds["generated_at"],
                             "valid_to": valid_to(olds["generated_at"], news.get("valid_for_s"))})

    def read(self, id_, props):
        return ReadResult(id_, props)  # lives only in state: nothing outside can drift

    def delete(self, _id, _props):
        return None


class DisplayPassword(Resource):
    password: pulumi.Output[str]
    generated_at: pulumi.Output[str]
    valid_to: pulumi.Output[str]

    def __init__(self, name: str, *, rotation: str = "", valid_for_s: int | None = None, opts=None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["password"]))
        super().__init__(DisplayPasswordProvider(), name, {
            "rotation": rotation, "valid_for_s": valid_for_s, **dict.fromkeys(DisplayPasswordProvider.OUTPUTS)},
            opts)
