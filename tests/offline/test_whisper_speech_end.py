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
