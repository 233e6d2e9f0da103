"""End to end: a simulated Twilio call on the real call server, speaking through the cloud
TTS plugins (official SDKs) against their vendor fakes.

The audio the simulator records is compared with the fake's audio after the documented
conversion: byte-exact for ElevenLabs ``ulaw_8000`` (re-framed to 160 bytes, the last frame
padded with μ-law silence); for OpenAI ``pcm`` 24 kHz, exactly the host's
``AudioConverter(PCM16_24K → MULAW_8K)`` output, and a tone keeps its frequency and level.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from click.testing import CliRunner
from fakes.elevenlabs import FakeElevenLabs, known_ulaw
from fakes.openai_tts import FakeOpenAITTS
from fakes.tts_stream import FakeTTSServer, StreamPlan, tone_pcm16
from tts_call import TtsCallServer, padded, start_tts_server
from tts_helpers import tone_stats

from voicehost.audio import AudioConverter, ulaw_decode
from voicehost.cli import cli
from voicehost.contracts import MULAW_8K, PCM16_24K
from voicehost.errors import ProviderAuthError, ProviderConnectionError, ProviderError
from voicehost.server import ReplyStatus
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import SimulatedCall

StartServer = Callable[..., Awaitable[tuple[TtsCallServer, RecordingHandler]]]
REPLY_TIMEOUT_S = 15


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(tts_id, table)`` → (server, handler); stopped after the test."""
    started: list[TtsCallServer] = []

    async def start(tts_id: str, table: dict[str, Any]) -> tuple[TtsCallServer, RecordingHandler]:
        handler = RecordingHandler()
        server = await start_tts_server(tts_id, table, handler=handler)
        started.append(server)
        return server, handler

    yield start
    for server in started:
        await server.close()


@pytest.fixture
async def openai_vendor() -> AsyncIterator[FakeOpenAITTS]:
    # 0.6 s of a 1 kHz tone: short, so each real-time paced reply stays quick.
    async with FakeOpenAITTS(audio=tone_pcm16(1000.0, 0.6, 24000, 0.3)) as fake:
        yield fake


@pytest.fixture
async def elevenlabs_vendor() -> AsyncIterator[FakeElevenLabs]:
    async with FakeElevenLabs(audio=known_ulaw(0.5)) as fake:
        yield fake


def expected_openai(pcm24k: bytes) -> bytes:
    """What the call should carry for OpenAI PCM: the host's documented conversion."""
    converter = AudioConverter(PCM16_24K, MULAW_8K)
    return padded(converter.convert(pcm24k) + converter.flush(discard_partial=True))


@pytest.fixture(params=["openai", "elevenlabs"])
def vendor(request, openai_vendor, elevenlabs_vendor) -> tuple[str, FakeTTSServer, dict, bytes]:
    """``(provider id, fake, [tts.<id>] table, audio one reply should carry)``: the table
    sets only ``base_url`` (and ElevenLabs' ``voice_id``); the keys come from ``${VAR}``."""
    if request.param == "openai":
        table = {"base_url": openai_vendor.base_url}
        return "openai", openai_vendor, table, expected_openai(openai_vendor.audio)
    table = {"voice_id": "voice123", "base_url": elevenlabs_vendor.base_url}
    return "elevenlabs", elevenlabs_vendor, table, padded(elevenlabs_vendor.audio)


async def open_call(server: TtsCallServer, handler: RecordingHandler, sim) -> tuple[Any, Any]:
    """Start a simulated call; returns (the simulator's call, the server's call)."""
    call = await sim.start_call()
    await handler.wait_for("start")
    return call, handler.calls[0]


def audio_after_clear(call: SimulatedCall) -> bytes:
    """μ-law bytes of the ``media`` messages that arrived after the first ``clear``."""
    events = call.events
    first_clear = next(i for i, e in enumerate(events) if e.get("event") == "clear")
    return b"".join(
        base64.b64decode(e["media"]["payload"])
        for e in events[first_clear:]
        if e.get("event") == "media"
    )


async def test_elevenlabs_audio_reaches_the_call_byte_exact(start_server, elevenlabs_vendor):
    server, handler = await start_server(
        "elevenlabs", {"voice_id": "voice123", "base_url": elevenlabs_vendor.base_url}
    )
    async with server.simulator(speed=4.0) as sim:
        call, live = await open_call(server, handler, sim)
        reply = live.say("Hello there.")
        assert await asyncio.wait_for(reply.wait(), REPLY_TIMEOUT_S) is ReplyStatus.PLAYED
        assert bytes(call.received_audio) == padded(elevenlabs_vendor.audio)
        assert all(
            len(base64.b64decode(e["media"]["payload"])) == 160 for e in call.events_of("media")
        )
        assert call.protocol_errors == []
        await call.stop()
    [request] = elevenlabs_vendor.requests
    assert request.headers["xi-api-key"] == "xi-test"  # from ${ELEVENLABS_API_KEY}
    assert request.query == {"output_format": "ulaw_8000"}


