"""Screenshots of a desktop's display through libvirt, as PNG, to prove the display actually shows something."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import libvirt

from ..errors import VdeskError

log = logging.getLogger(__name__)

PPM_MIME = "image/x-portable-pixmap"
PNG_MIME = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A 8K RGB frame is ~100 MiB as PPM; anything far beyond that is not a screen.
MAX_SCREENSHOT_BYTES = 512 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_IDAT_CHUNK = 1024 * 1024
# Channels per PNG colour type: grey, RGB, palette, grey+alpha, RGBA.
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7 passes: (x start, y start, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


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


def capture(conn: libvirt.virConnect, domain_name: str, dest: Path, *, screen: int = 0) -> Screenshot:
    """Take a screenshot of a running domain, write it to dest as PNG and measure it."""
    dest = Path(dest)
    domain = _running_domain(conn, domain_name)
    mime, data = _read_screenshot(conn, domain, domain_name, screen)
    where = f"screenshot of desktop {domain_name!r}"
    png = to_png(mime, data, what=where)
    width, height, colours = measure_png(png, what=where)
    _write_atomically(dest, png)
    log.info("%s: %dx%d, %d colour(s) -> %s", where, width, height, colours, dest)
    return Screenshot(str(dest), width, height, colours, colours <= 1, domain_name)


def to_png(mime: str, data: bytes, *, what: str = "screenshot") -> bytes:
    """PNG bytes for what libvirt returned: PPM/PGM is converted, PNG is kept as it is."""
    mime = (mime or "").strip().lower()
    if mime in (PPM_MIME, "image/x-portable-graymap") or (mime != PNG_MIME and data[:2] in (b"P5", b"P6")):
        return ppm_to_png(data, what=what)[0]
    if mime == PNG_MIME or data.startswith(PNG_SIGNATURE):
        return data
    raise ScreenshotError(f"{what}: libvirt returned {mime!r}, which vdesk cannot read (expected PNG or PPM)")


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
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --------------------------------------------------------------------------------------------
# PPM -> PNG


def parse_ppm(data: bytes, *, what: str = "PPM image") -> tuple[int, int, int, bytes]:
    """Parse binary PPM (P6) or PGM (P5): (width, height, channels, 8-bit samples)."""
    magic = data[:2]
    if magic not in (b"P6", b"P5"):
        raise ScreenshotError(f"{what}: not a binary PPM/PGM image (starts with {data[:8]!r})")
    pos, fields = 2, []
    while len(fields) < 3:
        # Whitespace and "#" comments may separate the header fields.
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            end = data.find(b"\n", pos)
            pos = len(data) if end < 0 else end + 1
            continue
        start = pos
        while pos < len(data) and data[pos : pos + 1].isdigit():
            pos += 1
        if start == pos:
            raise ScreenshotError(f"{what}: malformed PPM header near byte {pos}")
        fields.append(int(data[start:pos]))
    if pos >= len(data) or not data[pos : pos + 1].isspace():
        raise ScreenshotError(f"{what}: malformed PPM header: no whitespace after the maximum value")
    pos += 1  # exactly one whitespace byte before the raster
    width, height, maxval = fields
    if width <= 0 or height <= 0:
        raise ScreenshotError(f"{what}: invalid image size {width}x{height}")
    if not 0 < maxval < 65536:
        raise ScreenshotError(f"{what}: invalid PPM maximum value {maxval}")
    channels = 3 if magic == b"P6" else 1
    sample_bytes = 1 if maxval < 256 else 2
    needed = width * height * channels * sample_bytes
    raster = data[pos : pos + needed]
    if len(raster) < needed:
        raise ScreenshotError(f"{what}: PPM data truncated: {width}x{height} needs {needed} bytes, got {len(raster)}")
    return width, height, channels, _to_8bit(raster, maxval)


def _to_8bit(raster: bytes, maxval: int) -> bytes:
    """Scale samples of any maximum value to 0-255."""
    if maxval == 255:
        return raster
    if maxval < 256:
        table = bytes(min(255, (v * 255 + maxval // 2) // maxval) for v in range(256))
        return raster.translate(table)
    samples = struct.unpack(f">{len(raster) // 2}H", raster)
    return bytes(min(255, (v * 255 + maxval // 2) // maxval) for v in samples)


def ppm_to_png(data: bytes, *, what: str = "PPM image") -> tuple[bytes, int, int]:
    """Convert a PPM/PGM image to PNG: (png bytes, width, height)."""
    width, height, channels, pixels = parse_ppm(data, what=what)
    return encode_png(width, height, pixels, channels=channels), width, height


def encode_png(width: int, height: int, pixels: bytes, *, channels: int = 3) -> bytes:
    """Encode 8-bit grey (channels=1) or RGB (channels=3) pixels, row by row, as a PNG."""
    colour_type = {1: 0, 3: 2}.get(channels)
    if colour_type is None:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    stride = width * channels
    if width <= 0 or height <= 0 or len(pixels) != stride * height:
        raise ValueError(f"{width}x{height}x{channels} needs {stride * height} bytes of pixels, got {len(pixels)}")
    # Filter type 0 (none) per row; zlib does the work.
    raw = b"".join(b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height))
    compressed = zlib.compress(raw, 6)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", header)]
    parts += [_chunk(b"IDAT", compressed[i : i + _IDAT_CHUNK]) for i in range(0, len(compressed), _IDAT_CHUNK)]
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


# --------------------------------------------------------------------------------------------
# PNG measuring


def measure_png(data: bytes, *, what: str = "PNG image") -> tuple[int, int, int]:
    """Decode a PNG just enough to return (width, height, number of distinct colours)."""
    header, palette, idat = _png_chunks(data, what)
    width, height, depth, colour_type, _compression, _filter, interlace = header
    try:
        raw = zlib.decompress(idat)
    except zlib.error as exc:
        raise ScreenshotError(f"{what}: corrupt PNG image data ({exc})") from None
    if colour_type == 3 and not palette:
        raise ScreenshotError(f"{what}: palette PNG without a PLTE chunk")
    bits = _CHANNELS[colour_type] * depth
    colours: set = set()
    pos = 0
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    for x0, y0, dx, dy in passes:
        pass_width = (width - x0 + dx - 1) // dx
        pass_height = (height - y0 + dy - 1) // dy
        if pass_width <= 0 or pass_height <= 0:
            continue
        stride = (pass_width * bits + 7) // 8
        size = (stride + 1) * pass_height
        if len(raw) < pos + size:
            raise ScreenshotError(f"{what}: PNG image data is truncated")
        rows = _unfilter(raw[pos : pos + size], pass_height, stride, max(1, bits // 8), what)
        pos += size
        for row in rows:
            _collect_colours(colours, row, pass_width, depth, bits)
    if colour_type == 3:
        entries = [palette[i * 3 : i * 3 + 3] for i in range(len(palette) // 3)]
        if any(index >= len(entries) for index in colours):
            raise ScreenshotError(f"{what}: PNG pixel refers to a colour outside its palette")
        colours = {entries[index] for index in colours}
    return width, height, len(colours)


def _png_chunks(data: bytes, what: str) -> tuple[tuple, bytes, bytes]:
    """Walk the chunks, checking CRCs: (IHDR fields, PLTE body, concatenated IDAT bodies)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ScreenshotError(f"{what}: not a PNG image (starts with {data[:8]!r})")
    pos = len(PNG_SIGNATURE)
    header = None
    palette = b""
    idat: list[bytes] = []
    while True:
        if pos + 8 > len(data):
            raise ScreenshotError(f"{what}: PNG ends without an IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) < length or len(crc) < 4:
            raise ScreenshotError(f"{what}: PNG chunk {kind.decode('latin-1')} is truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ScreenshotError(f"{what}: PNG chunk {kind.decode('latin-1')} has a bad checksum")
        pos += 12 + length
        if kind == b"IHDR":
            if length != 13:
                raise ScreenshotError(f"{what}: PNG header has length {length}, expected 13")
            header = struct.unpack(">IIBBBBB", body)
            _check_header(header, what)
        elif header is None:
            raise ScreenshotError(f"{what}: PNG does not start with an IHDR chunk")
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if not idat:
        raise ScreenshotError(f"{what}: PNG has no image data")
    return header, palette, b"".join(idat)


def _check_header(header: tuple, what: str) -> None:
    width, height, depth, colour_type, compression, filtering, interlace = header
    if width == 0 or height == 0:
        raise ScreenshotError(f"{what}: PNG has an empty size {width}x{height}")
    if colour_type not in _CHANNELS or depth not in _DEPTHS[colour_type]:
        raise ScreenshotError(f"{what}: unsupported PNG colour type {colour_type} with bit depth {depth}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise ScreenshotError(f"{what}: unsupported PNG compression/filter/interlace method")


def _unfilter(raw: bytes, height: int, stride: int, bpp: int, what: str) -> list[bytes]:
    """Undo PNG's per-row filters (none, sub, up, average, paeth)."""
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = raw[start + 1 : start + 1 + stride]
        if kind == 0:
            current = line
        elif kind == 2:
            current = _add_bytes(line, previous)
        elif kind == 1:
            row = bytearray(line)
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
            current = bytes(row)
        elif kind == 3:
            row = bytearray(line)
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
            current = bytes(row)
        elif kind == 4:
            row = bytearray(line)
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            current = bytes(row)
        else:
            raise ScreenshotError(f"{what}: PNG row {y} has unknown filter type {kind}")
        rows.append(current)
        previous = current
    return rows


def _add_bytes(a: bytes, b: bytes) -> bytes:
    """Byte-wise (a + b) mod 256 over whole rows at once, using big-integer arithmetic."""
    n = len(a)
    if n == 0:
        return a
    low, high = _masks(n)
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")


@functools.lru_cache(maxsize=8)
def _masks(n: int) -> tuple[int, int]:
    """0x7f7f... and 0x8080... of n bytes: keep carries from crossing byte boundaries."""
    return int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")


def _collect_colours(colours: set, row: bytes, width: int, depth: int, bits: int) -> None:
    """Add the distinct pixel values of one unfiltered row to colours."""
    if depth < 8:
        per_byte, mask = 8 // depth, (1 << depth) - 1
        values = set()
        for x in range(width):
            byte = row[x // per_byte]
            shift = 8 - depth * (x % per_byte + 1)
            values.add((byte >> shift) & mask)
        colours.update(values)
        return
    bpp = bits // 8
    if bpp == 1:
        colours.update(row)
    else:
        colours.update(zip(*(row[k::bpp] for k in range(bpp))))


__all__ = [
    "Screenshot",
    "ScreenshotError",
    "assert_usable",
    "capture",
    "encode_png",
    "measure_png",
    "parse_ppm",
    "ppm_to_png",
    "to_png",
]
