"""Headless Debian Chromium under Selenium, as every browser test drives it.

Why these flags: this machine's network is closed, and without the background-networking flags Chromium
keeps failing connections at every start. Each browser gets an empty profile of its own.
"""
from __future__ import annotations

import contextlib
import tempfile
from typing import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


@contextlib.contextmanager
def chromium(width: int, height: int) -> Iterator:
    """A Selenium driver of a new headless Chromium whose window is width x height; quit at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="vdesk-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def fit_viewport(driver, width: int, height: int) -> None:
    """Make the page's viewport width x height (the window has a frame around it): noVNC then draws a
    desktop of that resolution 1:1."""
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    outer = driver.get_window_size()
    driver.set_window_size(outer["width"] + width - inner[0], outer["height"] + height - inner[1])
