"""A host for portal tests on libvirt's test driver: desktops of two stacks, defined as vdesk defines them.

team: ada's and grace's desktops; lab: a second desktop of ada's (stopped), with another password;
rogue: a stack that publishes grace's desktop as ada's, which the portal must not believe.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import libvirt

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.console.tokens import signing_key
from components.portal import accounts
from components.portal.app import PortalConfig
from components.resources.domain import DomainProvider, desired_model

URI = "test:///default"
PASSWORDS = {("team", "ada"): "ada-team-pw", ("team", "grace"): "grace-team-pw", ("lab", "ada"): "ada-lab-pw",
             ("rogue", "ada"): "rogue-pw"}
DESKTOPS = {"team-ada": ("team", ["ada"], True), "team-grace": ("team", ["grace"], True),
            "lab-ada": ("lab", ["ada"], False)}
GATEWAY_URL = "http://127.0.0.1:6999"


def define(conn: libvirt.virConnect, name: str, stack: str, running: bool, domain_type: str = "test",
           **more) -> libvirt.virDomain:
    """A domain with the owner metadata the Domain provider writes for `stack` (more: other Domain inputs)."""
    props = DomainProvider().check({}, {"host_uri": conn.getURI(), "name": name, "owner": stack,
                                        "domain_type": domain_type,
                                        "memory_mib": 256, "vcpus": 1, "kernel": "/k", **more}).inputs
    dom = conn.defineXML(desired_model(props).to_xml())
    if running:
        dom.create()
    return dom


def build(conn: libvirt.virConnect, tmp: Path) -> PortalConfig:
    """Define the desktops, publish the stacks' records and make a console dir whose gateway 'runs' here."""
    for name, (stack, _users, running) in DESKTOPS.items():
        define(conn, name, stack, running)
    for name, (stack, users, _running) in DESKTOPS.items():
        accounts.publish(tmp / "portal", stack, name, users,
                         {u: hash_password(PASSWORDS[stack, u], rounds=MIN_ROUNDS) for u in users})
    accounts.publish(tmp / "portal", "rogue", "team-grace", ["ada"],
                     {"ada": hash_password(PASSWORDS["rogue", "ada"], rounds=MIN_ROUNDS)})
    console_dir = tmp / "console"
    signing_key(console_dir, create=True)
    # The gateway's runtime record, as a listening gateway writes it (this process stands in as its pid).
    (console_dir / "gateway.json").write_text(json.dumps({"pid": os.getpid(), "port": 6999, "url": GATEWAY_URL}))
    return PortalConfig(portal_dir=tmp / "portal", libvirt_uri=URI, host="local", console_dir=console_dir)


def tear_down(conn: libvirt.virConnect) -> None:
    for name in DESKTOPS:
        dom = conn.lookupByName(name)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
