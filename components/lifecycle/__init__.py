"""Desktops that follow their users: idle from real input, warned, then suspended (managed save) or shut down.

`IdlePolicy` is the declared setting; `wake(conn, name)` is what the portal
and the console gateway call when a sleeping desktop is opened; the per-host
service is `supervisor.ensure_running(<host>/lifecycle, LifecycleSettings(...))`.
"""
from .actions import asleep, runtime_state, wake
from .policy import IdlePolicy, policy_of, set_policy
from .settings import LifecycleSettings

__all__ = ["IdlePolicy", "LifecycleSettings", "asleep", "policy_of", "runtime_state", "set_policy", "wake"]
