"""The ``openai`` speech provider through the contract, on the official SDK, against the fake
``/v1/audio/speech`` (wire-protocols.md §3.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fakes.tts_stream import StreamPlan, tone_pcm16
from tts_helpers import changed, closed_port, collect, collect_until_error, tone_stats

from voicehost import MULAW_8K, PCM16_24K, ProviderAuthError, ProviderConnectionError, ProviderError
from voicehost.audio import AudioConverter, Framer, ulaw_decode
from voicehost_openai_tts import OpenAISpeechProvider
from voicehost_openai_tts.config import MAX_INPUT_CHARS
from voicehost_openai_tts.provider import split_for_limit


@pytest.fixture
async def provider() -> AsyncIterator[OpenAISpeechProvider]:
    provider = OpenAISpeechProvider()
    yield provider
    await provider.aclose()


async def test_streams_the_vendor_pcm_unchanged(provider, openai_fake, openai_config):
    chunks = await collect(provider.synthesize("Hello there.", openai_config))

    assert b"".join(chunks) == openai_fake.audio
    assert provider.output_format(openai_config) == PCM16_24K
    [request] = openai_fake.requests
    assert request.rejected is None
    assert (request.method, request.path) == ("POST", "/v1/audio/speech")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["accept"] == "application/octet-stream"
    assert request.body == {
        "model": "gpt-4o-mini-tts",
        "input": "Hello there.",
        "voice": "coral",
        "response_format": "pcm",
        "speed": 1.0,
    }


async def test_sends_the_configured_voice_model_speed_and_instructions(
    provider, openai_fake, openai_config
):
    config = changed(openai_config, voice="nova", speed=1.25, instructions="Warm, concise.")
    await collect(provider.synthesize("Hi.", config))
    config = changed(openai_config, model="tts-1-hd", voice="onyx")
    await collect(provider.synthesize("Bye.", config))
    config = changed(openai_config, voice="voice_1234")
    await collect(provider.synthesize("Custom.", config))

    first, second, third = (r.body for r in openai_fake.requests)
    assert first["voice"] == "nova"
    assert first["speed"] == 1.25
    assert first["instructions"] == "Warm, concise."
    assert second["model"] == "tts-1-hd"
    assert "instructions" not in second  # empty instructions are not sent
    assert third["voice"] == {"id": "voice_1234"}


async def test_odd_length_chunk_is_yielded_as_is(provider, openai_fake, openai_config):
    # The fake sends 1 byte (half a sample) and holds the rest: the plugin must hand that
    # byte on, not pad or hold it (the host's converter carries the odd byte).
    openai_fake.push_plan(StreamPlan(chunk_sizes=(1, 4095), hold_after_bytes=1))
    stream = provider.synthesize("Hello.", openai_config)
    first = await anext(stream)
    assert first == openai_fake.audio[:1]
    openai_fake.release()
    rest = await collect(stream)
    assert first + b"".join(rest) == openai_fake.audio


async def test_first_chunk_arrives_before_the_response_ends(provider, openai_fake, openai_config):
    openai_fake.push_plan(StreamPlan(hold_after_bytes=960))
    stream = provider.synthesize("Hello.", openai_config)

    first = await asyncio.wait_for(anext(stream), timeout=10)

    assert first
    assert openai_fake.completed == 0  # the fake is still holding the rest of the body
    openai_fake.release()
    rest = await collect(stream)
    assert first + b"".join(rest) == openai_fake.audio
    assert openai_fake.completed == 1


async def test_aclose_closes_the_vendor_response(provider, openai_fake, openai_config):
    openai_fake.push_plan(StreamPlan(hold_after_bytes=960))
    stream = provider.synthesize("Hello.", openai_config)
    await anext(stream)

    await stream.aclose()

    disconnect = await openai_fake.wait_disconnect()
    assert disconnect.bytes_sent < len(openai_fake.audio)
    assert openai_fake.completed == 0


async def test_cancelling_the_consumer_closes_the_vendor_response(
    provider, openai_fake, openai_config
):
    openai_fake.push_plan(StreamPlan(hold_after_bytes=960))
    got_audio = asyncio.Event()

    async def play() -> None:
        async for _chunk in provider.synthesize("Hello.", openai_config):
            got_audio.set()

    task = asyncio.create_task(play())
    await asyncio.wait_for(got_audio.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await openai_fake.wait_disconnect()
    assert openai_fake.completed == 0


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (401, ProviderAuthError, "invalid_api_key"),
        (429, ProviderError, "rate_limit_exceeded"),
        (500, ProviderError, None),
        (503, ProviderError, None),
    ],
)
async def test_vendor_error_status_raises_a_typed_error(
    provider, openai_fake, openai_config, status, error_type, code
):
    openai_fake.push_plan(StreamPlan(status=status))

    chunks, error = await collect_until_error(provider.synthesize("Hello.", openai_config))

    assert chunks == []
    assert type(error) is error_type
    assert (error.provider, error.status, error.code) == ("openai", status, code)
    assert "openai" in str(error) and str(status) in str(error)
    assert len(openai_fake.requests) == 1  # max_retries = 0: no back-off while a caller waits


async def test_wrong_api_key_is_an_auth_error(provider, openai_fake, openai_config):
    config = changed(openai_config, api_key="sk-wrong")
    _, error = await collect_until_error(provider.synthesize("Hello.", config))
    assert isinstance(error, ProviderAuthError)
    assert error.status == 401
    assert openai_fake.requests[0].rejected.startswith("401")


async def test_dropped_stream_raises_after_the_audio_before_the_drop(
    provider, openai_fake, openai_config
):
    openai_fake.push_plan(StreamPlan(drop_after_bytes=5001))

    chunks, error = await collect_until_error(provider.synthesize("Hello.", openai_config))

    assert isinstance(error, ProviderConnectionError)
    assert (error.provider, error.code) == ("openai", "stream_dropped")
    audio = b"".join(chunks)
    assert audio == openai_fake.audio[: len(audio)]  # nothing reordered or invented
    assert len(audio) <= 5001


async def test_unreachable_api_is_a_connection_error(provider, openai_config):
    config = changed(openai_config, base_url=f"http://127.0.0.1:{closed_port()}/v1", timeout=5)
    _, error = await collect_until_error(provider.synthesize("Hello.", config))
    assert isinstance(error, ProviderConnectionError)
    assert error.provider == "openai"


async def test_blank_text_makes_no_request(provider, openai_fake, openai_config):
    assert await collect(provider.synthesize("  \n ", openai_config)) == []
    assert openai_fake.requests == []


async def test_text_over_the_vendor_limit_is_spoken_in_order_across_requests(
    provider, openai_fake, openai_config
):
    sentence = "This sentence is part of a long reply. "
    text = (sentence * 250).strip()  # ~9700 characters
    chunks = await collect(provider.synthesize(text, openai_config))

    inputs = [r.body["input"] for r in openai_fake.requests]
    assert len(inputs) == 3
    assert all(len(piece) <= MAX_INPUT_CHARS for piece in inputs)
    assert " ".join(inputs) == text
    assert b"".join(chunks) == openai_fake.audio * 3


def test_split_for_limit_breaks_words_only_when_they_do_not_fit():
    assert split_for_limit("one two three", 8) == ["one two", "three"]
    assert split_for_limit("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    assert split_for_limit("Short. Also short.", 100) == ["Short. Also short."]
    assert split_for_limit("   ", 10) == []


async def test_tone_keeps_frequency_and_level_after_conversion_to_mulaw(
    provider, openai_fake, openai_config
):
    # The host's documented conversion: AudioConverter(PCM16_24K → MULAW_8K) + 160-byte Framer.
    openai_fake.audio = tone_pcm16(1000.0, 1.0, 24000, amplitude=0.3)
    converter = AudioConverter(PCM16_24K, MULAW_8K)
    framer = Framer()
    frames: list[bytes] = []
    async for chunk in provider.synthesize("Beep.", openai_config):
        frames += framer.push(converter.convert(chunk))
    frames += framer.push(converter.flush())
    tail = framer.flush(pad=True)

    assert all(len(frame) == 160 for frame in frames)
    ulaw = b"".join(frames) + (tail or b"")
    assert abs(len(ulaw) - 8000) <= 160  # one second at 8 kHz, give or take a frame
    freq, rms = tone_stats(ulaw_decode(ulaw), 8000)
    _, source_rms = tone_stats(openai_fake.audio, 24000)
    assert freq == pytest.approx(1000.0, abs=2.0)
    assert rms == pytest.approx(source_rms, rel=0.06)  # within ~0.5 dB
