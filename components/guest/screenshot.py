"""Screenshots of a desktop's display through libvirt, as PNG, to prove the display actually shows something.

libvirt hands back PPM (qemu) or PNG; Pillow reads either and writes the PNG.
What is measured (size, colours, how much of the screen one colour covers) is
what tells a graphical desktop from a blank screen or a text console.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import libvirt
from PIL import Image, UnidentifiedImageError

from ..errors import VdeskError
from ..waiting import wait_for

log = logging.getLogger(__name__)

PPM_MIME = "image/x-portable-pixmap"
PNG_MIME = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A 8K RGB frame is ~100 MiB as PPM; anything far beyond that is not a screen.
MAX_SCREENSHOT_BYTES = 512 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_READABLE = {"PPM": "PPM/PGM", "PNG": "PNG"}


class ScreenshotError(VdeskError):
    """A screenshot could not be taken, decoded, or does not show a usable display."""


@dataclass(frozen=True)
class Screenshot:
    """A PNG written to path, with what was measured in it."""

    path: str
    width: int
    height: int
    distinct_colours: int
    blank: bool
    domain: str = ""
    dominant_share: float = 1.0      # the part of the screen its most common colour covers (0..1]


def capture(conn: libvirt.virConnect, domain_name: str, dest: Path, *, screen: int = 0) -> Screenshot:
    """Take a screenshot of a running domain, write it to dest as PNG and measure it."""
    dest = Path(dest)
    domain = _running_domain(conn, domain_name)
    mime, data = _read_screenshot(conn, domain, domain_name, screen)
    where = f"screenshot of desktop {domain_name!r}"
    png = to_png(mime, data, what=where)
    width, height, colours = measure_png(png, what=where)
    _write_atomically(dest, png)
    share = dominant_share(png)
    log.info("%s: %dx%d, %d colour(s), %.0f%% one colour -> %s", where, width, height, colours, share * 100, dest)
    return Screenshot(str(dest), width, height, colours, colours <= 1, domain_name, share)


def png_of(conn: libvirt.virConnect, domain_name: str, *, screen: int = 0) -> bytes:
    """A running domain's screen as PNG bytes, written nowhere (the portal's thumbnails)."""
    domain = _running_domain(conn, domain_name)
    return to_png(*_read_screenshot(conn, domain, domain_name, screen), what=f"screenshot of desktop {domain_name!r}")


def to_png(mime: str, data: bytes, *, what: str = "screenshot") -> bytes:
    """PNG bytes for what libvirt returned: PPM/PGM is converted, PNG is kept as it is."""
    mime = (mime or "").strip().lower()
    if mime == PNG_MIME and data.startswith(PNG_SIGNATURE):
        _open(data, what)      # checked, kept as it is
        return data
    if mime not in (PNG_MIME, PPM_MIME, "image/x-portable-graymap") and data[:2] not in (b"P5", b"P6"):
        raise ScreenshotError(f"{what}: libvirt returned {mime!r}, which vdesk cannot read (expected PNG or PPM)")
    out = io.BytesIO()
    _open(data, what).save(out, format="PNG")
    return out.getvalue()


def measure_png(data: bytes, *, what: str = "PNG image") -> tuple[int, int, int]:
    """(width, height, number of distinct colours) of a PNG."""
    image = _open(data, what, formats=("PNG",))
    return image.width, image.height, len(_colours(image))


def dominant_share(data: bytes) -> float:
    """How much of the image its most common colour covers: near 1 for a blank or text screen."""
    image = _open(data, "screenshot")
    return max(count for count, _ in _colours(image)) / (image.width * image.height)


def _colours(image: Image.Image) -> list[tuple[int, tuple]]:
    """(count, colour) of every distinct colour; palette images by the colours their entries stand for."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode.startswith("I"):       # 16/32-bit grey: Pillow cannot count those itself
        return [(count, colour) for colour, count in collections.Counter(image.get_flattened_data()).items()]
    return image.getcolors(maxcolors=image.width * image.height) or []


def _open(data: bytes, what: str, formats=("PNG", "PPM")) -> Image.Image:
    """Decode fully (so a truncated or corrupt image fails here), or raise a readable ScreenshotError."""
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        kinds = " or ".join(_READABLE[f] for f in formats)
        raise ScreenshotError(f"{what}: not a readable {kinds} image ({exc})") from None
    return image


