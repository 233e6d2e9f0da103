"""Fixtures for the cloud STT plugin tests: the vendor fakes, configs pointing at them, known
utterances, and a recorder of the session callbacks.

The fakes live in ``tests/fakes/`` (shared with the TTS tests) and are imported as the
``fakes`` package, so ``tests/`` is put on ``sys.path`` here (pytest runs with
``--import-mode=importlib``, which does not do it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from fakes.deepgram import FakeDeepgram  # noqa: E402
from fakes.openai_realtime import FakeOpenAIRealtime  # noqa: E402
from fakes.stt_audio import silence, utterance  # noqa: E402

from voicehost import TranscriptionCallbacks  # noqa: E402
from voicehost_deepgram_stt import DeepgramSTTConfig  # noqa: E402
from voicehost_openai_stt import OpenAISTTConfig  # noqa: E402

#: Resilience knobs small enough for tests (the defaults wait 1 s, 2 s, 4 s … between tries).
FAST = {
    "reconnect_base_delay_s": 0.05,
    "reconnect_max_delay_s": 0.2,
    "connect_timeout_s": 5.0,
    "send_timeout_s": 2.0,
    "close_timeout_s": 2.0,
}

#: Known utterances: (seed, ms, text). The fakes recognise exactly these bytes.
CLIPS = {
    "hello": (1, 600, "hello I would like to book a table"),
    "time": (2, 400, "for seven pm tonight"),
    "thanks": (3, 800, "thank you very much goodbye"),
}


class Clips:
    """μ-law clips the fakes know: ``clips["hello"]`` is the audio, ``clips.text("hello")``
    its text; :meth:`spoken` is the clip followed by enough silence to end the utterance."""

    def __init__(self) -> None:
        self.audio = {name: utterance(seed, ms) for name, (seed, ms, _) in CLIPS.items()}

    def __getitem__(self, name: str) -> bytes:
        return self.audio[name]

    def text(self, name: str) -> str:
        return CLIPS[name][2]

    def spoken(self, name: str, trailing_ms: int = 600) -> bytes:
        return self.audio[name] + silence(trailing_ms)

    def teach(self, fake: FakeOpenAIRealtime | FakeDeepgram) -> None:
        for name, audio in self.audio.items():
            fake.utterances.add(audio, self.text(name))


class Recorder:
    """Collects a session's callbacks in order; tests wait on it with :meth:`wait_for`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    @property
    def callbacks(self) -> TranscriptionCallbacks:
        return TranscriptionCallbacks(
            on_partial=lambda text: self._add("partial", text),
            on_transcript=lambda text: self._add("final", text),
            on_speech_start=lambda: self._add("speech_start", None),
            on_error=lambda exc: self._add("error", exc),
        )

    def _add(self, kind: str, value: Any) -> None:
        self.events.append((kind, value))
        self._changed.set()

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.events if k == kind]

    @property
    def finals(self) -> list[str]:
        return self.of("final")

    @property
    def partials(self) -> list[str]:
        return self.of("partial")

    @property
    def errors(self) -> list[Exception]:
        return self.of("error")

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``condition()`` holds, re-checked after every callback."""
        async with asyncio.timeout(within):
            while True:
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()


@pytest.fixture
def clips() -> Clips:
    return Clips()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def openai_fake(clips: Clips) -> AsyncIterator[FakeOpenAIRealtime]:
    """A running fake OpenAI Realtime API accepting key ``sk-test``, knowing :data:`CLIPS`."""
    async with FakeOpenAIRealtime(api_key="sk-test") as fake:
        clips.teach(fake)
        yield fake


@pytest.fixture
def openai_config(openai_fake: FakeOpenAIRealtime) -> OpenAISTTConfig:
    """The ``openai`` provider's parsed config, pointed at the fake."""
    return OpenAISTTConfig(api_key="sk-test", base_url=openai_fake.base_url, **FAST)


@pytest.fixture
async def deepgram_fake(clips: Clips) -> AsyncIterator[FakeDeepgram]:
    """A running fake Deepgram live API accepting key ``dg-test``, knowing :data:`CLIPS`."""
    async with FakeDeepgram(api_key="dg-test") as fake:
        clips.teach(fake)
        yield fake


@pytest.fixture
def deepgram_config(deepgram_fake: FakeDeepgram) -> DeepgramSTTConfig:
    """The ``deepgram`` provider's parsed config, pointed at the fake."""
    return DeepgramSTTConfig(api_key="dg-test", base_url=deepgram_fake.base_url, **FAST)


