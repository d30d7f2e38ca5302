"""Pack seed documents into a NoCloud "cidata" ISO, byte-for-byte reproducible so a seed never drifts.

pycdlib is pure Python, so the bytes can be built anywhere and uploaded to a
libvirt storage volume on a remote host. pycdlib stamps volume, directory and
Rock Ridge dates from the clock in local time; while building, its modules see
a clock frozen at ``FIXED_EPOCH`` in UTC instead, so equal documents give
equal bytes on every host, in every time zone.
"""

import io
import threading
import time
import types
from contextlib import contextmanager

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.pycdlib
import pycdlib.utils

from . import SeedDocuments

VOLUME_ID = "cidata"  # NoCloud finds its seed by this filesystem label
FIXED_EPOCH = 946_684_800.0  # 2000-01-01T00:00:00Z: any fixed instant works
INTERCHANGE_LEVEL = 1  # plain 8.3 names; Joliet and Rock Ridge carry the real ones
JOLIET_LEVEL = 3
ROCK_RIDGE = "1.09"
FILE_MODE = 0o100444  # regular file, read-only
# (Rock Ridge / Joliet name, ISO 9660 name, SeedDocuments field)
FILES = (
    ("user-data", "USERDATA.;1", "user_data"),
    ("meta-data", "METADATA.;1", "meta_data"),
    ("network-config", "NETWORKC.;1", "network_config"),
)
# pycdlib modules that read the clock; each is given the frozen one while building.
CLOCK_USERS = (pycdlib.pycdlib, pycdlib.headervd, pycdlib.dates, pycdlib.utils)

_clock_lock = threading.Lock()


def nocloud_iso(docs: SeedDocuments) -> bytes:
    """An ISO 9660 image (Joliet + Rock Ridge) labelled "cidata" holding the three documents."""
    iso = pycdlib.PyCdlib()
    out = io.BytesIO()
    with _frozen_clock():
        iso.new(
            interchange_level=INTERCHANGE_LEVEL,
            vol_ident=VOLUME_ID,
            joliet=JOLIET_LEVEL,
            rock_ridge=ROCK_RIDGE,
        )
        for name, iso_name, field in FILES:
            data = getattr(docs, field).encode("utf-8")
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                f"/{iso_name}",
                rr_name=name,
                joliet_path=f"/{name}",
                file_mode=FILE_MODE,
            )
        iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_iso(image: bytes) -> dict[str, str]:
    """The files of a seed ISO by their Joliet names (what a guest mounting it sees)."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        files = {}
        for child in iso.list_children(joliet_path="/"):
            if child.is_dot() or child.is_dotdot() or child.is_dir():
                continue
            name = child.file_identifier().decode("utf-16_be")
            buffer = io.BytesIO()
            iso.get_file_from_iso_fp(buffer, joliet_path=f"/{name}")
            files[name] = buffer.getvalue().decode("utf-8")
        return files
    finally:
        iso.close()


@contextmanager
def _frozen_clock():
    """Give pycdlib a clock stuck at FIXED_EPOCH, in UTC, for the duration."""
    frozen = types.SimpleNamespace(
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("__")}
    )
    frozen.time = lambda: FIXED_EPOCH
    frozen.localtime = lambda seconds=None: time.gmtime(FIXED_EPOCH if seconds is None else seconds)
    with _clock_lock:
        originals = [(module, module.time) for module in CLOCK_USERS]
        for module, _ in originals:
            module.time = frozen
        try:
            yield
        finally:
            for module, original in originals:
                module.time = original
