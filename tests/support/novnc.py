"""noVNC's page in Selenium, as the browser console tests read and drive it: its state, its canvas, keys."""
from __future__ import annotations

import io
import time

from components.guest.screenshot import CONSOLE_SHARE, dominant_share, measure_png


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.2, fail: bool = True):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() >= deadline:
            assert not fail, f"timed out after {timeout_s:g}s waiting for {what}"
            return result
        time.sleep(poll_s)
    return result


def novnc_state(driver) -> str:
    classes = driver.execute_script("return document.documentElement.className")
    return next((c.removeprefix("noVNC_") for c in classes.split() if c in (
        "noVNC_connecting", "noVNC_connected", "noVNC_disconnecting", "noVNC_reconnecting")), "disconnected")


def canvas_png(driver) -> bytes:
    """What noVNC draws of the guest's screen, as PNG."""
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, "#noVNC_container canvas").screenshot_as_png


def settled_graphical_screen(driver, timeout_s: float, what: str, unlike: bytes | None = None,
                             alike: int = 2, shows=lambda png: True) -> bytes:
    """The canvas once it shows a graphical screen (project's measure: no colour over CONSOLE_SHARE of it, more
    than 16 colours) that has stopped changing (`alike` in a row the same, 2 s apart), is not `unlike`, and
    `shows(png)`."""
    seen: list[bytes] = []

    def settled():
        png = canvas_png(driver)
        _, _, colours = measure_png(png)
        if colours <= 16 or dominant_share(png) >= CONSOLE_SHARE or png == unlike or not shows(png):
            seen.clear()
            return None
        if seen and png != seen[-1]:
            seen.clear()
        seen.append(png)
        return png if len(seen) >= alike else None
    return wait_until(settled, timeout_s, what, poll_s=2)


def xfce_panel_drawn(png: bytes) -> bool:
    """Xfce's top panel is painted: Debian 12's Xfce draws it as a light bar (median grey ~245) where the
    wallpaper and the greeter's panel are dark (~40-50). Its window is mapped seconds before it is painted."""
    from PIL import Image, ImageStat
    image = Image.open(io.BytesIO(png)).convert("L")
    return ImageStat.Stat(image.crop((0, 4, image.width, 20))).median[0] > 160


_SHIFTED = dict(zip('~!@#$%^&*()_+{}|:"<>?', "`1234567890-=[]\\;',./"))


def type_keys(driver, text: str, *, select_all: bool = False) -> None:
    """Type as a person on a US keyboard does: Shift held for capitals and shifted symbols.

    Keyboard events go to noVNC's canvas, focused without a click (a click would land on the guest's
    screen). ChromeDriver's plain send_keys makes '>' without pressing Shift; qemu turns the key into a
    scancode and the guest (US layout) sees '<'. A real keyboard presses Shift, and so does this.
    select_all: ctrl+a first, so what is typed replaces what the focused field holds.
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    driver.execute_script("document.querySelector('#noVNC_container canvas').focus()")
    actions = ActionChains(driver)
    if select_all:
        actions.key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL)
    for char in text:
        base = _SHIFTED.get(char) or (char.lower() if char.isupper() else None)
        if base:
            actions.key_down(Keys.SHIFT).send_keys(base).key_up(Keys.SHIFT)
        else:
            actions.send_keys(char)
    actions.perform()
