"""The Whisper plugin reports the end of the caller's speech (the optional
``on_speech_end`` of the STT contract) before each final, with the silence its endpointing
waited for, so the host can time a turn from when the caller really stopped."""

from __future__ import annotations

import asyncio

import pytest
from offline_helpers import FRAME, silence

from voicehost.contracts import TranscriptionCallbacks, TranscriptionRequest
from voicehost_whisper_stt import WhisperConfig, WhisperProvider

pytestmark = pytest.mark.usefixtures("whisper_loaded")


async def test_each_final_follows_a_speech_end_with_the_silence_waited_for(
    caller_utterances: list[tuple[str, bytes]],
) -> None:
    events: list[tuple] = []
    callbacks = TranscriptionCallbacks(
        on_transcript=lambda text: events.append(("final", text)),
        on_speech_end=lambda silence_s=0.0: events.append(("end", silence_s)),
    )
    config = WhisperConfig(partial_interval_ms=0)
    session = WhisperProvider().create_session(TranscriptionRequest(config, callbacks))
    await session.connect()
    for _, utterance in caller_utterances[:2]:
        audio = silence(300) + utterance + silence(1000)
        for start in range(0, len(audio), FRAME):
            session.send_audio(audio[start : start + FRAME])
            await asyncio.sleep(0)
        await session.wait_idle()  # its final came (in real time it comes in the pause)
    await session.close()

    assert [kind for kind, _ in events] == ["end", "final", "end", "final"]
    for _, silence_s in events[::2]:
        # The endpoint comes min_silence_ms (whole 32 ms VAD windows) after the last voiced
        # window; the caller's 1 s pause is longer than that.
        assert config.min_silence_ms / 1000 <= silence_s <= 1.0


async def _feed(session, audio: bytes) -> None:
    for start in range(0, len(audio), FRAME):
        session.send_audio(audio[start : start + FRAME])
        await asyncio.sleep(0)
    await session.wait_idle()


def _provisional_session(events: list[tuple]):
    callbacks = TranscriptionCallbacks(
        on_transcript=lambda text: events.append(("final", text)),
        on_speech_start=lambda: events.append(("start",)),
        on_speech_end=lambda silence_s=0.0: events.append(("end",)),
        on_provisional=lambda text: events.append(("provisional", text)),
    )
    config = WhisperConfig(partial_interval_ms=0)  # post_roll 250 ms, min_silence 500 ms
    return WhisperProvider().create_session(TranscriptionRequest(config, callbacks))


async def test_the_speculative_final_is_announced_before_the_endpoint(
    caller_utterances: list[tuple[str, bytes]],
) -> None:
    events: list[tuple] = []
    session = _provisional_session(events)
    await session.connect()
    utterance = caller_utterances[0][1]
    await _feed(session, silence(300) + utterance + silence(400))  # into the pause, not past it
    assert [kind for kind, *_ in events] == ["start", "provisional"]
    await _feed(session, silence(600))  # the endpoint
    await session.close()
    assert [kind for kind, *_ in events] == ["start", "provisional", "end", "final"]
    assert events[1][1] == events[3][1] and events[3][1]  # the final is what was announced


async def test_speech_after_the_announcement_withdraws_it_with_a_speech_start(
    monologue_audio: list[bytes],
) -> None:
    events: list[tuple] = []
    session = _provisional_session(events)
    await session.connect()
    first, second = monologue_audio[0], monologue_audio[1]  # no leading/trailing silence
    await _feed(session, silence(300) + first + silence(400))
    await _feed(session, second + silence(1000))  # the caller goes on within the pause
    await session.close()
    kinds = [kind for kind, *_ in events]
    assert kinds == ["start", "provisional", "start", "end", "final"]
    announced, final = events[1][1], events[4][1]
    assert len(final.split()) > len(announced.split())  # one utterance: both sentences
