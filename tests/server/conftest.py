"""Fixtures for the call-server tests: a real server on 127.0.0.1 with fake providers
registered through the real plugin host, and a Twilio simulator pointed at it.

The server believes it sits behind a TLS proxy: ``public_url`` is
``https://voice.example.test`` while it listens on ``http://127.0.0.1:<port>``, exactly as in
production; the simulator signs webhooks over the public URL as Twilio would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from voicehost.config import Settings, resolve_providers
from voicehost.plugins import PluginHost
from voicehost.server import SERVER_KEY, CallHandler, CallServer, ServerSettings, build_app
from voicehost.testing.providers import FakeProvidersPlugin
from voicehost.testing.twilio import TwilioSimulator

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://voice.example.test"


@attrs.define
class Harness:
    """A running server and what a test needs to drive and observe it."""

    base_url: str
    app: web.Application
    plugin: FakeProvidersPlugin
    settings: ServerSettings
    test_server: TestServer

    @property
    def server(self) -> CallServer:
        return self.app[SERVER_KEY]

    def simulator(self, **kwargs: Any) -> TwilioSimulator:
        """A simulator signing with the server's token over its public URL."""
        kwargs.setdefault("auth_token", self.settings.auth_token or None)
        kwargs.setdefault("public_url", self.settings.public_url)
        return TwilioSimulator(self.base_url, **kwargs)


MakeServer = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    """``await make_server(handler=..., stt="fake", stt_config={...}, tts_config={...},
    **server_settings)`` starts a server; all are stopped at the end of the test."""
    started: list[TestServer] = []

    async def make(
        *,
        handler: CallHandler | None = None,
        stt: str | None = "fake",
        tts: str | None = "fake",
        stt_config: dict[str, Any] | None = None,
        tts_config: dict[str, Any] | None = None,
        twilio: dict[str, Any] | None = None,
        **server: Any,
    ) -> Harness:
        plugin = FakeProvidersPlugin()
        host = PluginHost()
        host.register(plugin, name="voicehost-test-fakes")
        document: dict[str, Any] = {
            "server": {"public_url": PUBLIC_URL, **server},
            "twilio": {"auth_token": AUTH_TOKEN} if twilio is None else twilio,
        }
        kinds: list[str] = []
        if stt:
            document["stt"] = {"provider": stt, stt: stt_config or {}}
            kinds.append("stt")
        if tts:
            document["tts"] = {"provider": tts, tts: tts_config or {}}
            kinds.append("tts")
        config = Settings.from_dict(document, environ={})
        runtime = resolve_providers(config, host, tuple(kinds))  # type: ignore[arg-type]
        settings = ServerSettings.from_tables(
            config.table("server"), config.table("twilio"), environ={}
        )
        app = build_app(settings, stt=runtime.stt, tts=runtime.tts, handler=handler)
        test_server = TestServer(app, host="127.0.0.1")
        await test_server.start_server()
        started.append(test_server)
        base_url = str(test_server.make_url("")).rstrip("/")
        return Harness(base_url, app, plugin, settings, test_server)

    yield make
    for test_server in started:
        await test_server.close()


@pytest.fixture
async def harness(make_server: MakeServer) -> Harness:
    """A server with the default settings and both fakes."""
    return await make_server()
