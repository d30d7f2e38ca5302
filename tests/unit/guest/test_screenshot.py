"""Screenshots: libvirt's test driver, PPM/PNG from libvirt turned into PNG (by Pillow), and what is measured."""

import io

import pytest
from PIL import Image

from components.host import connection  # noqa: F401  (silences libvirt's default error printing)
from components.guest.screenshot import (
    PNG_SIGNATURE,
    Screenshot,
    ScreenshotError,
    assert_usable,
    capture,
    dominant_share,
    measure_png,
    to_png,
)

TEST_URI = "test:///default"


def _pattern(width: int, height: int) -> bytes:
    """RGB pixels where every pixel differs from its neighbours."""
    return bytes(v for y in range(height) for x in range(width) for v in (x * 37 % 256, y * 59 % 256, (x * y) % 256))


def _pixels(png: bytes) -> tuple[str, tuple[int, int], bytes]:
    """Decoded independently of the code under test's own path: (mode, size, raw bytes)."""
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.mode, image.size, image.tobytes()


def _png(image: Image.Image, **save) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **save)
    return out.getvalue()


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
    assert shot == Screenshot(str(dest), 1120, 832, shot.distinct_colours, False, "test", shot.dominant_share)
    assert 0 < shot.dominant_share < 1
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


# ---- what libvirt returns, turned into PNG -----------------------------------------------------


def test_a_ppm_becomes_a_png_with_the_same_pixels():
    pixels = _pattern(7, 5)
    png = to_png("image/x-portable-pixmap", b"P6\n# written by a test\n7 # width\n 5\n255\n" + pixels)
    assert png.startswith(PNG_SIGNATURE)
    assert _pixels(png) == ("RGB", (7, 5), pixels)
    assert measure_png(png) == (7, 5, len({pixels[i:i + 3] for i in range(0, len(pixels), 3)}))


def test_a_pgm_becomes_a_greyscale_png():
    pixels = bytes(range(0, 240, 10))  # 6x4
    png = to_png("image/x-portable-graymap", b"P5\n6 4\n255\n" + pixels)
    assert _pixels(png) == ("L", (6, 4), pixels)
    assert measure_png(png) == (6, 4, 24)


def test_small_and_16_bit_maximum_values_are_scaled_to_8_bits():
    assert _pixels(to_png("", b"P6 2 1 15\n" + bytes([0, 7, 15, 15, 8, 1])))[2] == bytes([0, 119, 255, 255, 136, 17])
    assert _pixels(to_png("", b"P6 1 1 65535\n" + bytes([255, 255, 128, 0, 0, 0])))[2] == bytes([255, 128, 0])


def test_to_png_dispatches_on_mime_type():
    png = to_png("image/x-portable-pixmap", b"P6 1 1 255\n" + b"\x01\x02\x03")
    assert _pixels(png) == ("RGB", (1, 1), b"\x01\x02\x03")
    assert to_png("image/png", png) is png
    with pytest.raises(ScreenshotError, match=r"libvirt returned 'image/bmp', which vdesk cannot read"):
        to_png("image/bmp", b"BM....")


@pytest.mark.parametrize("data", [
    b"P6 2 2 255\n" + b"\x00" * 11,     # truncated raster
    b"P6 2 x 255\n",                     # malformed header
    b"P6 1 1 0\n\x00\x00\x00",           # no maximum value
    b"P6 1 1 255",                        # nothing after the header
])
def test_a_bad_ppm_is_a_readable_error_naming_the_desktop(data):
    with pytest.raises(ScreenshotError, match=r"^screenshot of desktop 'dev': not a readable PNG or PPM/PGM image"):
        to_png("image/x-portable-pixmap", data, what="screenshot of desktop 'dev'")


# ---- measuring -------------------------------------------------------------------------------


def test_a_blank_screen_has_one_colour_and_is_not_usable(tmp_path):
    png = _png(Image.new("RGB", (800, 600), (16, 32, 48)))
    assert measure_png(png) == (800, 600, 1)
    assert dominant_share(png) == 1.0
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


def test_a_text_console_is_mostly_one_colour():
    console = Image.new("RGB", (720, 400))                       # black, with a few lines of grey text
    for y in range(0, 80, 16):
        console.paste((170, 170, 170), (0, y, 400, y + 8))
    assert 0.85 < dominant_share(_png(console)) < 1


