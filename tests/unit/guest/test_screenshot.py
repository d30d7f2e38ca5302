"""Tests for screenshots: libvirt's test driver, the PPM->PNG encoder (checked by decoding with zlib), measuring."""

import os
import struct
import zlib

import pytest

from components.host import connection  # noqa: F401  (silences libvirt's default error printing)
from components.guest.screenshot import (
    PNG_SIGNATURE,
    Screenshot,
    ScreenshotError,
    _unfilter,
    assert_usable,
    capture,
    encode_png,
    measure_png,
    parse_ppm,
    ppm_to_png,
    to_png,
)

TEST_URI = "test:///default"


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, asserting each CRC."""
    assert png.startswith(PNG_SIGNATURE)
    pos, chunks = 8, []
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def _decode_own_png(png: bytes) -> tuple[int, int, int, bytes]:
    """Independent decoder for what encode_png writes (filter 0 only): (width, height, colour type, pixels)."""
    chunks = _chunks(png)
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, compression, filtering, interlace) == (8, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * {0: 1, 2: 3}[colour_type]
    assert len(raw) == height * (stride + 1)
    rows = [raw[y * (stride + 1) : (y + 1) * (stride + 1)] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return width, height, colour_type, b"".join(row[1:] for row in rows)


def _pattern(width: int, height: int) -> bytes:
    """RGB pixels where every pixel differs from its neighbours."""
    return bytes(v for y in range(height) for x in range(width) for v in (x * 37 % 256, y * 59 % 256, (x * y) % 256))


# ---- libvirt's test driver -----------------------------------------------------------------


def test_test_driver_returns_png(conn):
    """What the rest of these tests rely on: the test domain's screenshot is a PNG."""
    stream = conn.newStream(0)
    mime = conn.lookupByName("test").screenshot(stream, 0, 0)
    stream.abort()
    assert mime == "image/png"


def test_capture_from_test_driver(conn, tmp_path):
    dest = tmp_path / "shots" / "nested" / "test.png"
    shot = capture(conn, "test", dest)
    assert shot == Screenshot(str(dest), 1120, 832, shot.distinct_colours, False, "test")
    assert shot.distinct_colours > 16  # a real picture, not a flat fill
    data = dest.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert measure_png(data) == (1120, 832, shot.distinct_colours)
    assert [p.name for p in dest.parent.iterdir()] == ["test.png"]  # no temporary file left behind
    assert_usable(shot)
    with pytest.raises(ScreenshotError, match=r"desktop 'test' has no usable display: the screen is 1120x832, "
                                              r"smaller than the required 1280x1024"):
        assert_usable(shot, min_width=1280, min_height=1024)


def test_capture_overwrites_an_older_screenshot(conn, tmp_path):
    dest = tmp_path / "test.png"
    dest.write_bytes(b"stale")
    capture(conn, "test", dest, screen=0)
    assert dest.read_bytes().startswith(PNG_SIGNATURE)


def test_capture_of_a_stopped_domain_is_a_readable_error(conn, tmp_path):
    name = "vdesk-screenshot-stopped"
    domain = conn.defineXML(
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>"
        "<os><type>hvm</type></os></domain>"
    )
    try:
        with pytest.raises(ScreenshotError, match=f"desktop '{name}' is not running, so there is no display"):
            capture(conn, name, tmp_path / "x.png")
    finally:
        domain.undefine()
    assert not (tmp_path / "x.png").exists()


def test_capture_of_a_missing_domain_names_it(conn, tmp_path):
    with pytest.raises(ScreenshotError, match="desktop 'vdesk-no-such-domain' has no libvirt domain on test:///default"):
        capture(conn, "vdesk-no-such-domain", tmp_path / "x.png")


# ---- PPM -> PNG ----------------------------------------------------------------------------


def test_ppm_to_png_round_trips_pixels():
    width, height = 7, 5
    pixels = _pattern(width, height)
    ppm = b"P6\n# written by a test\n7 # width\n 5\n255\n" + pixels
    png, w, h = ppm_to_png(ppm)
    assert (w, h) == (width, height)
    assert _decode_own_png(png) == (width, height, 2, pixels)
    assert measure_png(png) == (width, height, len({pixels[i : i + 3] for i in range(0, len(pixels), 3)}))


