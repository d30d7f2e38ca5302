"""A host for portal tests on libvirt's test driver: desktops of two stacks, defined as vdesk defines them.

team: ada's and grace's desktops; lab: a second desktop of ada's (stopped), with another password;
rogue: a stack that publishes grace's desktop as ada's (and maps ada's address to it), which the portal must
not believe. ada's and grace's addresses (EMAILS) map them for an OpenID Connect sign-in.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import libvirt

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.console.tokens import signing_key
from components.portal import accounts
from components.portal.app import PortalConfig
from components.portal.serve import server
from components.portal.settings import PortalSettings
from components.resources.domain import DomainProvider, desired_model

URI = "test:///default"
PASSWORDS = {("team", "ada"): "ada-team-pw", ("team", "grace"): "grace-team-pw", ("lab", "ada"): "ada-lab-pw",
             ("rogue", "ada"): "rogue-pw"}
DESKTOPS = {"team-ada": ("team", ["ada"], True), "team-grace": ("team", ["grace"], True),
            "lab-ada": ("lab", ["ada"], False)}
EMAILS = {"ada": "ada@example.org", "grace": "grace@example.org"}
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


def build(conn: libvirt.virConnect, tmp: Path, settings: PortalSettings = PortalSettings()) -> PortalConfig:
    """Define the desktops, publish the stacks' records and make a console dir whose gateway 'runs' here."""
    for name, (stack, _users, running) in DESKTOPS.items():
        define(conn, name, stack, running)
    for name, (stack, users, _running) in DESKTOPS.items():
        accounts.publish(tmp / "portal", stack, name, users,
                         {u: hash_password(PASSWORDS[stack, u], rounds=MIN_ROUNDS) for u in users},
                         {u: EMAILS[u] for u in users})
    accounts.publish(tmp / "portal", "rogue", "team-grace", ["ada"],
                     {"ada": hash_password(PASSWORDS["rogue", "ada"], rounds=MIN_ROUNDS)}, {"ada": EMAILS["ada"]})
    console_dir = tmp / "console"
    signing_key(console_dir, create=True)
    # The gateway's runtime record, as a listening gateway writes it (this process stands in as its pid).
    (console_dir / "gateway.json").write_text(json.dumps({"pid": os.getpid(), "port": 6999, "url": GATEWAY_URL}))
    return PortalConfig(portal_dir=tmp / "portal", libvirt_uri=URI, host="local", console_dir=console_dir,
                        settings=settings)


# The `dev` stack's person, for whom the stack declares no password: a one-time sign-in link lets them in.
PASSWORDLESS = ("dev", "dev-dev", "dev")        # (stack, desktop, user)


@contextlib.contextmanager
def passwordless_desktop(conn: libvirt.virConnect, config: PortalConfig) -> Iterator[tuple[str, str, str]]:
    """A running desktop of stack dev whose user has no password, published as `up` publishes it."""
    stack, desktop, user = PASSWORDLESS
    dom = define(conn, desktop, stack, True)
    accounts.publish(config.portal_dir, stack, desktop, [user], {})
    try:
        yield PASSWORDLESS
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def believe_the_gateway(monkeypatch, config: PortalConfig) -> None:
    """The gateway's address as its service reports it: the gateway itself is not under test with this
    world, and its service believes a runtime record only from a live gateway process of that host."""
    monkeypatch.setattr("components.console.service.base_url",
                        lambda console_dir: GATEWAY_URL if console_dir == config.console_dir else None)


def tear_down(conn: libvirt.virConnect) -> None:
    for name in DESKTOPS:
        dom = conn.lookupByName(name)
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def until(condition, what: str, timeout_s: float = 20):
    """condition()'s first true value, polled until the deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s:g}s: {what}")
        time.sleep(0.1)
    return result



def sign_in(driver, url: str, user: str, password: str, path: str = "/") -> None:
    """The portal's own sign-in form, filled in and sent as a person would (from `path`, which shows it)."""
    from selenium.webdriver.common.by import By
    driver.get(url + path)
    until(lambda: driver.find_elements(By.ID, "user"), "the sign-in page")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "signin").click()

@contextlib.contextmanager
def serving(config: PortalConfig, sock: socket.socket, timeout_s: float = 20) -> Iterator[None]:
    """The portal under uvicorn in a thread of this process, on `sock`, while the block runs."""
    uv = server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    until(lambda: uv.started, "the portal listens", timeout_s)
    try:
        yield
    finally:
        uv.should_exit = True
        thread.join(timeout=timeout_s)
