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


def _ends_and_finals(events: list[tuple], config: WhisperConfig):
    """A session noting ``("end", silence_s)`` and ``("final", text)`` in ``events``."""
    callbacks = TranscriptionCallbacks(
        on_transcript=lambda text: events.append(("final", text)),
        on_speech_end=lambda silence_s=0.0: events.append(("end", silence_s)),
    )
    return WhisperProvider().create_session(TranscriptionRequest(config, callbacks))


async def test_each_final_follows_a_speech_end_with_the_silence_waited_for(
    caller_utterances: list[tuple[str, bytes]],
) -> None:
    events: list[tuple] = []
    config = WhisperConfig(partial_interval_ms=0)
    session = _ends_and_finals(events, config)
    await session.connect()
    for _, utterance in caller_utterances[:2]:
        # its final comes once idle (in real time it comes in the pause)
        await _feed(session, silence(300) + utterance + silence(1000))
    await session.close()

    kinds = [kind for kind, _ in events]
    assert kinds.count("final") == 2 and kinds[-1] == "final"
    # Each final follows a speech end (a pause inside a sentence, where the caller went on,
    # adds an earlier one), reported at the pause, post_roll_ms (whole 32 ms VAD windows)
    # after the last voiced window, while the final decodes; the endpoint is min_silence_ms in.
    assert all(kinds[i - 1] == "end" for i, kind in enumerate(kinds) if kind == "final")
    for kind, silence_s in events:
        if kind == "end":
            assert config.post_roll_ms / 1000 <= silence_s < config.post_roll_ms / 1000 + 0.032


async def test_without_a_pause_before_the_endpoint_the_speech_end_comes_at_the_endpoint(
    caller_utterances: list[tuple[str, bytes]],
) -> None:
    events: list[tuple] = []
    # A post-roll as long as the endpointing wait: no pause is reported before the endpoint.
    config = WhisperConfig(partial_interval_ms=0, post_roll_ms=500, min_silence_ms=500)
    session = _ends_and_finals(events, config)
    await session.connect()
    await _feed(session, silence(300) + caller_utterances[0][1] + silence(1000))
    await session.close()
    assert [kind for kind, _ in events] == ["end", "final"]
    assert config.min_silence_ms / 1000 <= events[0][1] <= 1.0


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
    monologue_audio: list[bytes],
) -> None:
    events: list[tuple] = []
    session = _provisional_session(events)
    await session.connect()
    utterance = monologue_audio[0]  # no trailing silence: the 400 ms below is the pause
    await _feed(session, silence(300) + utterance + silence(400))  # into the pause, not past it
    kinds = [kind for kind, *_ in events]
    assert kinds[-2:] == ["end", "provisional"] and "final" not in kinds
    announced = events[-1][1]
    await _feed(session, silence(600))  # the endpoint
    await session.close()
    assert events[-1] == ("final", announced) and announced  # the final is what was announced


async def test_speech_after_the_announcement_withdraws_it_with_a_speech_start(
    monologue_audio: list[bytes],
) -> None:
    events: list[tuple] = []
    session = _provisional_session(events)
    await session.connect()
    first, second = monologue_audio[0], monologue_audio[1]  # no leading/trailing silence
    await _feed(session, silence(300) + first + silence(400))
    assert [kind for kind, *_ in events][-2:] == ["end", "provisional"]
    announced = events[-1][1]
    seen = len(events)
    await _feed(session, second + silence(1000))  # the caller goes on within the pause
    await session.close()
    after = [kind for kind, *_ in events[seen:]]
    assert after[0] == "start"  # the announcement is void
    assert after[-2:] == ["end", "final"] and "final" not in after[:-1]
    assert len(events[-1][1].split()) > len(announced.split())  # one utterance: both sentences