async def test_openai_audio_reaches_the_call_converted_and_keeps_the_tone(
    start_server, openai_vendor
):
    server, handler = await start_server("openai", {"base_url": openai_vendor.base_url})
    async with server.simulator(speed=4.0) as sim:
        call, live = await open_call(server, handler, sim)
        reply = live.say("Beep.")
        assert await asyncio.wait_for(reply.wait(), REPLY_TIMEOUT_S) is ReplyStatus.PLAYED
        received = bytes(call.received_audio)
        await call.stop()

    assert received == expected_openai(openai_vendor.audio)
    freq, rms = tone_stats(ulaw_decode(received), 8000)
    _, source_rms = tone_stats(openai_vendor.audio, 24000)
    assert freq == pytest.approx(1000.0, abs=2.0)
    assert rms == pytest.approx(source_rms, rel=0.06)
    assert openai_vendor.requests[0].headers["authorization"] == "Bearer sk-test"


async def test_elevenlabs_websocket_mode_speaks_streamed_text_as_it_arrives(
    start_server, elevenlabs_vendor
):
    server, handler = await start_server(
        "elevenlabs",
        {"voice_id": "voice123", "base_url": elevenlabs_vendor.base_url, "mode": "websocket"},
    )
    pieces: asyncio.Queue[str | None] = asyncio.Queue()

    async def reply_text() -> AsyncIterator[str]:
        while (piece := await pieces.get()) is not None:
            yield piece

    async with server.simulator(speed=4.0) as sim:
        call, live = await open_call(server, handler, sim)
        reply = live.say(reply_text())
        pieces.put_nowait("Hello there. ")
        first = elevenlabs_vendor.audio_for("Hello there. ")
        # The first sentence is heard while the rest of the reply is still being written.
        await call.wait_for_audio(len(first) - len(first) % 160)
        assert len(elevenlabs_vendor.generations) == 1
        pieces.put_nowait("How are you? ")
        pieces.put_nowait(None)
        assert await asyncio.wait_for(reply.wait(), REPLY_TIMEOUT_S) is ReplyStatus.PLAYED
        await call.stop()

    spoken = b"".join(g.audio for g in elevenlabs_vendor.generations)
    assert [g.text for g in elevenlabs_vendor.generations] == ["Hello there. ", "How are you? "]
    assert bytes(call.received_audio) == padded(spoken)


async def test_first_frame_is_sent_before_the_vendor_finishes(start_server, vendor):
    tts_id, fake, table, expected = vendor
    fake.push_plan(StreamPlan(hold_after_bytes=9600 if tts_id == "openai" else 1600))
    server, handler = await start_server(tts_id, table)
    async with server.simulator(speed=4.0) as sim:
        call, live = await open_call(server, handler, sim)
        reply = live.say("Hello.")

        await call.wait_for_audio(160)
        assert fake.completed == 0  # the vendor is still holding the rest of the audio

        fake.release()
        assert await asyncio.wait_for(reply.wait(), REPLY_TIMEOUT_S) is ReplyStatus.PLAYED
        assert fake.completed == 1
        assert bytes(call.received_audio) == expected
        await call.stop()


async def test_barge_in_closes_the_vendor_stream_and_sends_no_more_of_that_reply(
    start_server, vendor
):
    tts_id, fake, table, expected = vendor
    fake.push_plan(StreamPlan(hold_after_bytes=9600 if tts_id == "openai" else 1600))
    server, handler = await start_server(tts_id, table)
    async with server.simulator(speed=4.0) as sim:
        call, live = await open_call(server, handler, sim)
        first = live.say("A long answer the caller will interrupt.")
        await call.wait_for_audio(160)

        session = await server.stt.wait_for_session()
        session.speech_start()  # the caller starts talking: barge-in

        disconnect = await fake.wait_disconnect()
        assert disconnect.bytes_sent < len(fake.audio)
        await call.wait_for_event("clear")
        assert await asyncio.wait_for(first.wait(), REPLY_TIMEOUT_S) is ReplyStatus.CANCELLED
        fake.release()  # were the stream still open, the rest would flow now

        second = live.say("Sure, go ahead.")
        assert await asyncio.wait_for(second.wait(), REPLY_TIMEOUT_S) is ReplyStatus.PLAYED
        # After the clear only the second reply was sent: nothing more of the first.
        assert audio_after_clear(call) == expected
        await call.stop()
    assert fake.completed == 1  # only the second reply's stream ran to its end


