"""A virtual desktop as a Pulumi component: `Desktop(name, DesktopArgs(...))`."""
from .args import DesktopArgs, Share, Timeouts
from .component import Desktop
from .settings import DesktopSettings
from .users import DesktopUser

__all__ = ["Desktop", "DesktopArgs", "DesktopSettings", "DesktopUser", "Share", "Timeouts"]
