"""A virtual desktop as a Pulumi component: `Desktop(name, DesktopArgs(...))`."""
from .args import DesktopArgs, DesktopUser, Share, Timeouts
from .component import Desktop
from .settings import DesktopSettings

__all__ = ["Desktop", "DesktopArgs", "DesktopSettings", "DesktopUser", "Share", "Timeouts"]
