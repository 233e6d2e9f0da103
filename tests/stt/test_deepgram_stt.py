"""The ``deepgram`` STT plugin through the TranscriptionSession contract, on the real
``deepgram-sdk`` against the fake live API (tests/fakes/deepgram.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes.stt_audio import silence

from voicehost import ProviderAuthError, ProviderError, TranscriptionRequest
from voicehost_deepgram_stt import DeepgramSTTConfig, DeepgramTranscriptionProvider

#: A reconnect backoff long enough for a test to act while the socket is down.
WINDOW = {"reconnect_base_delay_s": 0.5}


def make_session(config: DeepgramSTTConfig, recorder: Any, **changes: Any) -> Any:
    """A session of a fresh provider for ``config`` with ``changes`` (validated again)."""
    if changes:
        config = DeepgramSTTConfig.model_validate({**config.model_dump(), **changes})
    provider = DeepgramTranscriptionProvider()
    request = TranscriptionRequest(config=config, callbacks=recorder.callbacks, call_sid="CA2")
    return provider.create_session(request)


async def test_query_headers_and_binary_audio(
    deepgram_fake, deepgram_config, recorder, clips, speak
):
    session = make_session(deepgram_config, recorder, keywords=["Voicehost", "table for two"])
    await session.connect()
    await speak(session, clips.spoken("hello"))
    await recorder.wait_for(lambda: recorder.finals)
    await session.close()

    conn = deepgram_fake.current
    assert conn.path == "/v1/listen"
    assert conn.headers["authorization"] == "Token dg-test"
    assert conn.headers["x-deepgram-session-id"] == session.session_id
    assert conn.query == {
        "channels": ["1"],
        "encoding": ["mulaw"],
        "endpointing": ["300"],
        "interim_results": ["true"],
        "keyterm": ["Voicehost", "table for two"],
        "language": ["en"],
        "model": ["nova-3"],
        "punctuate": ["true"],
        "sample_rate": ["8000"],
        "smart_format": ["true"],
        "utterance_end_ms": ["1000"],
        "vad_events": ["true"],
    }
    assert conn.violations == []
    assert all(kind == "binary" for kind, _ in conn.messages[:-2])  # audio as binary frames
    assert deepgram_fake.audio == clips.spoken("hello")


async def test_speech_start_partials_and_one_final_per_utterance(
    deepgram_fake, deepgram_config, recorder, clips, speak
):
    session = make_session(deepgram_config, recorder)
    await session.connect()
    await speak(session, silence(100) + clips.spoken("hello") + clips.spoken("thanks"))
    await recorder.wait_for(lambda: len(recorder.finals) == 2)
    await session.close()

    assert recorder.finals == [clips.text("hello"), clips.text("thanks")]
    kinds = [kind for kind, _ in recorder.events]
    assert kinds[0] == "speech_start"
    assert kinds.count("speech_start") == 2
    assert kinds.count("final") == 2  # two is_final segments + UtteranceEnd → one transcript
    first_turn = recorder.events[: kinds.index("final")]
    partials = [value for kind, value in first_turn if kind == "partial"]
    words = clips.text("hello").split()  # 8 words in 600 ms of speech
    assert (
        partials
        == [
            " ".join(words[:2]),  # interim after 200 ms
            " ".join(words[:5]),  # interim after 400 ms
            " ".join(words),  # interim after 600 ms
            " ".join(words[:4]),  # the first is_final segment, before speech_final
        ]
    )


async def test_utterance_end_ends_the_turn_without_speech_final(
    deepgram_fake, deepgram_config, recorder, clips, speak
):
    deepgram_fake.speech_final = False
    deepgram_fake.final_segments = 3
    session = make_session(deepgram_config, recorder)
    await session.connect()
    await speak(session, clips.spoken("hello"))
    await recorder.wait_for(lambda: recorder.finals)
    await session.close()
    assert recorder.finals == [clips.text("hello")]


async def test_keepalive_on_silence_keeps_an_idle_socket_open(
    deepgram_fake, deepgram_config, recorder
):
    deepgram_fake.idle_timeout_s = 1.0
    session = make_session(deepgram_config, recorder, keepalive_interval_s=0.1)
    await session.connect()
    conn = deepgram_fake.current
    await deepgram_fake.wait_for(lambda: len(conn.texts("KeepAlive")) >= 15)  # > 1 s idle
    assert conn.open and session.connected
    assert len(deepgram_fake.connections) == 1
    assert conn.messages[0] == ("text", {"type": "KeepAlive"})  # a JSON text frame
    await session.close()


async def test_keepalive_only_when_audio_stops(deepgram_fake, deepgram_config, recorder):
    """Audio every 50 ms keeps a 0.5 s keep-alive timer from firing; once audio stops, a
    ``KeepAlive`` follows."""
    session = make_session(deepgram_config, recorder, keepalive_interval_s=0.5)
    await session.connect()
    conn = deepgram_fake.current
    for _ in range(20):  # 1 s of wall time, a frame each 50 ms (the caller's pacing)
        session.send_audio(silence(20))
        await asyncio.sleep(0.05)
    await deepgram_fake.wait_for(lambda: len(conn.audio) == 20 * 160)
    assert conn.texts("KeepAlive") == []
    await deepgram_fake.wait_for(lambda: conn.texts("KeepAlive"))
    await session.close()
    kinds = [kind for kind, _ in conn.messages]
    assert kinds[:20] == ["binary"] * 20
    assert conn.messages[20] == ("text", {"type": "KeepAlive"})


async def test_close_sends_finalize_then_closestream_and_reports_last_words(
    deepgram_fake, deepgram_config, recorder, clips, speak
):
    session = make_session(deepgram_config, recorder)
    await session.connect()
    await speak(session, clips["time"])  # no trailing silence: the utterance is still open
    await deepgram_fake.wait_for(lambda: len(deepgram_fake.current.audio) == len(clips["time"]))
    await session.close()

    conn = deepgram_fake.current
    controls = [m["type"] for m in conn.texts()]
    assert controls == ["Finalize", "CloseStream"]
    assert conn.close_code == 1000
    assert recorder.finals == [clips.text("time")]  # from the from_finalize result
    assert not session.connected
    await session.close()  # idempotent
    assert [m["type"] for m in conn.texts()] == ["Finalize", "CloseStream"]


async def test_401_is_an_auth_error_never_retried(deepgram_fake, deepgram_config, recorder):
    session = make_session(deepgram_config, recorder, api_key="dg-wrong")
    with pytest.raises(ProviderAuthError) as caught:
        await session.connect()
    assert caught.value.provider == "deepgram"
    assert caught.value.status == 401
    assert "DEEPGRAM_API_KEY" in str(caught.value)
    assert deepgram_fake.refusals == [401]
    assert len(deepgram_fake.upgrades) == 1


async def test_vendor_error_message_reaches_on_error(deepgram_fake, deepgram_config, recorder):
    session = make_session(deepgram_config, recorder)
    await session.connect()
    await deepgram_fake.send_error("DATA-0000", "could not decode the audio")
    await recorder.wait_for(lambda: recorder.errors)
    assert session.connected
    await session.close()
    (error,) = recorder.errors
    assert isinstance(error, ProviderError)
    assert (error.provider, error.code) == ("deepgram", "DATA-0000")
    assert "could not decode" in str(error)


async def test_reconnect_after_abrupt_close_loses_no_audio(
    deepgram_fake, deepgram_config, recorder, clips, speak, eventually
):
    session = make_session(deepgram_config, recorder, **WINDOW)
    await session.connect()
    first = clips.spoken("hello")
    await speak(session, first)
    await recorder.wait_for(lambda: recorder.finals == [clips.text("hello")])
    await deepgram_fake.wait_for(lambda: len(deepgram_fake.current.audio) == len(first))

    deepgram_fake.drop()
    await eventually(lambda: session.state == "reconnecting")
    second = clips.spoken("time")
    await speak(session, second)  # buffered while reconnecting
    await deepgram_fake.wait_for(lambda: len(deepgram_fake.connections) == 2)
    third = clips.spoken("thanks")
    await speak(session, third)
    await recorder.wait_for(lambda: len(recorder.finals) == 3)
    await session.close()

    assert recorder.finals == [clips.text(n) for n in ("hello", "time", "thanks")]
    assert bytes(deepgram_fake.connections[0].audio) == first
    assert bytes(deepgram_fake.connections[1].audio) == second + third
    assert deepgram_fake.audio == first + second + third
    assert recorder.errors == []
    assert (session.connections, session.dropped_bytes) == (2, 0)


async def test_drop_mid_utterance_after_scripted_byte_count(
    deepgram_fake, deepgram_config, recorder, clips, speak, eventually
):
    """The fake cuts the socket on its own once it has 1 s of audio; the session reconnects
    and everything sent after the drop was noticed still arrives, in order."""
    deepgram_fake.drop_after_bytes = 8000
    session = make_session(deepgram_config, recorder, **WINDOW)
    await session.connect()
    await speak(session, silence(1000))
    await deepgram_fake.wait_for(lambda: not deepgram_fake.connections[0].open)
    await eventually(lambda: session.state == "reconnecting")
    await speak(session, clips.spoken("thanks"))
    await recorder.wait_for(lambda: recorder.finals)
    await session.close()
    assert recorder.finals == [clips.text("thanks")]
    assert bytes(deepgram_fake.connections[0].audio) == silence(1000)
    assert bytes(deepgram_fake.connections[1].audio) == clips.spoken("thanks")


async def test_idle_timeout_without_keepalive_is_survived_by_reconnecting(
    deepgram_fake, deepgram_config, recorder, clips, speak
):
    """With keep-alive off, the fake closes the idle socket (1011 NET-0001), as Deepgram does
    after ~10 s; the session reconnects and the call's next words still arrive."""
    deepgram_fake.idle_timeout_s = 0.2
    session = make_session(
        deepgram_config, recorder, keepalive_interval_s=0, reconnect_base_delay_s=0.3
    )
    await session.connect()
    await deepgram_fake.wait_for(lambda: deepgram_fake.connections[0].close_code == 1011)
    deepgram_fake.idle_timeout_s = None  # before the reconnect, 0.3 s later
    await deepgram_fake.wait_for(lambda: len(deepgram_fake.connections) == 2)
    await speak(session, clips.spoken("time"))
    await recorder.wait_for(lambda: recorder.finals)
    await session.close()
    assert recorder.finals == [clips.text("time")]
    assert deepgram_fake.connections[0].texts("KeepAlive") == []
