"""The ``openai`` STT plugin through the TranscriptionSession contract, on the real ``openai``
SDK against the fake Realtime API (tests/fakes/openai_realtime.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.stt_audio import silence

from voicehost import (
    PCM16_16K,
    ConfigError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    TranscriptionRequest,
)
from voicehost_openai_stt import OpenAISTTConfig, OpenAITranscriptionProvider

#: A reconnect backoff long enough for a test to act while the socket is down.
WINDOW = {"reconnect_base_delay_s": 0.5}


def make_session(config: OpenAISTTConfig, recorder: Any, **changes: Any) -> Any:
    """A session of a fresh provider for ``config`` with ``changes`` (validated again)."""
    if changes:
        config = OpenAISTTConfig.model_validate({**config.model_dump(), **changes})
    provider = OpenAITranscriptionProvider()
    request = TranscriptionRequest(config=config, callbacks=recorder.callbacks, call_sid="CA1")
    return provider.create_session(request)


async def test_speech_start_partials_and_final(openai_fake, openai_config, recorder, clips, speak):
    session = make_session(openai_config, recorder)
    await session.connect()
    assert session.connected
    await speak(session, silence(200) + clips.spoken("hello"))
    await recorder.wait_for(lambda: recorder.finals)
    await session.close()

    text = clips.text("hello")
    assert recorder.finals == [text]
    kinds = [kind for kind, _ in recorder.events]
    assert kinds[0] == "speech_start"
    assert kinds[-1] == "final"
    words = text.split()
    # one partial per delta, each the item's text so far
    assert recorder.partials == [" ".join(words[: i + 1]) for i in range(len(words))]
    conn = openai_fake.current
    assert conn.violations == []
    assert openai_fake.audio == silence(200) + clips.spoken("hello")


async def test_session_update_shape_and_auth(openai_fake, openai_config, recorder, clips):
    session = make_session(openai_config, recorder, language="en", prompt="restaurant booking")
    await session.connect()
    await session.close()

    conn = openai_fake.current
    assert conn.path == "/v1/realtime"
    assert conn.query == {"intent": ["transcription"]}
    assert conn.headers["authorization"] == "Bearer sk-test"
    (update,) = conn.texts("session.update")
    assert update["session"] == {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {
                    "model": "gpt-4o-transcribe",
                    "language": "en",
                    "prompt": "restaurant booking",
                },
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
                "noise_reduction": {"type": "near_field"},
            }
        },
    }
    assert session.acknowledged["audio"]["input"]["format"] == {"type": "audio/pcmu"}


async def test_semantic_vad_and_no_noise_reduction(openai_fake, openai_config, recorder):
    session = make_session(
        openai_config, recorder, turn_detection={"type": "semantic_vad"}, noise_reduction="none"
    )
    await session.connect()
    await session.close()
    (update,) = openai_fake.current.texts("session.update")
    audio_in = update["session"]["audio"]["input"]
    assert audio_in["turn_detection"] == {"type": "semantic_vad", "eagerness": "auto"}
    assert audio_in["noise_reduction"] is None


async def test_audio_passes_through_untouched_as_base64_appends(
    openai_fake, openai_config, recorder, clips, speak
):
    session = make_session(openai_config, recorder)
    await session.connect()
    audio = clips.spoken("time") + clips.spoken("thanks")
    await speak(session, audio)
    await recorder.wait_for(lambda: len(recorder.finals) == 2)
    await session.close()
    assert recorder.finals == [clips.text("time"), clips.text("thanks")]
    assert openai_fake.audio == audio
    appends = openai_fake.current.texts("input_audio_buffer.append")
    assert appends and all(set(m) == {"type"} for m in appends)  # payload recorded as audio


async def test_acknowledged_format_mismatch_fails_setup(openai_fake, openai_config, recorder):
    openai_fake.ack_override = {"audio": {"input": {"format": {"type": "audio/pcm"}}}}
    session = make_session(openai_config, recorder)
    with pytest.raises(ProviderError, match="audio/pcm") as caught:
        await session.connect()
    assert caught.value.code == "session_config_mismatch"
    assert not isinstance(caught.value, ProviderConnectionError)
    assert len(openai_fake.connections) == 1  # not retried: retrying cannot fix it
    assert not session.connected


async def test_refused_session_update_is_reported_with_vendor_code(
    openai_fake, openai_config, recorder
):
    openai_fake.refuse_session_update = "invalid_value"
    session = make_session(openai_config, recorder)
    with pytest.raises(ProviderError) as caught:
        await session.connect()
    assert caught.value.code == "invalid_value"
    assert len(openai_fake.connections) == 1


async def test_401_is_an_auth_error_never_retried(openai_fake, openai_config, recorder):
    session = make_session(openai_config, recorder, api_key="sk-wrong")
    with pytest.raises(ProviderAuthError) as caught:
        await session.connect()
    assert caught.value.provider == "openai"
    assert caught.value.status == 401
    assert "api_key" in str(caught.value)
    assert openai_fake.refusals == [401]
    assert len(openai_fake.upgrades) == 1
    assert session.state == "failed"


async def test_error_and_failed_transcription_reach_on_error(
    openai_fake, openai_config, recorder, clips, speak
):
    session = make_session(openai_config, recorder)
    await session.connect()
    await openai_fake.send_error("rate_limit_exceeded", "slow down")
    await recorder.wait_for(lambda: recorder.errors)
    openai_fake.fail_transcriptions = True
    await speak(session, clips.spoken("hello"))
    await recorder.wait_for(lambda: len(recorder.errors) == 2)
    assert session.connected  # vendor errors are not fatal
    await session.close()
    first, second = recorder.errors
    assert isinstance(first, ProviderError)
    assert (first.provider, first.code) == ("openai", "rate_limit_exceeded")
    assert "slow down" in str(first)
    assert second.code == "audio_unintelligible"
    assert recorder.finals == []


async def test_reconnect_after_abrupt_close_loses_no_audio(
    openai_fake, openai_config, recorder, clips, speak, eventually
):
    session = make_session(openai_config, recorder, **WINDOW)
    await session.connect()
    first = clips.spoken("hello")
    await speak(session, first)
    await recorder.wait_for(lambda: recorder.finals == [clips.text("hello")])
    await openai_fake.wait_for(lambda: len(openai_fake.current.audio) == len(first))

    openai_fake.drop()
    await openai_fake.wait_for(lambda: not openai_fake.connections[0].open)
    await eventually(lambda: session.state == "reconnecting")
    second = clips.spoken("time")
    await speak(session, second)  # 1 s, buffered while reconnecting
    await openai_fake.wait_for(lambda: len(openai_fake.connections) == 2)
    third = clips.spoken("thanks")
    await speak(session, third)
    await recorder.wait_for(lambda: len(recorder.finals) == 3)
    await session.close()

    assert recorder.finals == [clips.text(n) for n in ("hello", "time", "thanks")]
    assert len(openai_fake.connections) == 2
    assert bytes(openai_fake.connections[0].audio) == first
    assert bytes(openai_fake.connections[1].audio) == second + third
    # the new socket was configured again before any audio was appended
    assert openai_fake.connections[1].texts()[0]["type"] == "session.update"
    assert openai_fake.connections[1].violations == []
    assert recorder.errors == []
    assert (session.connections, session.dropped_bytes) == (2, 0)


async def test_reconnect_buffer_keeps_the_newest_two_seconds(
    openai_fake, openai_config, recorder, clips, eventually
):
    session = make_session(openai_config, recorder, **WINDOW)
    await session.connect()
    openai_fake.drop()
    await eventually(lambda: session.state == "reconnecting")
    audio = silence(1000) + clips.spoken("thanks", trailing_ms=1200)  # 3 s while down
    for i in range(0, len(audio), 160):  # all before the loop turns: the socket is still down
        session.send_audio(audio[i : i + 160])
    await recorder.wait_for(lambda: recorder.finals)
    await session.close()
    kept = 16000  # 2 s of μ-law at 8 kHz
    assert bytes(openai_fake.connections[1].audio) == audio[-kept:]
    assert session.dropped_bytes == len(audio) - kept
    assert recorder.finals == [clips.text("thanks")]


async def test_bad_input_format_is_refused(openai_config, recorder):
    provider = OpenAITranscriptionProvider()
    request = TranscriptionRequest(
        config=openai_config, callbacks=recorder.callbacks, input_format=PCM16_16K
    )
    with pytest.raises(ConfigError, match="mulaw"):
        provider.create_session(request)


def test_a_raw_table_is_not_a_config(recorder):
    """The host hands sessions the parsed config; a dict is a programming error."""
    table: Any = {"api_key": "sk"}
    request = TranscriptionRequest(config=table, callbacks=recorder.callbacks)
    with pytest.raises(TypeError, match="OpenAISTTConfig"):
        OpenAITranscriptionProvider().create_session(request)


async def test_close_waits_for_a_committed_utterance(
    openai_fake, openai_config, recorder, clips, speak
):
    openai_fake.transcription_delay_s = 0.3  # the model takes its time
    session = make_session(openai_config, recorder)
    await session.connect()
    await speak(session, clips.spoken("hello"))
    await recorder.wait_for(lambda: recorder.of("speech_start"))
    await openai_fake.wait_for(lambda: openai_fake.committed == 1)
    await session.close()
    assert recorder.finals == [clips.text("hello")]
    assert recorder.errors == []


async def test_close_commits_the_utterance_in_progress(
    openai_fake, openai_config, recorder, clips, speak
):
    session = make_session(openai_config, recorder)
    await session.connect()
    await speak(session, clips["thanks"])  # the caller hangs up mid-sentence: no silence
    await recorder.wait_for(lambda: recorder.of("speech_start"))
    await openai_fake.wait_for(lambda: len(openai_fake.audio) == len(clips["thanks"]))
    await session.close()
    assert openai_fake.current.texts("input_audio_buffer.commit") == [
        {"type": "input_audio_buffer.commit"}
    ]
    assert recorder.finals == [clips.text("thanks")]
    assert recorder.errors == []
