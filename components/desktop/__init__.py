"""A virtual desktop as a Pulumi component: `Desktop(name, DesktopArgs(...))`."""
from .args import DesktopArgs, DesktopUser, Share, Timeouts
from .component import Desktop

__all__ = ["Desktop", "DesktopArgs", "DesktopUser", "Share", "Timeouts"]
