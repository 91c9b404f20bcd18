"""A real browser looks at the docs site: headless Chromium, driven over the DevTools protocol.

The site is built (strict, as `make docs` does), served by the standard library on a free
127.0.0.1 port, and loaded by Debian's `chromium`. For each page the test records console
errors, uncaught exceptions, error log entries and requests that failed or left 127.0.0.1
(the site must work offline), reads the navigation, and saves a full-page screenshot under
var/screenshots/ for humans to look at.

    .venv/bin/pytest -q tests/e2e/test_browser.py && ls var/screenshots/

`make setup` and CI install chromium (scripts/setup.sh); a machine without it skips, CI fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# The lab page the browser loads: Lab 1's page (labs.toml `page = "labs/lab-1-serving.md"`) once it
# exists; until then another page, so the rest of the checks run. Switch to "labs/lab-1-serving/".
LAB_PAGE = "labs/lab-1-serving/"
# Each lab's notebook, rendered by the mkdocs hook (scripts/notebooks.py): with its plots when
# var/notebooks/ holds executed copies (`make docs` writes them), without outputs otherwise.
NOTEBOOK_PAGES = {
    f"notebook-{lab['id']}": f"notebooks/{Path(lab['notebook']).stem}/"
    for lab in tomllib.loads((ROOT / "labs" / "labs.toml").read_text())["lab"]
    if lab.get("notebook")
}
PAGES = {"home": "", "lab-1": LAB_PAGE, **NOTEBOOK_PAGES}
VIEWPORT = {"width": 1280, "height": 900}
MAX_SCREENSHOT_HEIGHT = 8_000

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium not installed (apt-get install chromium)",
)
pytestmark = [needs_chromium, pytest.mark.timeout(120)]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
]


@dataclass
class PageReport:
    url: str
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    nav_links: list[str] = field(default_factory=list)
    title: str = ""
    broken_images: list[str] = field(default_factory=list)
    article_images: list[str] = field(default_factory=list)
    admonitions: list[str] = field(default_factory=list)
    screenshot: Path | None = None


# ------------------------------------------------------------------ the site, served


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="docs-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ Chromium over DevTools


class DevTools:
    """The few DevTools calls the test needs, over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.json()
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def call(self, method: str, timeout_s: float = 15.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        await self.ws.send_json({"id": self._next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, timeout_s)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def wait_for_event(self, method: str, since: int, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e["method"] == method for e in self.events[since:]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout_s} s")
            await asyncio.sleep(0.05)

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def close(self) -> None:
        self._reader.cancel()


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[int]:
    """Start headless Chromium; yield its DevTools port; stop its whole process group."""
    assert CHROMIUM, "chromium is required in CI: install Debian's chromium package"
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the zygote and renderers stop with it
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        yield int(port_file.read_text().split()[0])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


NAV_LINKS_JS = """
Array.from(document.querySelectorAll('nav.md-nav--primary a.md-nav__link[href]'))
  .map(a => a.textContent.replace(/\\s+/g, ' ').trim())
"""
BROKEN_IMAGES_JS = """
Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)
"""
ARTICLE_IMAGES_JS = """
Array.from(document.querySelectorAll('article img')).filter(i => i.naturalWidth > 0).map(i => i.src)
"""
ADMONITIONS_JS = """
Array.from(document.querySelectorAll('article .admonition-title')).map(t => t.textContent.trim())
"""


async def _visit(dev: DevTools, url: str, name: str) -> PageReport:
    origin = urlsplit(url).netloc
    report = PageReport(url)
    start = len(dev.events)
    await dev.call("Page.navigate", url=url)
    await dev.wait_for_event("Page.loadEventFired", start)
    await asyncio.sleep(0.5)  # late console errors and lazy requests after the load event

    requests: dict[str, str] = {}
    for event in dev.events[start:]:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            report.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            report.console_errors.append(f"uncaught: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            report.console_errors.append(
                f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
            )
        elif method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            requests[params["requestId"]] = request_url
            if urlsplit(request_url).scheme in ("http", "https", "ws", "wss") and (
                urlsplit(request_url).netloc != origin
            ):
                report.external_requests.append(request_url)
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            report.failed_requests.append(f"{params['response']['status']} {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            failed = requests.get(params["requestId"], params["requestId"])
            report.failed_requests.append(f"{params.get('errorText')} {failed}")

    report.title = str(await dev.evaluate("document.title"))
    report.nav_links = list(await dev.evaluate(NAV_LINKS_JS) or [])
    report.broken_images = list(await dev.evaluate(BROKEN_IMAGES_JS) or [])
    report.article_images = list(await dev.evaluate(ARTICLE_IMAGES_JS) or [])
    report.admonitions = list(await dev.evaluate(ADMONITIONS_JS) or [])

    metrics = await dev.call("Page.getLayoutMetrics")
    height = min(int(metrics["cssContentSize"]["height"]), MAX_SCREENSHOT_HEIGHT)
    shot = await dev.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height, "scale": 1},
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    report.screenshot = SCREENSHOTS / f"{name}.png"
    report.screenshot.write_bytes(base64.b64decode(shot["data"]))
    return report


async def _browse(port: int, base: str) -> dict[str, PageReport]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            dev = DevTools(ws)
            try:
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await dev.call(f"{domain}.enable")
                await dev.call(
                    "Emulation.setDeviceMetricsOverride", deviceScaleFactor=1, mobile=False, **VIEWPORT
                )
                return {name: await _visit(dev, base + path, name) for name, path in PAGES.items()}
            finally:
                dev.close()


@pytest.fixture(scope="module")
def pages(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageReport]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as port:
        return asyncio.run(asyncio.wait_for(_browse(port, base_url), timeout=90))


# ------------------------------------------------------------------ the checks


@pytest.mark.parametrize("name", list(PAGES))
def test_page_has_no_console_errors_or_uncaught_exceptions(pages: dict[str, PageReport], name: str) -> None:
    report = pages[name]
    assert "404" not in report.title, f"{report.url} is the 404 page; is PAGES[{name!r}] right?"
    assert report.console_errors == [], report.url


@pytest.mark.parametrize("name", list(PAGES))
def test_page_has_no_failed_requests_and_stays_offline(pages: dict[str, PageReport], name: str) -> None:
    report = pages[name]
    assert report.failed_requests == [], report.url
    assert report.external_requests == [], f"{report.url} loads from outside the site (must work offline)"
    assert report.broken_images == [], report.url


@pytest.mark.parametrize("name", list(PAGES))
def test_nav_links_every_lab_in_the_manifest(pages: dict[str, PageReport], name: str) -> None:
    labs = tomllib.loads((ROOT / "labs" / "labs.toml").read_text())["lab"]
    links = pages[name].nav_links
    missing = [
        lab["id"] for lab in labs if not any(re.search(rf"\bLab {lab['id']}\b", text) for text in links)
    ]
    assert missing == [], f"no nav link titled 'Lab N ...' for labs {missing}; nav links: {links}"


@pytest.mark.parametrize("name", list(NOTEBOOK_PAGES))
def test_notebook_page_shows_its_plots_or_says_why_not(pages: dict[str, PageReport], name: str) -> None:
    report = pages[name]
    notes = " | ".join(report.admonitions)
    if "without its outputs" in notes:  # the site was built without executed copies (make docs makes them)
        assert report.article_images == [], report.url
    else:
        assert "executed" in notes, f"{report.url}: no note saying where the outputs come from: {notes!r}"
        assert report.article_images, f"{report.url}: an executed notebook page without a plot"


@pytest.mark.parametrize("name", list(PAGES))
def test_screenshot_is_saved(pages: dict[str, PageReport], name: str) -> None:
    shot = pages[name].screenshot
    assert shot is not None and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000, "a nearly empty screenshot: did the page render?"
