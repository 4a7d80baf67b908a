"""A headless Chromium driven by selenium, for the browser tests, the screenshots
(docs/screenshots.py) and the monitoring benchmark: the distribution's ``chromium`` and
``chromedriver`` (Debian: ``apt-get install chromium chromium-driver``), a fresh profile each
time, no network beyond what the pages load. Needs selenium (``pip install -e '.[test]'``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterator

__all__ = ["find_chromium", "chromium", "ChromiumMissing"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--force-device-scale-factor=1")


class ChromiumMissing(RuntimeError):
    pass


def find_chromium() -> tuple[str, str]:
    """(browser, chromedriver) paths; ChromiumMissing says how to install them."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise ChromiumMissing("headless Chromium and chromedriver are needed: "
                              "apt-get install -y chromium chromium-driver")
    return browser, driver


@contextlib.contextmanager
def chromium(width: int = 1440, height: int = 1000) -> Iterator[Any]:
    """A selenium WebDriver on a new headless Chromium; quits it (and its processes) and
    removes its profile on the way out."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium look for drivers on the network
    browser, driver_path = find_chromium()
    profile = tempfile.mkdtemp(prefix="dporch-chromium-")
    opts = Options()
    opts.binary_location = browser
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path, log_output=os.devnull))
    try:
        yield driver
    finally:
        procs = _processes(driver)
        try:
            driver.quit()
        finally:
            _reap(procs)
            shutil.rmtree(profile, ignore_errors=True)


def _processes(driver: Any) -> list[Any]:
    """chromedriver and every process under it (the browser, its renderers)."""
    try:
        import psutil

        root = psutil.Process(driver.service.process.pid)
        return [root, *root.children(recursive=True)]
    except Exception:  # noqa: BLE001 - gone already, or no psutil
        return []


def _reap(procs: list[Any], timeout: float = 5.0) -> None:
    """Wait for them to end after quit(); kill what is left."""
    if not procs:
        return
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)