def test_ppm_raster_may_start_with_a_whitespace_byte_value():
    pixels = b"\n\n\n" + b" \t\r"  # sample values that look like whitespace
    png, _, _ = ppm_to_png(b"P6 2 1 255\n" + pixels)
    assert _decode_own_png(png)[3] == pixels


def test_pgm_becomes_a_greyscale_png():
    pixels = bytes(range(0, 240, 10))  # 6x4
    png, w, h = ppm_to_png(b"P5\n6 4\n255\n" + pixels)
    assert _decode_own_png(png) == (6, 4, 0, pixels)
    assert measure_png(png) == (6, 4, 24)


def test_ppm_with_small_and_16_bit_maximum_values_is_scaled():
    png, _, _ = ppm_to_png(b"P6 2 1 15\n" + bytes([0, 7, 15, 15, 8, 1]))
    assert _decode_own_png(png)[3] == bytes([0, 119, 255, 255, 136, 17])
    png, _, _ = ppm_to_png(b"P6 1 1 65535\n" + struct.pack(">3H", 65535, 32768, 0))
    assert _decode_own_png(png)[3] == bytes([255, 128, 0])


def test_to_png_dispatches_on_mime_type():
    ppm = b"P6 1 1 255\n" + b"\x01\x02\x03"
    png = to_png("image/x-portable-pixmap", ppm)
    assert _decode_own_png(png) == (1, 1, 2, b"\x01\x02\x03")
    assert to_png("image/png", png) is png
    with pytest.raises(ScreenshotError, match=r"libvirt returned 'image/bmp', which vdesk cannot read"):
        to_png("image/bmp", b"BM....")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"P3 1 1 255\n1 2 3", r"not a binary PPM/PGM image"),
        (b"P6 2 2 255\n" + b"\x00" * 11, r"PPM data truncated: 2x2 needs 12 bytes, got 11"),
        (b"P6 2 x 255\n", r"malformed PPM header near byte 5"),
        (b"P6 0 2 255\n", r"invalid image size 0x2"),
        (b"P6 1 1 0\n\x00\x00\x00", r"invalid PPM maximum value 0"),
        (b"P6 1 1 255", r"no whitespace after the maximum value"),
    ],
)
def test_bad_ppm_is_a_readable_error(data, message):
    with pytest.raises(ScreenshotError, match=r"^screenshot of desktop 'dev': .*" + message):
        parse_ppm(data, what="screenshot of desktop 'dev'")


def test_large_image_is_split_into_several_idat_chunks():
    width, height = 1024, 512
    pixels = os.urandom(width * height * 3)  # incompressible: > 1 MiB compressed
    png = encode_png(width, height, pixels)
    assert sum(1 for kind, _ in _chunks(png) if kind == b"IDAT") >= 2
    assert _decode_own_png(png)[3] == pixels


def test_encode_png_checks_its_input():
    with pytest.raises(ValueError, match="2x2x3 needs 12 bytes"):
        encode_png(2, 2, b"\x00" * 11)
    with pytest.raises(ValueError, match="channels must be 1"):
        encode_png(1, 1, b"\x00\x00", channels=2)


# ---- measuring PNGs written by others -------------------------------------------------------


def _filter_rows(rows: list[bytes], bpp: int, kinds: list[int]) -> bytes:
    """Forward PNG filtering (the encoder side), one filter type per row."""
    out, previous = [], bytes(len(rows[0]))
    for row, kind in zip(rows, kinds):
        filtered = bytearray()
        for i, value in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 0:
                predictor = 0
            elif kind == 1:
                predictor = a
            elif kind == 2:
                predictor = b
            elif kind == 3:
                predictor = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
            filtered.append((value - predictor) & 0xFF)
        out.append(bytes([kind]) + bytes(filtered))
        previous = row
    return b"".join(out)


