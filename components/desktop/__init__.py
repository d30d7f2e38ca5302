"""A virtual desktop as a Pulumi component: `Desktop(name, DesktopArgs(...))`."""
from .args import DesktopArgs, DesktopUser, Timeouts
from .component import Desktop

__all__ = ["Desktop", "DesktopArgs", "DesktopUser", "Timeouts"]
