"""Fixtures for the call-server tests: a real server on 127.0.0.1 with fake providers
registered through the real plugin host, run by the production runner
(:func:`voicehost.server.make_runner`), and a Twilio simulator pointed at it.

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

from voicehost.config import Settings, parse_settings_table, resolve_providers
from voicehost.errors import VoicehostError
from voicehost.plugins import PluginHost
from voicehost.server import (
    SERVER_KEY,
    CallHandler,
    CallServer,
    LiveCallState,
    MemoryLiveState,
    ObservabilitySettings,
    ServerSettings,
    TwilioSettings,
    build_app,
    make_runner,
)
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
    twilio: TwilioSettings
    runner: web.AppRunner

    @property
    def server(self) -> CallServer:
        return self.app[SERVER_KEY]

    @property
    def live(self) -> MemoryLiveState:
        """The server's in-memory live state (tokens, webhook call data, live calls)."""
        live = self.server.live
        assert isinstance(live, MemoryLiveState)
        return live

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    async def close(self) -> None:
        """Stop the server (app shutdown: every call ends)."""
        await self.runner.cleanup()

    def simulator(self, **kwargs: Any) -> TwilioSimulator:
        """A simulator signing with the server's token over its public URL."""
        kwargs.setdefault("auth_token", self.twilio.auth_token or None)
        kwargs.setdefault("public_url", self.settings.public_url)
        return TwilioSimulator(self.base_url, **kwargs)


MakeServer = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    """``await make_server(handler=..., stt="fake", stt_config={...}, tts_config={...},
    twilio={...}, live=..., rest=..., observability={...}, api_token=..., **server_settings)``
    starts a server; all are stopped at the end of the test."""
    started: list[web.AppRunner] = []

    async def make(
        *,
        handler: CallHandler | None = None,
        stt: str | None = "fake",
        tts: str | None = "fake",
        stt_config: dict[str, Any] | None = None,
        tts_config: dict[str, Any] | None = None,
        twilio: dict[str, Any] | None = None,
        live: LiveCallState | None = None,
        rest: Any = None,
        observability: dict[str, Any] | None = None,
        api_token: str = "",
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
        settings = parse_settings_table(config, ServerSettings, "server")
        twilio_settings = parse_settings_table(config, TwilioSettings, "twilio")
        app = build_app(
            settings,
            twilio=twilio_settings,
            stt=runtime.stt,
            tts=runtime.tts,
            handler=handler,
            live=live,
            rest=rest,
            observability=ObservabilitySettings.model_validate(observability or {}),
            api_token=api_token,
        )
        runner = make_runner(app, shutdown_timeout=5.0)
        await runner.setup()
        started.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        base_url = f"http://127.0.0.1:{port}"
        return Harness(base_url, app, plugin, settings, twilio_settings, runner)

    yield make
    for runner in started:
        await runner.cleanup()


@pytest.fixture
async def harness(make_server: MakeServer) -> Harness:
    """A server with the default settings and both fakes."""
    return await make_server()


class RecordingRest:
    """Records ``update_call`` as ``(call_sid, status, twiml, audio_at_update())`` and
    ``hangup`` call SIDs; with ``fail`` every update raises Twilio's 21220."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.updates: list[tuple[str, str | None, str | None, Any]] = []
        self.hangups: list[str] = []
        self.audio_at_update: Callable[[], Any] = lambda: None

    async def update_call(
        self,
        call_sid: str,
        *,
        status: str | None = None,
        twiml: str | None = None,
        url: str | None = None,
    ) -> None:
        if self.fail:
            raise VoicehostError("Twilio error 21220: Call is not in-progress (HTTP 400)")
        self.updates.append((call_sid, status, twiml, self.audio_at_update()))

    async def hangup(self, call_sid: str) -> None:
        self.hangups.append(call_sid)


@pytest.fixture
def rest_fake() -> type[RecordingRest]:
    """:class:`RecordingRest`, the REST stand-in: ``rest_fake()`` / ``rest_fake(fail=True)``."""
    return RecordingRest