def test_palette_16_bit_and_interlaced_pngs_are_measured():
    palette = Image.new("P", (4, 2))
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 0])   # entries 0 and 3: the same black
    palette.putdata([0, 1, 2, 3, 0, 0, 0, 0])
    assert measure_png(_png(palette)) == (4, 2, 3)
    grey16 = Image.new("I;16", (3, 1))
    grey16.putdata([1, 256, 257])
    assert measure_png(_png(grey16)) == (3, 1, 3)
    pattern = Image.frombytes("RGB", (10, 9), _pattern(10, 9))
    interlaced = _png(pattern)
    assert measure_png(interlaced) == (10, 9, len(set(pattern.get_flattened_data())))


@pytest.mark.parametrize("mangle", [
    lambda png: png[:20] + bytes([png[20] ^ 1]) + png[21:],     # a bad checksum
    lambda png: b"GIF89a" + png[6:],                              # not a PNG
    lambda png: png[:-30],                                        # cut short
])
def test_a_corrupt_png_is_a_readable_error(mangle):
    png = _png(Image.frombytes("RGB", (8, 8), _pattern(8, 8)))
    with pytest.raises(ScreenshotError, match=r"^screenshot of desktop 'dev': not a readable PNG image"):
        measure_png(mangle(png), what="screenshot of desktop 'dev'")


def test_a_desktop_is_told_from_a_console_by_size_and_colour():
    from components.guest.screenshot import Screenshot, shows_desktop
    desktop = Screenshot("d.png", 1280, 800, 5000, False, "x", 0.35)
    assert shows_desktop(desktop, min_width=1280, min_height=800)
    assert not shows_desktop(Screenshot("c.png", 1280, 800, 2, False, "x", 0.97), min_width=1280, min_height=800)
    assert not shows_desktop(Screenshot("s.png", 1024, 768, 5000, False, "x", 0.3), min_width=1280, min_height=800)


def test_waiting_for_the_desktop_takes_screenshots_until_it_shows(monkeypatch, tmp_path):
    from components import waiting
    from components.guest import screenshot
    frames = [(720, 400, 0.98, b"console"), (1280, 800, 0.99, b"grey"),   # the text console, X starts
              (1280, 800, 0.87, b"wallpaper"), (1280, 800, 0.87, b"wallpaper"),  # the desktop, being drawn,
              (1280, 800, 0.87, b"wallpaper"),                                   # a pause of 2 s in its drawing
              (1280, 800, 0.81, b"panel"), (1280, 800, 0.81, b"panel"),          # ... and settled: four alike
              (1280, 800, 0.81, b"panel"), (1280, 800, 0.81, b"panel")]
    shots = iter(frames)
    taken = []

    def capture(conn, name, dest):
        width, height, share, pixels = next(shots)
        dest.write_bytes(pixels)
        taken.append(pixels)
        return screenshot.Screenshot(str(dest), width, height, 4000, False, "d", share)
    monkeypatch.setattr(screenshot, "capture", capture)
    monkeypatch.setattr(waiting.time, "sleep", lambda s: None)
    shot = screenshot.wait_for_desktop(None, "d", tmp_path / "s.png", timeout_s=60, min_width=1280,
                                       min_height=800)
    assert shot.dominant_share == 0.81 and len(taken) == 9



def test_waiting_for_the_desktop_gives_up_at_its_deadline_saying_what_it_saw(monkeypatch, tmp_path):
    from components import waiting
    from components.guest import screenshot
    clock = iter([0.0, 5.0, 11.0, 11.0])
    monkeypatch.setattr(waiting.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(waiting.time, "sleep", lambda s: None)
    monkeypatch.setattr(screenshot, "capture", lambda conn, name, dest: screenshot.Screenshot(
        str(dest), 720, 400, 2, False, "d", 0.97))
    with pytest.raises(ScreenshotError, match=r"shows no graphical desktop after 10 s: its screen is 720x400 "
                                              r"\(wanted at least 1280x800\) and 97% of it is one colour"):
        screenshot.wait_for_desktop(None, "d", tmp_path / "s.png", timeout_s=10, min_width=1280, min_height=800)
