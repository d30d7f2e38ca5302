"""Which noVNC resize mode a desktop's console link asks for: read from its live primary video.

noVNC's "remote" asks the display to take the window's size (RFB SetDesktopSize). qemu gives that size to
the video device as its preferred mode, and only virtio-gpu tells the guest (a DRM change event with a new
EDID); a graphical seed's session watcher then switches X.Org to it (templates/user-data/desktop.yaml.j2).
vga, bochs, cirrus and qxl cannot follow, so their links keep "scale" (the picture fitted to the window).
"""
from __future__ import annotations

import logging

import libvirt

from .. import xmlmodel
from ..errors import VdeskError
from ..host.connection import connect

log = logging.getLogger(__name__)

_FOLLOWS_THE_WINDOW = ("virtio",)


def resize_of(libvirt_uri: str, desktop: str) -> str:
    """noVNC's resize mode for a desktop's console; "scale" whenever libvirt cannot say (the link still
    opens, the picture fitted to the window): a lookup that fails never fails the link."""
    try:
        with connect(libvirt_uri) as conn:
            videos = list(xmlmodel.Domain.from_xml(conn.lookupByName(desktop).XMLDesc(0)).videos)
    except VdeskError as exc:                   # the host does not answer, or was lost meanwhile
        log.warning("resize mode of %s: %s; scaled", desktop, exc)
        return "scale"
    except libvirt.libvirtError as exc:
        log.warning("resize mode of %s: %s; scaled", desktop, exc.get_error_message())
        return "scale"
    primary = next((v for v in videos if v.primary == "yes"), videos[0] if videos else None)
    return "remote" if primary is not None and primary.model_type in _FOLLOWS_THE_WINDOW else "scale"
