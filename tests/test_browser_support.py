"""Headless Chromium driven over the Chrome DevTools Protocol (a WebSocket, spoken with the
``websockets`` library): open pages, evaluate JavaScript, wait for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab, attached through a flat CDP session."""

    def __init__(self, browser: Browser, session_id: str):
        self.browser = browser
        self.session_id = session_id

    async def evaluate(self, expression: str) -> Any:
        result = await self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session_id
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 5.0) -> Any:
        """Poll ``expression`` until it is truthy (errors count as not yet); its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except RuntimeError as exc:  # e.g. the page is still loading
                value, problem = None, exc
            else:
                problem = None
            if value:
                return value
            if time.monotonic() > deadline:
                console = "\n".join(self.browser.console)
                where = await self.evaluate("location.href + ' ' + document.readyState")
                raise TimeoutError(
                    f"{expression!r} still falsy after {timeout} s at {where}; console:\n{console}"
                ) from problem
            await asyncio.sleep(0.05)


class Browser:
    """A headless Chromium process (its own process group) and its DevTools connection."""

    def __init__(self) -> None:
        path = chromium_path()
        if path is None:
            raise RuntimeError("chromium is not installed (scripts/test installs it)")
        self.profile = tempfile.mkdtemp(prefix="pyswoole-chromium-")
        self.proc = subprocess.Popen(
            [path, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._socket: Any = None
        self._reader: asyncio.Task | None = None
        self.console: list[str] = []  # console messages of every page (``Runtime.enable`` is on)

    async def connect(self, timeout: float = 20.0) -> Browser:
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._socket = await websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self._socket:
            message = json.loads(raw)
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"]["args"]
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            waiter = self._waiting.pop(message.get("id", 0), None)
            if waiter is not None and not waiter.done():
                if "error" in message:
                    waiter.set_exception(RuntimeError(f"CDP error: {message['error']}"))
                else:
                    waiter.set_result(message.get("result", {}))

    async def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        waiter = self._waiting[command_id] = asyncio.get_running_loop().create_future()
        await self._socket.send(json.dumps(message))
        return await asyncio.wait_for(waiter, 10)

    async def open(self, url: str) -> Page:
        """A new tab showing ``url`` (navigated once attached: returns when the page has come)."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        session = attached["sessionId"]
        await self.send("Runtime.enable", {}, session)
        navigated = await self.send("Page.navigate", {"url": url}, session)
        if "errorText" in navigated:
            raise RuntimeError(f"cannot load {url}: {navigated['errorText']}")
        return Page(self, session)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._socket is not None:
            await self._socket.close()
        self.kill()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the browser's own group: its renderers too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)