ERROR_CASES: dict[str, tuple[Callable[[FakeTTSServer], StreamPlan], type, int | None]] = {
    "401": (lambda fake: StreamPlan(status=401), ProviderAuthError, 401),
    "429": (lambda fake: StreamPlan(status=429), ProviderError, 429),
    "500": (lambda fake: StreamPlan(status=500), ProviderError, 500),
    # The stream ends abruptly halfway through the reply's audio.
    "dropped": (
        lambda fake: StreamPlan(drop_after_bytes=len(fake.audio) // 2 + 1),
        ProviderConnectionError,
        None,
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
async def test_vendor_error_keeps_the_call_up_and_repeats_nothing(start_server, vendor, case):
    tts_id, fake, table, expected = vendor
    make_plan, error_type, status = ERROR_CASES[case]
    fake.push_plan(make_plan(fake))
    server, handler = await start_server(tts_id, table)
    async with server.simulator(speed=4.0) as sim:
        call, live = await open_call(server, handler, sim)
        failed = live.say("This reply meets a vendor error.")
        with pytest.raises(ProviderError) as info:
            await asyncio.wait_for(failed.wait(), REPLY_TIMEOUT_S)
        assert type(info.value) is error_type
        assert (info.value.provider, info.value.status) == (tts_id, status)
        assert failed.status is ReplyStatus.FAILED

        # The call is still up and the next reply plays in full.
        after = live.say("And this one plays.")
        assert await asyncio.wait_for(after.wait(), REPLY_TIMEOUT_S) is ReplyStatus.PLAYED
        assert call.close_code is None and "end" not in handler.names()
        received = bytes(call.received_audio)
        await call.stop()

    assert len(fake.requests) == 2  # the failed reply was not retried
    assert received.endswith(expected)
    partial = received[: len(received) - len(expected)]
    if case == "dropped":
        # Whole frames of the interrupted reply, once, never its audio again from the start.
        assert len(partial) % 160 == 0 and 0 < len(partial) < len(expected)
        assert expected.startswith(partial)
    else:
        assert partial == b""
    assert call.events_of("mark")[-1]["mark"]["name"] == after.mark_name
    assert [e["mark"]["name"] for e in call.events_of("mark")] == [after.mark_name]


def test_list_plugins_shows_both_cloud_tts_plugins_loaded(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("VOICEHOST_CONFIG", "VOICEHOST_LOAD_PLUGINS", "VOICEHOST_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["list-plugins", "--json"])
    assert result.exit_code == 0, result.output
    entries = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert entries["voicehost-openai-tts"]["status"] == "loaded"
    assert entries["voicehost-openai-tts"]["providers"]["tts"] == ["openai"]
    assert entries["voicehost-elevenlabs-tts"]["status"] == "loaded"
    assert entries["voicehost-elevenlabs-tts"]["providers"]["tts"] == ["elevenlabs"]


KEYS = {"OPENAI_API_KEY": "sk-x", "ELEVENLABS_API_KEY": "xi-x"}


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        (
            '[tts]\nprovider = "openai"\n',
            {},
            "environment variable OPENAI_API_KEY is not set (needed by [tts.openai] api_key",
        ),
        (
            '[tts]\nprovider = "elevenlabs"\n[tts.elevenlabs]\nvoice_id = "v"\n',
            {},
            "environment variable ELEVENLABS_API_KEY is not set "
            "(needed by [tts.elevenlabs] api_key",
        ),
        (
            '[tts]\nprovider = "elevenlabs"\n',
            KEYS,
            "plugins.toml: [tts.elevenlabs] voice_id: is required",
        ),
        (
            '[tts]\nprovider = "elevenlabs"\n[tts.elevenlabs]\nvoice_id = "v"\nmode = "grpc"\n',
            KEYS,
            "plugins.toml: [tts.elevenlabs] mode: must be 'http' or 'websocket', not 'grpc'",
        ),
        (
            '[tts]\nprovider = "openai"\n[tts.openai]\nspeed = 9\n',
            KEYS,
            "plugins.toml: [tts.openai] speed: must be less than or equal to 4, not 9",
        ),
        (
            '[tts]\nprovider = "openai"\n[tts.openai]\nvocie = "nova"\n',
            KEYS,
            "plugins.toml: [tts.openai] vocie: unknown key (did you mean 'voice'?)",
        ),
    ],
)
def test_config_check_reports_tts_config_errors_at_start_up(
    monkeypatch, tmp_path, toml, environ, message
):
    monkeypatch.chdir(tmp_path)
    for var in ("VOICEHOST_CONFIG", "VOICEHOST_LOAD_PLUGINS", *KEYS):
        monkeypatch.delenv(var, raising=False)
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "plugins.toml").write_text(toml)
    result = CliRunner().invoke(cli, ["config", "check"])
    assert result.exit_code == 1
    assert message in result.stderr