async def _speak(session: Any, audio: bytes, frame: int = 160) -> None:
    for i in range(0, len(audio), frame):
        session.send_audio(audio[i : i + frame])
        await asyncio.sleep(0)  # one frame per event-loop turn, as frames arrive from Twilio


@pytest.fixture
def speak() -> Callable[..., Any]:
    """``await speak(session, audio)``: send ``audio`` in 20 ms frames, one frame per
    event-loop turn (as fast as the loop goes; no real-time pacing)."""
    return _speak


async def _eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        # A session's state has no event to await; poll it (5 ms) under a timeout.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    """``await eventually(lambda: cond)``: wait (≤ 10 s) for a session-side condition, such
    as a session noticing that its socket dropped."""
    return _eventually


# --- end to end: the real call server with the real plugins, the Twilio simulator ----------

AUTH_TOKEN = "stt-test-auth-token-0123456789"
PUBLIC_URL = "https://voice.example.test"
KEY_VARS = {"openai": ("OPENAI_API_KEY", "sk-test"), "deepgram": ("DEEPGRAM_API_KEY", "dg-test")}


@attrs.define
class CallServerHarness:
    """A running call server whose STT is a cloud plugin loaded from its entry point, pointed
    at the vendor fake, with the fake TTS of ``voicehost.testing.providers``."""

    base_url: str
    app: Any
    tts: Any
    tts_config: Any
    settings: Any

    @property
    def server(self) -> Any:
        from voicehost.server import SERVER_KEY

        return self.app[SERVER_KEY]

    def simulator(self, **kwargs: Any) -> Any:
        from voicehost.testing.twilio import TwilioSimulator

        return TwilioSimulator(
            self.base_url, auth_token=AUTH_TOKEN, public_url=PUBLIC_URL, **kwargs
        )

    def call(self, call_sid: str) -> Any:
        """The server's live :class:`~voicehost.server.Call`."""
        return self.server.calls[call_sid]


@pytest.fixture
async def call_server() -> AsyncIterator[Callable[..., Any]]:
    """``await call_server(vendor, fake, handler=..., stt={...}, tts={...}, environ=...)``:
    a server configured only through a ``plugins.toml`` document: ``[stt] provider = vendor``,
    ``[stt.<vendor>]`` with the fake's ``base_url`` (the key comes from the environment,
    through the plugin's ``${VAR}`` default). Stopped at the end of the test."""
    from aiohttp.test_utils import TestServer

    from voicehost.config import Settings, parse_settings_table, resolve_providers
    from voicehost.plugins import load_plugin_host
    from voicehost.server import ServerSettings, TwilioSettings, build_app
    from voicehost.testing.providers import FakeProvidersPlugin

    started: list[Any] = []

    async def make(
        vendor: str,
        fake: Any,
        *,
        handler: Any = None,
        stt: dict[str, Any] | None = None,
        tts: dict[str, Any] | None = None,
        environ: dict[str, str] | None = None,
    ) -> CallServerHarness:
        var, key = KEY_VARS[vendor]
        document = {
            "plugins": {"enabled": ["voicehost-openai-stt", "voicehost-deepgram-stt"]},
            "server": {"public_url": PUBLIC_URL},
            "twilio": {"auth_token": AUTH_TOKEN},
            "stt": {"provider": vendor, vendor: {"base_url": fake.base_url, **FAST, **(stt or {})}},
            "tts": {"provider": "fake", "fake": {"ms_per_char": 20, **(tts or {})}},
        }
        settings = Settings.from_dict(document, environ={var: key} if environ is None else environ)
        host = load_plugin_host(settings, environ={})
        fakes = FakeProvidersPlugin()
        host.register(fakes, name="voicehost-test-fakes")
        runtime = resolve_providers(settings, host, ("stt", "tts"))
        server_settings = parse_settings_table(settings, ServerSettings, "server")
        twilio_settings = parse_settings_table(settings, TwilioSettings, "twilio")
        app = build_app(
            server_settings,
            twilio=twilio_settings,
            stt=runtime.stt,
            tts=runtime.tts,
            handler=handler,
        )
        test_server = TestServer(app, host="127.0.0.1")
        await test_server.start_server()
        started.append(test_server)
        base_url = str(test_server.make_url("")).rstrip("/")
        assert runtime.tts is not None
        return CallServerHarness(base_url, app, fakes.tts, runtime.tts.config, server_settings)

    yield make
    for test_server in started:
        await test_server.close()
