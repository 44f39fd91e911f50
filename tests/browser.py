"""Headless Chromium driven over the DevTools protocol (websocket-client), for page tests.

    with Chromium() as browser:
        page = browser.open(path_to_html, width=1280, height=900)
        page.evaluate('document.title'); page.screenshot(png_path)
        page.console_errors   # console.error / uncaught exceptions / failed loads, as text
        page.requests         # every URL the page asked for

Flags: headless, no sandbox (root), no GPU, no network side traffic, a fresh profile.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

FLAGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage', '--hide-scrollbars', '--mute-audio',
    '--remote-debugging-port=0', '--remote-allow-origins=*',
]


def chromium_binary() -> str | None:
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._id = 0
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.events: list[dict[str, Any]] = []

    def _on_event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get('method', ''), msg.get('params', {})
        self.events.append(msg)
        if method == 'Runtime.consoleAPICalled' and params.get('type') in ('error', 'assert'):
            text = ' '.join(str(a.get('value', a.get('description', ''))) for a in
                            params.get('args', []))
            self.console_errors.append(f'console.{params["type"]}: {text}')
        elif method == 'Runtime.exceptionThrown':
            d = params.get('exceptionDetails', {})
            desc = d.get('exception', {}).get('description') or d.get('text', '')
            self.console_errors.append(f'exception: {desc}')
        elif method == 'Log.entryAdded' and params.get('entry', {}).get('level') == 'error':
            self.console_errors.append(f'log: {params["entry"].get("text", "")}')
        elif method == 'Network.requestWillBeSent':
            self.requests.append(params.get('request', {}).get('url', ''))
        elif method == 'Network.loadingFailed':
            self.console_errors.append(f'load failed: {params.get("errorText", "")}')

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        want = self._id
        self.ws.send(json.dumps({'id': want, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == want:
                if 'error' in msg:
                    raise RuntimeError(f'{method}: {msg["error"]}')
                result: dict[str, Any] = msg.get('result', {})
                return result
            self._on_event(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        for msg in self.events:
            if msg.get('method') == method:
                return msg
        while time.monotonic() < end:
            self.ws.settimeout(max(0.1, end - time.monotonic()))
            msg = json.loads(self.ws.recv())
            self._on_event(msg)
            if msg.get('method') == method:
                return msg
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        got = self.send('Runtime.evaluate', expression=expression, returnByValue=True,
                        awaitPromise=True)
        if 'exceptionDetails' in got:
            raise RuntimeError(f'{expression}: {got["exceptionDetails"]}')
        return got['result'].get('value')

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        params: dict[str, Any] = {'format': 'png'}
        if full_page:
            params['captureBeyondViewport'] = True
        data = self.send('Page.captureScreenshot', **params)['data']
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.ws.close()


class Chromium:
    """A headless Chromium process with a fresh profile; ``open`` loads a local file."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or chromium_binary()
        if self.binary is None:
            msg = 'chromium is not installed (apt-get install -y chromium)'
            raise FileNotFoundError(msg)
        self.profile = Path(tempfile.mkdtemp(prefix='ptr-chromium-'))
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> Chromium:
        self.proc = subprocess.Popen(
            [self.binary, *FLAGS, f'--user-data-dir={self.profile}', 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / 'DevToolsActivePort'
        end = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > end:
                msg = 'chromium did not start (no DevToolsActivePort)'
                raise RuntimeError(msg)
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, file: Path, *, width: int = 1280, height: int = 900) -> Page:
        req = urllib.request.Request(f'http://127.0.0.1:{self.port}/json/new?about:blank',
                                     method='PUT')
        with urllib.request.urlopen(req, timeout=30) as resp:
            target = json.loads(resp.read())
        page = Page(target['webSocketDebuggerUrl'])
        for domain in ('Page', 'Runtime', 'Log', 'Network'):
            page.send(f'{domain}.enable')
        page.send('Emulation.setDeviceMetricsOverride', width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        page.send('Page.navigate', url=file.resolve().as_uri())
        page.wait_for('Page.loadEventFired')
        return page


def report_data(page: str) -> dict[str, Any]:
    """The data a ``ptr report`` page embeds (its ``report-data`` JSON block), parsed."""
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m is not None, 'no report-data block in the page'
    data: dict[str, Any] = json.loads(m.group(1).replace('<\\/', '</'))
    return data


def check_report_page(file: Path, *, episodes: int, screenshot: Path | None = None) -> Page:
    """Load a ``ptr report`` page; assert one table row per episode, canvases drawn, no console
    error and no request but ``file:``/``data:``. Returns the (closed) page for more checks."""
    with Chromium() as browser:
        page = browser.open(file)
        try:
            rows = page.evaluate('document.querySelectorAll("#episodes tbody tr").length')
            assert rows == episodes, (rows, episodes)
            assert int(page.evaluate('document.body.dataset.rendered') or 0) >= 1
            if screenshot is not None:
                page.screenshot(screenshot)
            assert page.console_errors == [], page.console_errors
            assert all(u.startswith(('file:', 'data:')) for u in page.requests), page.requests
        finally:
            page.close()
    return page
