"""The ``elevenlabs`` speech provider in ``websocket`` mode: ``stream-input`` against the fake
(wire-protocols.md §5.2) — text chunks sent as they arrive, audio streamed back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fakes.tts_stream import StreamPlan
from tts_helpers import changed, closed_port, collect, collect_until_error

from voicehost import ProviderAuthError, ProviderConnectionError, ProviderError
from voicehost_elevenlabs_tts import ElevenLabsConfig, ElevenLabsSpeechProvider
from voicehost_elevenlabs_tts.websocket_stream import word_pieces


@pytest.fixture
async def provider() -> AsyncIterator[ElevenLabsSpeechProvider]:
    provider = ElevenLabsSpeechProvider()
    yield provider
    await provider.aclose()


@pytest.fixture
def ws_config(elevenlabs_config: ElevenLabsConfig) -> ElevenLabsConfig:
    return changed(elevenlabs_config, mode="websocket")


class TextFeed:
    """A responder's streamed reply that the test releases piece by piece."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

    def send(self, piece: str) -> None:
        self.queue.put_nowait(piece)

    def fail(self, exc: BaseException) -> None:
        self.queue.put_nowait(exc)

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[str]:
        while (item := await self.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item


class Listener:
    """Consumes a provider stream in a task, keeping the audio and signalling arrivals."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.chunks: list[bytes] = []
        self._arrived = asyncio.Event()
        self.task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: AsyncIterator[bytes]) -> None:
        async for chunk in stream:
            self.chunks.append(chunk)
            self._arrived.set()

    async def wait_bytes(self, n: int) -> None:
        async with asyncio.timeout(10):
            while sum(map(len, self.chunks)) < n:
                self._arrived.clear()
                await self._arrived.wait()

    @property
    def audio(self) -> bytes:
        return b"".join(self.chunks)


async def test_text_chunks_are_sent_and_spoken_as_they_arrive(provider, elevenlabs_fake, ws_config):
    feed = TextFeed()
    listener = Listener(provider.synthesize_stream(feed, ws_config))

    feed.send("Hello there. ")
    messages = await elevenlabs_fake.wait_messages(2)
    assert messages[1] == {"text": "Hello there. ", "flush": True}
    first_audio = elevenlabs_fake.audio_for("Hello there. ")
    await listener.wait_bytes(len(first_audio))
    # Audio for the first sentence is out while the reply's second sentence is not yet known.
    assert listener.audio == first_audio
    assert len(elevenlabs_fake.requests[-1].messages) == 2

    feed.send("How are you? ")
    await elevenlabs_fake.wait_messages(3)
    feed.end()
    await asyncio.wait_for(listener.task, timeout=10)

    [request] = elevenlabs_fake.requests
    assert request.messages == [
        {"text": " ", "generation_config": {"chunk_length_schedule": [50]}},
        {"text": "Hello there. ", "flush": True},
        {"text": "How are you? ", "flush": True},
        {"text": ""},
    ]
    assert [g.text for g in elevenlabs_fake.generations] == ["Hello there. ", "How are you? "]
    assert listener.audio == b"".join(g.audio for g in elevenlabs_fake.generations)
    assert elevenlabs_fake.disconnects == []


async def test_handshake_follows_the_documented_url_and_auth(provider, elevenlabs_fake, ws_config):
    config = changed(ws_config, voice_settings={"stability": 0.5, "use_speaker_boost": True})
    audio = b"".join(await collect(provider.synthesize("Hi there.", config)))

    [request] = elevenlabs_fake.requests
    assert (request.method, request.path) == ("GET", "/v1/text-to-speech/voice123/stream-input")
    assert request.query == {"model_id": "eleven_flash_v2_5", "output_format": "ulaw_8000"}
    assert request.headers["xi-api-key"] == "xi-test"
    assert request.messages[0]["voice_settings"] == {"stability": 0.5, "use_speaker_boost": True}
    assert audio == elevenlabs_fake.audio_for("Hi there. ")


def test_websocket_url_is_derived_from_base_url():
    def url(base: str) -> str:
        return ElevenLabsConfig(voice_id="v1", base_url=base).stream_input_url

    assert url("https://api.elevenlabs.io") == (
        "wss://api.elevenlabs.io/v1/text-to-speech/v1/stream-input"
        "?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
    )
    assert url("http://127.0.0.1:9003/").startswith("ws://127.0.0.1:9003/v1/text-to-speech/v1/")
    assert url("https://proxy.example/eleven").startswith("wss://proxy.example/eleven/v1/")


async def test_words_are_never_split_across_messages():
    async def pieces() -> AsyncIterator[str]:
        for piece in ["Hel", "lo wor", "ld.", " How", "  are\nyou"]:
            yield piece

    assert [p async for p in word_pieces(pieces())] == [
        ("Hello ", False),
        ("world. ", True),
        ("How are ", False),
        ("you ", True),
    ]


async def test_aclose_closes_the_socket(provider, elevenlabs_fake, ws_config):
    elevenlabs_fake.push_plan(StreamPlan(hold_after_bytes=100))
    stream = provider.synthesize("Hello there, this is a long reply.", ws_config)
    await asyncio.wait_for(anext(stream), timeout=10)

    # At once: no waiting on a close handshake the vendor (busy streaming) does not answer.
    async with asyncio.timeout(0.5):
        await stream.aclose()

    disconnect = await elevenlabs_fake.wait_disconnect()
    assert disconnect.bytes_sent < len(elevenlabs_fake.generations[0].audio)


async def test_cancelling_the_consumer_closes_the_socket(provider, elevenlabs_fake, ws_config):
    elevenlabs_fake.push_plan(StreamPlan(hold_after_bytes=100))
    feed = TextFeed()
    listener = Listener(provider.synthesize_stream(feed, ws_config))
    feed.send("Hello there. ")
    await listener.wait_bytes(1)

    listener.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listener.task
    await elevenlabs_fake.wait_disconnect()


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (401, ProviderAuthError, "invalid_api_key"),
        (429, ProviderError, "too_many_concurrent_requests"),
        (500, ProviderError, "internal_error"),
    ],
)
async def test_refused_handshake_raises_a_typed_error(
    provider, elevenlabs_fake, ws_config, status, error_type, code
):
    elevenlabs_fake.push_plan(StreamPlan(status=status))
    _, error = await collect_until_error(provider.synthesize("Hello.", ws_config))
    assert type(error) is error_type
    assert (error.provider, error.status, error.code) == ("elevenlabs", status, code)


async def test_wrong_key_is_an_auth_error(provider, elevenlabs_fake, ws_config):
    _, error = await collect_until_error(
        provider.synthesize("Hello.", changed(ws_config, api_key="xi-wrong"))
    )
    assert isinstance(error, ProviderAuthError)
    assert error.status == 401


async def test_in_band_error_message_raises_with_the_close_code(
    provider, elevenlabs_fake, ws_config
):
    elevenlabs_fake.push_plan(
        StreamPlan(
            error_body={"message": "Quota exceeded.", "error": "quota_exceeded"},
            drop_close_code=1008,
        )
    )
    chunks, error = await collect_until_error(provider.synthesize("Hello.", ws_config))
    assert chunks == []
    assert type(error) is ProviderError
    assert (error.status, error.code, error.message) == (1008, "quota_exceeded", "Quota exceeded.")


async def test_dropped_socket_raises_after_the_audio_before_the_drop(
    provider, elevenlabs_fake, ws_config
):
    elevenlabs_fake.push_plan(StreamPlan(drop_after_bytes=301, drop_close_code=1011))

    chunks, error = await collect_until_error(provider.synthesize("Hello there.", ws_config))

    assert isinstance(error, ProviderConnectionError)
    assert (error.status, error.code) == (1011, "stream_dropped")
    assert b"".join(chunks) == elevenlabs_fake.generations[0].audio[:301]


async def test_unreachable_api_is_a_connection_error(provider, ws_config):
    config = changed(ws_config, base_url=f"http://127.0.0.1:{closed_port()}", timeout=5)
    _, error = await collect_until_error(provider.synthesize("Hello.", config))
    assert isinstance(error, ProviderConnectionError)


async def test_a_failing_text_source_stops_the_socket_and_reraises(
    provider, elevenlabs_fake, ws_config
):
    feed = TextFeed()
    listener = Listener(provider.synthesize_stream(feed, ws_config))
    feed.send("Hello there. ")
    await listener.wait_bytes(1)

    feed.fail(RuntimeError("responder crashed"))
    with pytest.raises(RuntimeError, match="responder crashed"):
        await asyncio.wait_for(listener.task, timeout=10)
    await elevenlabs_fake.wait_disconnect()
    assert {"text": ""} not in elevenlabs_fake.requests[0].messages