def _png(width, height, depth, colour_type, raw: bytes, *, palette=b"", interlace=0) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    parts = [PNG_SIGNATURE, chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace))]
    if palette:
        parts.append(chunk(b"PLTE", palette))
    compressed = zlib.compress(raw)
    parts += [chunk(b"IDAT", compressed[:10]), chunk(b"IDAT", compressed[10:]), chunk(b"IEND", b"")]
    return b"".join(parts)


def test_every_filter_type_is_undone_exactly():
    width, height = 9, 10
    pixels = _pattern(width, height)
    rows = [pixels[y * width * 3 : (y + 1) * width * 3] for y in range(height)]
    kinds = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    raw = _filter_rows(rows, 3, kinds)
    assert _unfilter(raw, height, width * 3, 3, "test") == rows
    png = _png(width, height, 8, 2, raw)
    expected = len({pixels[i : i + 3] for i in range(0, len(pixels), 3)})
    assert measure_png(png) == (width, height, expected)


def test_blank_screen_has_one_colour(tmp_path):
    png = encode_png(800, 600, b"\x10\x20\x30" * (800 * 600))
    assert measure_png(png) == (800, 600, 1)
    shot = Screenshot(str(tmp_path / "dev.png"), 800, 600, 1, True, "vdesk-dev")
    with pytest.raises(ScreenshotError) as info:
        assert_usable(shot)
    assert str(info.value) == (
        "desktop 'vdesk-dev' has no usable display: the screen is blank (every pixel has the same colour)"
        f" (screenshot: {tmp_path / 'dev.png'})"
    )
    tiny_blank = Screenshot("/tmp/x.png", 320, 200, 1, True, "vdesk-dev")
    with pytest.raises(ScreenshotError, match=r"blank .*; the screen is 320x200, smaller than the required 640x400"):
        assert_usable(tiny_blank)


def test_palette_16_bit_and_sub_byte_pngs():
    # 4x2 palette image, 2 bits per pixel; indices 0 and 3 point at the same colour.
    palette = b"\x00\x00\x00" + b"\xff\x00\x00" + b"\x00\xff\x00" + b"\x00\x00\x00"
    raw = b"\x00" + bytes([0b00011011]) + b"\x00" + bytes([0b00000000])
    assert measure_png(_png(4, 2, 2, 3, raw, palette=palette)) == (4, 2, 3)
    # 16-bit grey: values differing only in the low byte are distinct colours.
    raw = b"\x00" + struct.pack(">3H", 1, 256, 257) + b"\x02" + b"\x00" * 6
    assert measure_png(_png(3, 2, 16, 0, raw)) == (3, 2, 3)
    # 1-bit grey, width not a multiple of 8: padding bits must not count.
    raw = b"\x00" + bytes([0b11111111]) + b"\x00" + bytes([0b11111110])
    assert measure_png(_png(7, 2, 1, 0, raw)) == (7, 2, 1)


def test_interlaced_png_is_measured():
    width, height = 10, 9
    pixels = _pattern(width, height)
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b""
    for x0, y0, dx, dy in passes:
        rows = [
            b"".join(pixels[(y * width + x) * 3 : (y * width + x) * 3 + 3] for x in range(x0, width, dx))
            for y in range(y0, height, dy)
        ]
        rows = [r for r in rows if r]
        if rows:
            raw += _filter_rows(rows, 3, [4] * len(rows))
    expected = len({pixels[i : i + 3] for i in range(0, len(pixels), 3)})
    assert measure_png(_png(width, height, 8, 2, raw, interlace=1)) == (width, height, expected)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda png: png[:20] + bytes([png[20] ^ 1]) + png[21:], r"PNG chunk IHDR has a bad checksum"),
        (lambda png: b"GIF89a" + png[6:], r"not a PNG image"),
        (lambda png: png[:-12], r"PNG ends without an IEND chunk"),
    ],
)
def test_corrupt_png_is_a_readable_error(mangle, message):
    png = encode_png(2, 2, b"\x00" * 12)
    with pytest.raises(ScreenshotError, match=r"^screenshot of desktop 'dev': " + message):
        measure_png(mangle(png), what="screenshot of desktop 'dev'")
