"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` package).

The report is rendered offline (network disabled) and driven through the
DevTools protocol (``websocket-client``, in the ``dev`` extra): no console
message, no failed resource, no JavaScript exception; MathML lays out as math
(non-zero boxes), every figure has a visible size, the page does not overflow
horizontally; a full-page screenshot is written next to the report
(``$TT_SCREENSHOT_DIR`` or the pytest temporary directory) for a person to look at.

When ``/usr/bin/chromium`` is absent the test is skipped with the reason
printed (``make test`` shows it in its summary; ``.ci/run`` installs chromium).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from transformer_theory.theory import registry
from transformer_theory.theory.report import build_report

#: Debian's chromium; TT_CHROMIUM overrides it (e.g. to see the skip message).
CHROMIUM = os.environ.get("TT_CHROMIUM", "/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0")

#: A subset with statements, statistics, a derivation and figures, quick in ci.
CLAIMS = ("attention.temperature_limit,attention.unit_logit_variance,"
          "masking.post_softmax_unrenormalized,proof.softmax.shift_invariance")


def _skip_reason() -> str | None:
    if not os.path.exists(CHROMIUM):
        return (f"{CHROMIUM} not found: install Debian's chromium package "
                f"(apt-get install -y chromium) to run the browser test of the report")
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "websocket-client is not installed (pip install -e '.[dev]')"
    return None


_REASON = _skip_reason()
# pytest's -ra (in addopts) lists the reason in the short summary of `make test`
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


class DevTools:
    """A minimal DevTools-protocol client for one page target."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev["method"] == method:
                return ev
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        raise TimeoutError(method)

    def drain(self, seconds: float) -> None:
        """Collect events for ``seconds`` more."""
        self.ws.settimeout(0.2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = json.loads(self.ws.recv())
            except Exception:
                continue
            if "method" in msg:
                self.events.append(msg)
        self.ws.settimeout(30)

    def close(self) -> None:
        self.ws.close()


def _launch(user_data_dir: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={user_data_dir}",
                             "--window-size=1280,1000", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("chromium did not print its DevTools address")


def _page_ws(browser_ws: str) -> str:
    import urllib.request

    port = re.search(r":(\d+)/", browser_ws).group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        targets = json.load(r)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def render(html_path: Path, screenshot: Path) -> dict:
    """Open ``html_path`` offline in headless Chromium; return what the page reported.

    Returns
    -------
    dict
        ``problems`` (console messages, log entries, exceptions, failed
        requests), ``layout`` (measurements from the page) and the screenshot path.
    """
    profile_dir = tempfile.mkdtemp(prefix="tt-chromium-")
    proc, browser_ws = _launch(profile_dir)
    try:
        dt = DevTools(_page_ws(browser_ws))
        for domain in ("Page", "Runtime", "Log", "Network"):
            dt.send(f"{domain}.enable")
        dt.send("Network.emulateNetworkConditions", offline=True, latency=0,
                downloadThroughput=-1, uploadThroughput=-1)
        dt.send("Page.navigate", url=html_path.resolve().as_uri())
        dt.wait_for("Page.loadEventFired", timeout=60)
        dt.drain(1.0)
        layout = dt.send("Runtime.evaluate", returnByValue=True, expression="""(() => {
            const boxes = sel => [...document.querySelectorAll(sel)].map(e => {
                const r = e.getBoundingClientRect(); return [r.width, r.height]; });
            return {
              math: boxes('math'), svg: boxes('figure svg'),
              codeFallbacks: document.querySelectorAll('code.latex').length,
              scrollWidth: document.documentElement.scrollWidth,
              clientWidth: document.documentElement.clientWidth,
              height: document.documentElement.scrollHeight,
              articles: document.querySelectorAll('article.claim').length,
              bodyFont: getComputedStyle(document.body).fontSize,
            }; })()""")["result"]["value"]
        # a full-page screenshot (capped so the PNG stays viewable)
        height = min(int(layout["height"]), 16000)
        shot = dt.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                       clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        problems = []
        for ev in dt.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled":
                problems.append(f"console.{p.get('type')}: "
                                + " ".join(str(a.get("value", a.get("description")))
                                           for a in p.get("args", [])))
            elif ev["method"] == "Runtime.exceptionThrown":
                problems.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif ev["method"] == "Log.entryAdded":
                entry = p.get("entry", {})
                if entry.get("level") in ("error", "warning"):
                    problems.append(f"log {entry.get('level')}: {entry.get('text')} "
                                    f"{entry.get('url', '')}")
            elif ev["method"] == "Network.loadingFailed":
                problems.append(f"failed request: {p.get('errorText')}")
            elif ev["method"] == "Network.requestWillBeSent":
                url = p.get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:", "about:")):
                    problems.append(f"network request: {url}")
        dt.close()
        return {"problems": problems, "layout": layout, "screenshot": screenshot}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-browser")
    claims = registry.find(CLAIMS)
    build_report(out, claims=claims, profile="ci", claims_pattern=CLAIMS)
    shots = Path(os.environ.get("TT_SCREENSHOT_DIR") or out)
    shots.mkdir(parents=True, exist_ok=True)
    result = render(out / "index.html", shots / "report.png")
    print(f"\n[test_report_browser] screenshot: {result['screenshot']}", file=sys.stderr)
    return result


def test_no_console_errors_or_requests(rendered):
    assert rendered["problems"] == []


def test_math_and_figures_are_laid_out(rendered):
    layout = rendered["layout"]
    assert layout["articles"] == len(registry.find(CLAIMS))
    assert layout["math"], "no MathML on the page"
    # MathML is laid out as math: every formula has a box of non-zero size
    assert all(w > 0 and h > 0 for w, h in layout["math"])
    assert layout["svg"], "no figure on the page"
    assert all(w > 200 and h > 100 for w, h in layout["svg"])
    assert layout["scrollWidth"] <= layout["clientWidth"], "the page overflows horizontally"


def test_screenshot_written(rendered):
    data = rendered["screenshot"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
