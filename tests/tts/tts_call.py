"""A real call server speaking through a cloud TTS plugin pointed at its vendor fake.

The plugins are registered through the real plugin host exactly as their entry points would
be, the ``[tts]`` table is resolved from an in-memory ``plugins.toml`` (so ``${VAR}`` keys go
through the real resolver), and STT is the host's ``fake`` provider, which a test drives to
barge in. Used by the end-to-end tests and by ``bench/tts_plugins.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web
from aiohttp.test_utils import TestServer

import voicehost_elevenlabs_tts
import voicehost_openai_tts
from voicehost.config import ProviderChoice, Settings, parse_settings_table, resolve_providers
from voicehost.plugins import PluginHost
from voicehost.server import CallHandler, ServerSettings, TwilioSettings, build_app
from voicehost.testing.providers import FakeProvidersPlugin, FakeTranscriptionProvider
from voicehost.testing.twilio import TwilioSimulator

AUTH_TOKEN = "tts-e2e-auth-token-0123456789ab"
PUBLIC_URL = "https://voice.example.test"
#: The environment the ``${OPENAI_API_KEY}`` / ``${ELEVENLABS_API_KEY}`` defaults resolve in.
ENVIRON = {"OPENAI_API_KEY": "sk-test", "ELEVENLABS_API_KEY": "xi-test"}


@attrs.define
class TtsCallServer:
    """A running call server and what a test drives and observes.

    Attributes:
        base_url: where it listens (``http://127.0.0.1:<port>``).
        tts: the chosen TTS provider with its parsed config object.
        stt: the fake STT provider (``session.speech_start()`` barges in).
    """

    base_url: str
    app: web.Application
    tts: ProviderChoice
    stt: FakeTranscriptionProvider
    settings: ServerSettings
    test_server: TestServer

    def simulator(self, **kwargs: Any) -> TwilioSimulator:
        """A Twilio simulator signing with the server's token over its public URL."""
        return TwilioSimulator(
            self.base_url, auth_token=AUTH_TOKEN, public_url=PUBLIC_URL, **kwargs
        )

    async def close(self) -> None:
        """Stop the server and close the provider's pooled HTTP clients."""
        await self.test_server.close()
        await self.tts.provider.aclose()


async def start_tts_server(
    tts_id: str,
    tts_table: Mapping[str, Any],
    *,
    handler: CallHandler,
    environ: Mapping[str, str] = ENVIRON,
    **server: Any,
) -> TtsCallServer:
    """Start a call server with ``[tts] provider = tts_id`` and ``[tts.<tts_id>] = tts_table``.

    Raises:
        ConfigError: the table (or the environment it reads) is wrong, as at start-up.
    """
    fakes = FakeProvidersPlugin()
    host = PluginHost()
    host.register(fakes, name="voicehost-test-fakes")
    host.register(voicehost_openai_tts, name="voicehost-openai-tts")
    host.register(voicehost_elevenlabs_tts, name="voicehost-elevenlabs-tts")
    document = {
        "server": {"public_url": PUBLIC_URL, **server},
        "twilio": {"auth_token": AUTH_TOKEN},
        "stt": {"provider": "fake"},
        "tts": {"provider": tts_id, tts_id: dict(tts_table)},
    }
    config = Settings.from_dict(document, environ=dict(environ))
    runtime = resolve_providers(config, host, ("stt", "tts"))
    assert runtime.tts is not None
    settings = parse_settings_table(config, ServerSettings, "server")
    twilio = parse_settings_table(config, TwilioSettings, "twilio")
    app = build_app(settings, twilio=twilio, stt=runtime.stt, tts=runtime.tts, handler=handler)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    base_url = str(test_server.make_url("")).rstrip("/")
    return TtsCallServer(base_url, app, runtime.tts, fakes.stt, settings, test_server)


def padded(audio: bytes, frame: int = 160) -> bytes:
    """``audio`` as the call server sends it: the last partial frame padded with μ-law
    silence (0xFF) — the only padding, at the end of a reply."""
    return audio + b"\xff" * (-len(audio) % frame)