def assert_usable(shot: Screenshot, *, min_width: int = 640, min_height: int = 400) -> None:
    """Raise ScreenshotError saying which desktop and what is wrong if the screen is blank or too small."""
    problems = []
    if shot.blank:
        problems.append("the screen is blank (every pixel has the same colour)")
    if shot.width < min_width or shot.height < min_height:
        problems.append(f"the screen is {shot.width}x{shot.height}, smaller than the required {min_width}x{min_height}")
    if problems:
        who = f"desktop {shot.domain!r}" if shot.domain else "the desktop"
        raise ScreenshotError(f"{who} has no usable display: {'; '.join(problems)} (screenshot: {shot.path})")


def _running_domain(conn: libvirt.virConnect, domain_name: str) -> libvirt.virDomain:
    """The domain, which must exist and be running (a stopped domain has no display)."""
    try:
        domain = conn.lookupByName(domain_name)
        active = domain.isActive()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ScreenshotError(f"desktop {domain_name!r} has no libvirt domain on {conn.getURI()}") from None
        raise ScreenshotError(f"cannot look up desktop {domain_name!r}: {exc.get_error_message()}") from None
    if not active:
        raise ScreenshotError(f"desktop {domain_name!r} is not running, so there is no display to capture")
    return domain


def _read_screenshot(
    conn: libvirt.virConnect, domain: libvirt.virDomain, domain_name: str, screen: int
) -> tuple[str, bytes]:
    """Ask libvirt for a screenshot and read the whole stream: (mime type, bytes)."""
    stream = conn.newStream(0)
    chunks: list[bytes] = []
    total = 0
    try:
        mime = domain.screenshot(stream, screen, 0)
        while True:
            chunk = stream.recv(_READ_CHUNK)
            if not isinstance(chunk, bytes) or not chunk:
                break
            total += len(chunk)
            if total > MAX_SCREENSHOT_BYTES:
                raise ScreenshotError(
                    f"screenshot of desktop {domain_name!r} exceeds {MAX_SCREENSHOT_BYTES // 2**20} MiB; refusing it"
                )
            chunks.append(chunk)
        stream.finish()
    except libvirt.libvirtError as exc:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise ScreenshotError(
            f"cannot take a screenshot of desktop {domain_name!r} (screen {screen}): {exc.get_error_message()}"
        ) from None
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise
    data = b"".join(chunks)
    if not data:
        raise ScreenshotError(f"screenshot of desktop {domain_name!r} (screen {screen}) came back empty")
    return mime or "", data


def _write_atomically(dest: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so dest is never a half-written image."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        # 0600: a desktop's screen shows whatever its user had open; never a symlink followed
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# A text console (or a blank, or a screen still being set up) is one colour almost everywhere.
CONSOLE_SHARE = 0.9


def shows_desktop(shot: Screenshot, *, min_width: int, min_height: int) -> bool:
    """The screen is a graphical desktop: at least the declared size, and no colour covers nearly all of it."""
    return shot.width >= min_width and shot.height >= min_height and shot.dominant_share < CONSOLE_SHARE


# How often the gate looks at a screen still being drawn, and for how many looks in a row it must be unchanged:
# four alike a second apart say nothing was drawn for 3 s (the session has mapped its panel and painted its
# wallpaper and icons), where two alike 5 s apart cost up to 10 s after the last stroke (issue 25).
DESKTOP_POLL_S = 1.0
SETTLED_FRAMES = 4


def wait_for_desktop(conn: libvirt.virConnect, domain_name: str, dest: Path, *, timeout_s: float,
                     min_width: int, min_height: int, poll_s: float = DESKTOP_POLL_S) -> Screenshot:
    """Take screenshots until the screen shows a graphical desktop (see shows_desktop) and has stopped
    changing (SETTLED_FRAMES in a row alike, poll_s apart: the session has finished drawing), within timeout_s.

    The last screenshot is kept at dest either way; when time is up, ScreenshotError says what it showed.
    """
    previous = shot = None
    alike = 0

    def settled() -> Screenshot | None:
        nonlocal previous, shot, alike
        shot = capture(conn, domain_name, dest)
        pixels = Path(shot.path).read_bytes() if os.path.exists(shot.path) else None
        if shows_desktop(shot, min_width=min_width, min_height=min_height) and pixels is not None:
            alike = alike + 1 if pixels == previous else 1
            previous = pixels
            if alike >= SETTLED_FRAMES:
                return shot
        else:
            previous, alike = None, 0
        return None

    return wait_for(settled, timeout_s, interval_s=poll_s, timeout_error=lambda: ScreenshotError(
        f"desktop {domain_name!r} shows no graphical desktop after {timeout_s:g} s: its screen is "
        f"{shot.width}x{shot.height} (wanted at least {min_width}x{min_height}) and "
        f"{shot.dominant_share:.0%} of it is one colour (a console or blank screen is over "
        f"{CONSOLE_SHARE:.0%}); last screenshot: {shot.path}"))
