"""``/monitor`` in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium) during a call simulated against ``build_serve_app`` with the fake
providers and the scripted responder, with ``[records] api_token`` set (the page works
through its cookie): the caller's interim and final transcript show within 1 s, a bot line
from :meth:`MonitorHub.on_turn` shows with its latency, the hang-up button ends the call
(the simulator sees the close, the handler ``bot-hangup``), the call moves to the recent
calls, the page fits a phone's width and the browser console has no errors.

Skipped when Chromium or chromedriver is missing, except under ``CI`` (``.ci/run``
installs them), where that fails. ``VOICEHOST_MONITOR_SCREENSHOT=docs/monitor.png`` saves
the page during the call there.

Selenium blocks, so every browser step runs in a worker thread while the event loop serves
the call.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.app.monitor_routes import MONITOR_HUB_KEY
from voicehost.config import Settings
from voicehost.plugins import PluginHost
from voicehost.records import read_call
from voicehost.server.state import SERVER_KEY
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeProvidersPlugin

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
TOKEN = "monitor-test-token"
SCRIPT = {"greeting": "Hello there.", "rules": [{"match": r"\bhours\b", "reply": "Nine to five."}]}
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver; a skip without them (a failure under CI)."""
    if CHROMIUM and CHROMEDRIVER:
        return CHROMIUM, CHROMEDRIVER
    reason = (
        "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    )
    if IN_CI:
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


def start_chromium(chromium: str, chromedriver: str, profile: str) -> Any:
    """A headless Chromium under selenium, keeping the console log (no network needed:
    both binaries are given, so Selenium Manager is not asked for them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1100,760"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


async def until(driver: Any, check: Callable[[Any], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check(driver)`` (in a thread) until it is truthy; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await asyncio.to_thread(check, driver)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


def texts(driver: Any, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


async def test_monitor_page_shows_a_live_call_and_hangs_it_up(browser_paths, tmp_path):
    from selenium.webdriver.common.by import By

    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    db = tmp_path / "calls.db"
    settings = Settings.from_dict(
        {
            "stt": {"provider": "fake"},
            "tts": {"provider": "fake", "fake": {"ms_per_char": 10}},
            "responder": {"provider": "scripted", "scripted": SCRIPT},
            "records": {"path": str(db), "api_token": TOKEN},
        }
    )
    app = build_serve_app(load_app_config(settings=settings, host=host))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    profile = tempfile.mkdtemp(prefix="voicehost-chromium-", dir=tmp_path)
    driver = await asyncio.to_thread(start_chromium, *browser_paths, profile)
    try:
        async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
            base = str(server.make_url("/monitor"))
            await asyncio.to_thread(driver.get, f"{base}?token={TOKEN}")
            assert driver.current_url == base  # the token left the address bar for a cookie
            await until(
                driver, lambda d: texts(d, "#status") == ["live"], 10, "the event stream opens"
            )

            call = await sim.start_call(from_="+15550100", to="+15550200")
            sid = call.call_sid
            card = f'.live-call[data-sid="{sid}"]'
            stt = await fakes.stt.wait_for_session()
            await until(driver, lambda d: texts(d, f"{card} .who"), 5, "the call's card")
            assert texts(driver, f"{card} .who") == ["+15550100 → +15550200"]

            stt.partial("what are")
            await until(
                driver, lambda d: "what are" in texts(d, f"{card} .interim .text"), 1.0, "interim"
            )
            style = await asyncio.to_thread(
                driver.execute_script,
                "return getComputedStyle(arguments[0]).fontStyle",
                driver.find_element(By.CSS_SELECTOR, f"{card} .interim .text"),
            )
            assert style == "italic"  # interim text is shown differently from finals

            stt.final("what are your hours")  # the behaviour bound: on the page within 1 s
            finals = f"{card} .line.role-caller.kind-final .text"
            await until(
                driver, lambda d: "what are your hours" in texts(d, finals), 1.0, "the final"
            )
            assert texts(driver, f"{card} .interim .text") == [""]  # the final replaced it

            # Bot lines come from the conversation through MonitorHub.on_turn.
            hub = app[MONITOR_HUB_KEY]
            final_at = next(x.at_ms for x in hub.live[sid].lines if x.role == "caller")
            hub.on_turn(sid, "bot", "reply", "A line from the bot.", final_at + 1, latency_ms=420)
            bots = f"{card} .line.role-bot .text"
            await until(
                driver,
                lambda d: any("A line from the bot." in t for t in texts(d, bots)),
                1.0,
                "bot",
            )
            assert any(t.endswith("420 ms") for t in texts(driver, bots))  # its latency

            await call.dtmf("7")
            await until(
                driver, lambda d: "keys 7" in " ".join(texts(d, f"{card} .stats")), 1.0, "key"
            )

            shot = os.environ.get("VOICEHOST_MONITOR_SCREENSHOT")
            if shot:
                await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
                await asyncio.sleep(0.3)  # let the last lines arrive
                Path(shot).parent.mkdir(parents=True, exist_ok=True)
                assert await asyncio.to_thread(driver.save_screenshot, shot)

            button = driver.find_element(By.CSS_SELECTOR, f"{card} button.hangup")
            await asyncio.to_thread(button.click)
            assert await call.wait_closed(timeout=10) == 1000  # the simulator sees the close
            recent = f'.recent-call[data-sid="{sid}"]'
            await until(driver, lambda d: texts(d, f"{recent} summary"), 5, "the recent call")
            assert "bot-hangup" in texts(driver, f"{recent} summary")[0]
            assert texts(driver, card) == []

            live = app[SERVER_KEY]
            for _ in range(500):
                if sid not in live.calls and hub.recent and hub.recent[-1].call_sid == sid:
                    break
                await asyncio.sleep(0.01)
            assert hub.recent[-1].end_reason == "bot-hangup"
            handler = live.handler.inner  # the ResponderCallHandler inside the monitor's wrapper
            await handler.store.flush()
            assert read_call(db, sid)["end_reason"] == "bot-hangup"  # what the handler saw

            # Usable on a phone: nothing wider than the screen.
            await asyncio.to_thread(driver.set_window_size, 390, 844)
            overflow = await asyncio.to_thread(
                driver.execute_script,
                "const root = document.documentElement;return root.scrollWidth - root.clientWidth",
            )
            assert overflow <= 0

            logs = await asyncio.to_thread(driver.get_log, "browser")
            errors = [entry for entry in logs if entry["level"] in ("SEVERE", "ERROR")]
            assert errors == [], errors
    finally:
        await asyncio.to_thread(driver.quit)
        await server.close()
