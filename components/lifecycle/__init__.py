"""Desktops that follow their users: idle from real input, warned, then suspended (managed save) or shut down."""
from .policy import IdlePolicy, policy_of, set_policy

__all__ = ["IdlePolicy", "policy_of", "set_policy"]
