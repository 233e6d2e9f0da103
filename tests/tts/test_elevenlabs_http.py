"""The ``elevenlabs`` speech provider in HTTP mode, on the official SDK, against the fake
``POST /v1/text-to-speech/{voice_id}/stream`` (wire-protocols.md §5.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fakes.tts_stream import StreamPlan
from tts_helpers import changed, closed_port, collect, collect_until_error

from voicehost import MULAW_8K, ProviderAuthError, ProviderConnectionError, ProviderError
from voicehost.audio import AudioConverter, Framer
from voicehost_elevenlabs_tts import ElevenLabsSpeechProvider


@pytest.fixture
async def provider() -> AsyncIterator[ElevenLabsSpeechProvider]:
    provider = ElevenLabsSpeechProvider()
    yield provider
    await provider.aclose()


async def test_streams_the_vendor_mulaw_byte_exact(provider, elevenlabs_fake, elevenlabs_config):
    chunks = await collect(provider.synthesize("Hello there.", elevenlabs_config))

    assert b"".join(chunks) == elevenlabs_fake.audio
    assert provider.output_format(elevenlabs_config) == MULAW_8K
    [request] = elevenlabs_fake.requests
    assert request.rejected is None
    assert (request.method, request.path) == ("POST", "/v1/text-to-speech/voice123/stream")
    assert request.query == {"output_format": "ulaw_8000"}
    assert request.headers["xi-api-key"] == "xi-test"
    assert request.body == {"text": "Hello there.", "model_id": "eleven_flash_v2_5"}


async def test_sends_voice_settings_model_and_latency(provider, elevenlabs_fake, elevenlabs_config):
    config = changed(
        elevenlabs_config,
        model_id="eleven_turbo_v2_5",
        optimize_streaming_latency=3,
        voice_settings={"stability": 0.4, "similarity_boost": 0.75, "style": 0.1, "speed": 1.1},
    )
    await collect(provider.synthesize("Hi.", config))

    [request] = elevenlabs_fake.requests
    assert request.query == {"output_format": "ulaw_8000", "optimize_streaming_latency": "3"}
    assert request.body == {
        "text": "Hi.",
        "model_id": "eleven_turbo_v2_5",
        "voice_settings": {"stability": 0.4, "similarity_boost": 0.75, "style": 0.1, "speed": 1.1},
    }


async def test_host_framing_carries_chunks_that_are_not_frame_multiples(
    provider, elevenlabs_fake, elevenlabs_config
):
    # The fake's chunks (1, 333, 7, 1023 … bytes) are re-framed by the host's converter (a
    # passthrough for μ-law 8 kHz) and Framer: every frame is 160 bytes, nothing dropped.
    converter, framer = AudioConverter(MULAW_8K, MULAW_8K), Framer()
    frames: list[bytes] = []
    async for chunk in provider.synthesize("Hello.", elevenlabs_config):
        frames += framer.push(converter.convert(chunk))
    tail = framer.flush()

    assert all(len(frame) == 160 for frame in frames)
    assert b"".join(frames) + (tail or b"") == elevenlabs_fake.audio


async def test_first_chunk_arrives_before_the_response_ends(
    provider, elevenlabs_fake, elevenlabs_config
):
    elevenlabs_fake.push_plan(StreamPlan(hold_after_bytes=160))
    stream = provider.synthesize("Hello.", elevenlabs_config)

    first = await asyncio.wait_for(anext(stream), timeout=10)

    assert elevenlabs_fake.audio.startswith(first)
    assert elevenlabs_fake.completed == 0
    elevenlabs_fake.release()
    assert first + b"".join(await collect(stream)) == elevenlabs_fake.audio
    assert elevenlabs_fake.completed == 1


async def test_aclose_closes_the_vendor_response(provider, elevenlabs_fake, elevenlabs_config):
    elevenlabs_fake.push_plan(StreamPlan(hold_after_bytes=160))
    stream = provider.synthesize("Hello.", elevenlabs_config)
    await anext(stream)

    await stream.aclose()

    disconnect = await elevenlabs_fake.wait_disconnect()
    assert disconnect.bytes_sent < len(elevenlabs_fake.audio)
    assert elevenlabs_fake.completed == 0


async def test_cancelling_the_consumer_closes_the_vendor_response(
    provider, elevenlabs_fake, elevenlabs_config
):
    elevenlabs_fake.push_plan(StreamPlan(hold_after_bytes=160))
    got_audio = asyncio.Event()

    async def play() -> None:
        async for _chunk in provider.synthesize("Hello.", elevenlabs_config):
            got_audio.set()

    task = asyncio.create_task(play())
    await asyncio.wait_for(got_audio.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await elevenlabs_fake.wait_disconnect()


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (401, ProviderAuthError, "invalid_api_key"),
        (429, ProviderError, "too_many_concurrent_requests"),
        (500, ProviderError, "internal_error"),
    ],
)
async def test_vendor_error_status_raises_a_typed_error(
    provider, elevenlabs_fake, elevenlabs_config, status, error_type, code
):
    elevenlabs_fake.push_plan(StreamPlan(status=status))

    chunks, error = await collect_until_error(provider.synthesize("Hello.", elevenlabs_config))

    assert chunks == []
    assert type(error) is error_type
    assert (error.provider, error.status, error.code) == ("elevenlabs", status, code)
    assert "elevenlabs" in str(error) and str(status) in str(error)
    assert len(elevenlabs_fake.requests) == 1


async def test_wrong_key_and_unknown_voice_are_refused(
    provider, elevenlabs_fake, elevenlabs_config
):
    _, error = await collect_until_error(
        provider.synthesize("Hi.", changed(elevenlabs_config, api_key="xi-wrong"))
    )
    assert isinstance(error, ProviderAuthError)
    assert error.status == 401

    _, error = await collect_until_error(
        provider.synthesize("Hi.", changed(elevenlabs_config, voice_id="nobody"))
    )
    assert type(error) is ProviderError
    assert (error.status, error.code) == (404, "voice_not_found")


async def test_dropped_stream_raises_after_the_audio_before_the_drop(
    provider, elevenlabs_fake, elevenlabs_config
):
    elevenlabs_fake.push_plan(StreamPlan(drop_after_bytes=2001))

    chunks, error = await collect_until_error(provider.synthesize("Hello.", elevenlabs_config))

    assert isinstance(error, ProviderConnectionError)
    assert (error.provider, error.code) == ("elevenlabs", "stream_dropped")
    assert b"".join(chunks) == elevenlabs_fake.audio[:2001]


async def test_unreachable_api_is_a_connection_error(provider, elevenlabs_config):
    config = changed(elevenlabs_config, base_url=f"http://127.0.0.1:{closed_port()}", timeout=5)
    _, error = await collect_until_error(provider.synthesize("Hello.", config))
    assert isinstance(error, ProviderConnectionError)
    assert error.provider == "elevenlabs"


async def test_blank_text_makes_no_request(provider, elevenlabs_fake, elevenlabs_config):
    assert await collect(provider.synthesize(" ", elevenlabs_config)) == []
    assert elevenlabs_fake.requests == []


async def test_streamed_text_in_http_mode_is_one_request_a_sentence(
    provider, elevenlabs_fake, elevenlabs_config
):
    async def reply():
        for piece in ["Hello ", "there. How", " are you?"]:
            yield piece

    chunks = await collect(provider.synthesize_stream(reply(), elevenlabs_config))

    assert [r.body["text"] for r in elevenlabs_fake.requests] == ["Hello there.", "How are you?"]
    assert b"".join(chunks) == elevenlabs_fake.audio * 2
