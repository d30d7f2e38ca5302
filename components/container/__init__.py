"""A libvirt LXC container as a Pulumi component: `Container(name, ContainerArgs(...))`."""
from .component import Container, ContainerArgs

__all__ = ["Container", "ContainerArgs"]
