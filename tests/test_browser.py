"""The seed's long-connection projects in a real browser (headless Chromium over CDP): the chat
room, the live statistics page and the fixed ``websocket.html``, each served by its example."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time

import pytest
from helpers import EXAMPLES, free_port, port_open
from test_browser_support import Browser, chromium_path

from pyswoole.websocket import connect

pytestmark = pytest.mark.skipif(
    chromium_path() is None and not os.environ.get("CI"), reason="chromium is not installed"
)


def start_example(run_server, name: str) -> int:
    port = free_port()
    run_server([EXAMPLES / name, "--host", "127.0.0.1", "--port", port], ready=lambda: port_open(port))
    return port


def in_browser(scenario):
    async def main():
        browser = Browser()
        try:
            await browser.connect()
            await scenario(browser)
        finally:
            await browser.close()

    asyncio.run(asyncio.wait_for(main(), 60))


MESSAGES = "Array.from(document.querySelectorAll('#messages p'), p => p.textContent)"


async def send_from(page, text: str) -> None:
    await page.evaluate(
        f"document.querySelector('input[name=content]').value = {json.dumps(text)};"
        "document.querySelector('button').click()"
    )


def test_chat_between_two_pages(run_server):
    port = start_example(run_server, "swoole_ws.py")

    async def scenario(browser):
        first = await browser.open(f"http://127.0.0.1:{port}/")
        second = await browser.open(f"http://127.0.0.1:{port}/swoole_chat.html")
        async with await connect(f"ws://127.0.0.1:{port}/") as probe:  # both pages are connected once
            while True:  # they show what the probe says
                await probe.send("probe")
                await asyncio.sleep(0.2)
                shown = [await page.evaluate(MESSAGES) for page in (first, second)]
                if all(any(line.endswith(": probe") for line in lines) for lines in shown):
                    break
            await send_from(first, "hello")
            started = time.monotonic()
            for page in (first, second):
                await page.wait_for(
                    f"{MESSAGES}.some(line => /^Client-\\d+: hello$/.test(line))", timeout=1.0
                )
            assert time.monotonic() - started < 1.0
            senders = {
                re.match(r"Client-(\d+)", (await page.evaluate(MESSAGES))[-1]).group(1)
                for page in (first, second)
            }
            assert len(senders) == 1  # the same sender seen by both, the sender included
            await send_from(second, "<b>x</b><img src=x onerror=alert(1)>")
            await first.wait_for(
                f"{MESSAGES}.some(line => line.endsWith(': <b>x</b><img src=x onerror=alert(1)>'))"
            )
            assert await first.evaluate("document.querySelector('#messages b, #messages img')") is None
            assert (await probe.recv()).endswith(": probe")  # a plain client gets the same lines

    in_browser(scenario)


def test_statistics_page_fills_and_refreshes_without_accumulating(run_server):
    port = start_example(run_server, "workerman_ws.py")
    counts = "['load','memory','disk'].map(id => document.querySelectorAll('#' + id + ' p').length)"

    async def scenario(browser):
        page = await browser.open(f"http://127.0.0.1:{port}/")
        await page.wait_for(f"{counts}.every(n => n > 0)", timeout=5)
        first_load = await page.evaluate("document.querySelector('#load p').textContent")
        assert "load average" in first_load
        first_counts = await page.evaluate(counts)
        assert "Mem:" in await page.evaluate("document.getElementById('memory').textContent")
        assert "Filesystem" in await page.evaluate("document.getElementById('disk').textContent")
        await page.wait_for(
            f"document.querySelector('#load p').textContent !== {json.dumps(first_load)}", timeout=5
        )
        assert await page.evaluate(counts) == first_counts  # replaced, not appended

    in_browser(scenario)


def test_fixed_websocket_page_logs_the_exchange(run_server):
    port = start_example(run_server, "websocket.py")

    async def scenario(browser):
        page = await browser.open(f"http://127.0.0.1:{port}/")
        log = "document.getElementById('log').textContent"
        await page.wait_for(f"{log}.includes('接收数据： Server：Hello')", timeout=5)
        text = await page.evaluate(log)
        assert text.startswith("建立连接\n")
        assert "接收数据： Hello, welcome\n" in text

    in_browser(scenario)
