"""End-of-turn detection in the transport (:mod:`voicehost.server.turn_taking`): finals held
while the detector says the turn is incomplete, joined when the caller goes on, released when
it says complete, after ``incomplete_timeout_ms`` of silence, when it fails, and at the end
of the call; the detector hears the turn's audio resampled to 16 kHz. Through the real
server and the Twilio simulator, on the fake STT and the scripted fake detector."""

from __future__ import annotations

import asyncio
import contextlib
import math

import pytest
from aiohttp.test_utils import TestServer

from voicehost.contracts import PCM16_16K
from voicehost.contracts.turns import TurnConfig
from voicehost.server import Binding, ServerSettings
from voicehost.server import build_app as build_server_app
from voicehost.server.turn_taking import PRE_ROLL_S, TurnTaker
from voicehost.testing import TwilioSimulator
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.providers import FakeSpeechProvider, FakeTranscriptionProvider, tone
from voicehost.testing.turns import FakeTurnDetectorProvider


@pytest.fixture
async def rig():
    """``start(**turn_config)`` → (simulator, handler, stt provider, turn provider)."""
    running: list = []

    async def start(**turn_config):
        stt, turn = FakeTranscriptionProvider(), FakeTurnDetectorProvider()
        handler = RecordingHandler()
        app = build_server_app(
            ServerSettings(),
            stt=Binding(stt, {}),
            tts=Binding(FakeSpeechProvider(), {"ms_per_char": 5}),
            turn=Binding(turn, TurnConfig(**turn_config)),
            handler=handler,
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        sim = TwilioSimulator(str(server.make_url("")), speed=math.inf)
        await sim.__aenter__()
        running.append((sim, server))
        return sim, handler, stt, turn

    yield start
    for sim, server in running:
        await sim.__aexit__(None, None, None)
        await server.close()


def transcripts(handler: RecordingHandler) -> list[str]:
    return [event[2] for event in handler.events if event[0] == "final"]


async def test_an_incomplete_turn_is_held_and_joined_when_the_caller_goes_on(rig):
    sim, handler, stt, turn = await rig(incomplete_timeout_ms=5000)
    turn.answers = [False, True]
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.speech_start()
    await call.play(tone(1.0), speed=math.inf)
    await session.wait_for_bytes(8000)  # the server has the second of audio
    session.final("I'd like to book, um,")
    await asyncio.wait_for(_until(lambda: len(turn.asked) == 1), 5)
    await asyncio.sleep(0.05)
    assert transcripts(handler) == []  # held: the detector said incomplete
    session.speech_start()
    await call.play(tone(0.5), speed=math.inf)
    await session.wait_for_bytes(12000)
    session.final("a table for two.")
    await handler.wait_for("final")
    assert transcripts(handler) == ["I'd like to book, um, a table for two."]
    # the detector heard the turn from just before its speech start, at 16 kHz (PCM16)
    assert turn.asked[1] >= 1.5 * PCM16_16K.bytes_per_second
    assert turn.asked[1] <= (1.5 + PRE_ROLL_S + 0.1) * PCM16_16K.bytes_per_second
    await call.stop()


async def test_a_complete_turn_is_answered_at_once(rig):
    sim, handler, stt, turn = await rig()
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.speech_start()
    session.final("what are your hours")
    await handler.wait_for("final")
    assert transcripts(handler) == ["what are your hours"] and len(turn.asked) == 1
    await call.stop()


async def test_an_incomplete_turn_is_released_after_the_silence_timeout(rig):
    sim, handler, stt, turn = await rig(incomplete_timeout_ms=300)
    turn.answers = [False]
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.speech_start()
    session.speech_end(0.0)
    session.final("so I was thinking")
    await handler.wait_for("final", timeout=5)  # released by the timeout, not the model
    assert transcripts(handler) == ["so I was thinking"] and len(turn.asked) == 1
    await call.stop()


async def test_a_failing_detector_never_leaves_the_caller_unanswered(rig):
    sim, handler, stt, turn = await rig()
    turn.fail = True
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.final("hello?")
    await handler.wait_for("final")
    assert transcripts(handler) == ["hello?"]
    await call.stop()


async def test_held_words_are_released_when_the_call_ends(rig):
    sim, handler, stt, turn = await rig(incomplete_timeout_ms=10_000)
    turn.answers = [False]
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.final("and one more thing")
    await asyncio.wait_for(_until(lambda: len(turn.asked) == 1), 5)
    await call.stop()
    await handler.wait_for("end")
    assert transcripts(handler) == ["and one more thing"]


async def test_a_turn_taker_keeps_only_the_last_window_of_audio():
    released: list[tuple[str, float | None]] = []
    provider = FakeTurnDetectorProvider()
    taker = TurnTaker("CA1", provider, TurnConfig(), lambda t, e: released.append((t, e)))
    for _ in range(int(provider.max_audio_s / 0.02) + 100):
        taker.feed(b"\xff" * 160)
    taker.final("a long monologue", 12.0)
    await asyncio.wait_for(_until(lambda: released != []), 5)
    assert released == [("a long monologue", 12.0)]
    assert provider.asked == [int(provider.max_audio_s * PCM16_16K.bytes_per_second)]


async def _until(predicate) -> None:
    while not predicate():  # noqa: ASYNC110 - polled state, no event
        await asyncio.sleep(0.005)


async def test_a_late_final_is_not_released_while_the_caller_is_talking(rig):
    """Whisper's final can come after the caller went on: the timeout runs from the next
    end of speech, not from the final's."""
    sim, handler, stt, turn = await rig(incomplete_timeout_ms=200)
    turn.answers = [False]
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.speech_start()
    session.speech_end(0.0)
    session.speech_start()  # the caller goes on before the final comes
    session.final("the weather here seems quite nice,")
    await asyncio.wait_for(_until(lambda: len(turn.asked) == 1), 5)
    await asyncio.sleep(0.4)  # twice the timeout: still talking, still held
    assert transcripts(handler) == []
    session.speech_end(0.0)
    await handler.wait_for("final", timeout=5)
    assert transcripts(handler) == ["the weather here seems quite nice,"]
    await call.stop()


async def test_the_detector_is_asked_at_the_end_of_speech_while_the_final_decodes(rig):
    sim, handler, stt, turn = await rig()
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.speech_start()
    session.speech_end(0.0)
    await asyncio.wait_for(_until(lambda: len(turn.asked) == 1), 5)  # before any final
    session.final("what time do you open")
    await handler.wait_for("final")
    assert transcripts(handler) == ["what time do you open"]
    assert len(turn.asked) == 1  # its answer was used: not asked again
    await call.stop()


def provisionals(handler: RecordingHandler) -> list[str | None]:
    return [event[2] for event in handler.events if event[0] == "provisional"]


async def test_the_unreleased_turn_is_announced_and_withdrawn_when_the_caller_goes_on(rig):
    """Preemptive generation's input: the held finals as they stand, None when the caller
    speaks again, the joined text for the next final; the release commits it (no None)."""
    sim, handler, stt, turn = await rig(incomplete_timeout_ms=5000)
    turn.answers = [False, True]
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.speech_start()
    session.final("I'd like to book, um,")
    await asyncio.wait_for(_until(lambda: len(turn.asked) == 1), 5)
    await handler.wait_for("provisional")
    session.speech_start()
    await handler.wait_for("provisional", 2)
    session.provisional("a table for two.")  # the STT's early final of the next utterance
    await handler.wait_for("provisional", 3)
    session.final("a table for two.")
    await handler.wait_for("final")
    assert provisionals(handler) == [
        "I'd like to book, um,",
        None,
        "I'd like to book, um, a table for two.",
    ]
    assert transcripts(handler) == ["I'd like to book, um, a table for two."]
    await call.stop()


@contextlib.asynccontextmanager
async def _serving(settings: ServerSettings, turn: Binding | None = None):
    """A server on the fake STT/TTS (and ``turn``): yields (simulator, handler, stt)."""
    stt = FakeTranscriptionProvider()
    handler = RecordingHandler()
    app = build_server_app(
        settings,
        stt=Binding(stt, {}),
        tts=Binding(FakeSpeechProvider(), {"ms_per_char": 5}),
        turn=turn,
        handler=handler,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
            yield sim, handler, stt
    finally:
        await server.close()


async def test_without_a_detector_the_stt_early_final_is_announced_and_withdrawn():
    async with _serving(ServerSettings()) as (sim, handler, stt):
        call = await sim.start_call()
        session = await stt.wait_for_session()
        session.speech_start()
        session.provisional("what are your")
        session.provisional("what are your")  # the same text again: not announced twice
        session.speech_start()  # the caller went on
        session.provisional("what are your hours")
        session.final("what are your hours")
        await handler.wait_for("final")
        assert provisionals(handler) == ["what are your", None, "what are your hours"]
        await call.stop()


async def test_provisional_transcripts_are_not_passed_on_when_preemptive_generation_is_off():
    settings = ServerSettings(preemptive_generation=False)
    turn = Binding(FakeTurnDetectorProvider(), TurnConfig())
    async with _serving(settings, turn) as (sim, handler, stt):
        call = await sim.start_call()
        session = await stt.wait_for_session()
        session.speech_start()
        session.provisional("what are your hours")
        session.final("what are your hours")
        await handler.wait_for("final")
        assert provisionals(handler) == []
        await call.stop()
