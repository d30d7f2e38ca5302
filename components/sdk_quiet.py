"""The Pulumi SDK's own debug messages, kept in the program unless asked for.

The SDK sends four to six debug lines per resource registration (pulumi.log.debug), each a synchronous
Log RPC to the engine, often from the event loop's thread; the engine shows them only with --debug or
-v. At 60 desktops that is over two thousand round trips of a no-op `up`, which therefore grew with N.
VDESK_SDK_DEBUG=1 sends them again (for `pulumi up --debug`).
"""
from __future__ import annotations

import os

import pulumi.log


def _dropped(*_args, **_kwargs) -> None:
    return None


def quiet_sdk_debug() -> None:
    if os.environ.get("VDESK_SDK_DEBUG") != "1":
        pulumi.log.debug = _dropped
