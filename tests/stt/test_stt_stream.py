"""voicehost.stt_stream: the shared queue / keep-alive / reconnect / close logic, on an
in-memory vendor (no sockets), plus its config class and URL helpers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from voicehost import (
    ConfigError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    StreamingConfig,
    StreamingTranscriptionProvider,
    StreamingTranscriptionSession,
    TranscriptionCallbacks,
    TranscriptionRequest,
    TranscriptionSession,
    websocket_url,
)
from voicehost.config_model import parse_table
from voicehost.stt_stream import http_status_of, upgrade_error

FAST = {
    "reconnect_attempts": 3,
    "reconnect_base_delay_s": 0.01,
    "reconnect_max_delay_s": 0.05,
    "send_timeout_s": 0.2,
    "close_timeout_s": 1.0,
}


class MemoryVendor:
    """What the in-memory "vendor" received, per connection, and how to break it."""

    def __init__(self) -> None:
        self.connections: list[list[bytes]] = []
        self.open_failures: list[Exception] = []  # raised by the next opens, in order
        self.hang_sends = False
        self.drop = asyncio.Event()
        self.changed = asyncio.Event()

    async def wait_for(self, condition: Any, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while True:
                self.changed.clear()
                if condition():
                    return
                await self.changed.wait()


class MemorySession(StreamingTranscriptionSession[StreamingConfig]):
    provider_id = "memory"
    max_send_bytes = 480

    def __init__(self, request: TranscriptionRequest, vendor: MemoryVendor, **settings: Any):
        super().__init__(request, StreamingConfig.model_validate({**FAST, **settings}))
        self.vendor = vendor
        self.keepalives = 0

    async def _open(self) -> None:
        if self.vendor.open_failures:
            raise self.vendor.open_failures.pop(0)
        self.vendor.drop.clear()
        self.vendor.connections.append([])
        self.vendor.changed.set()

    async def _send_audio(self, audio: bytes) -> None:
        if self.vendor.hang_sends:
            self.vendor.hang_sends = False
            await asyncio.Event().wait()  # a half-closed socket: never returns
        self.vendor.connections[-1].append(audio)
        self.vendor.changed.set()

    async def _send_keepalive(self) -> None:
        self.keepalives += 1
        self.vendor.changed.set()

    async def _receive(self) -> None:
        await self.vendor.drop.wait()
        raise ConnectionResetError("vendor went away")

    async def _discard_connection(self) -> None:
        return None


@pytest.fixture
def vendor() -> MemoryVendor:
    return MemoryVendor()


def session_for(vendor: MemoryVendor, recorder: Any, **settings: Any) -> MemorySession:
    return MemorySession(
        TranscriptionRequest(config=StreamingConfig(), callbacks=recorder.callbacks),
        vendor,
        **settings,
    )


def received(vendor: MemoryVendor, index: int = -1) -> bytes:
    return b"".join(vendor.connections[index])


async def test_audio_sent_before_connect_is_delivered_in_order(vendor, recorder):
    session = session_for(vendor, recorder)
    chunks = [bytes([i]) * 160 for i in range(5)]
    for chunk in chunks:
        session.send_audio(chunk)
    await session.connect()
    await vendor.wait_for(lambda: len(received(vendor)) == 800)
    await session.close()
    assert received(vendor) == b"".join(chunks)
    assert all(len(piece) <= 480 for piece in vendor.connections[0])  # coalesced, bounded


async def test_a_send_that_hangs_is_bounded_and_its_audio_resent(vendor, recorder):
    session = session_for(vendor, recorder)
    await session.connect()
    vendor.hang_sends = True
    session.send_audio(b"\x01" * 160)
    await vendor.wait_for(lambda: len(vendor.connections) == 2)  # after send_timeout_s
    session.send_audio(b"\x02" * 160)
    await vendor.wait_for(lambda: len(received(vendor)) == 320)
    await session.close()
    assert vendor.connections[0] == []
    assert received(vendor) == b"\x01" * 160 + b"\x02" * 160
    assert recorder.errors == []


async def test_gives_up_after_the_attempts_with_one_on_error(vendor, recorder):
    session = session_for(vendor, recorder)
    await session.connect()
    vendor.open_failures = [OSError("refused")] * 3
    vendor.drop.set()
    await recorder.wait_for(lambda: recorder.errors)
    assert session.state == "failed" and not session.connected
    (error,) = recorder.errors
    assert isinstance(error, ProviderConnectionError)
    assert "3 tries" in str(error)
    session.send_audio(b"\x00" * 160)  # the call goes on: no raise, audio dropped
    assert session.dropped_bytes == 160
    await session.close()
    assert len(recorder.errors) == 1


async def test_auth_error_while_reconnecting_is_reported_once_and_not_retried(vendor, recorder):
    session = session_for(vendor, recorder)
    await session.connect()
    vendor.open_failures = [ProviderAuthError("memory", "bad key", status=401), OSError("x")]
    vendor.drop.set()
    await recorder.wait_for(lambda: recorder.errors)
    await session.close()
    assert isinstance(recorder.errors[0], ProviderAuthError)
    assert len(vendor.open_failures) == 1  # the second failure was never reached


async def test_initial_connect_retries_then_raises(vendor, recorder):
    session = session_for(vendor, recorder)
    vendor.open_failures = [OSError("refused")] * 3
    with pytest.raises(ProviderConnectionError, match="3 tries"):
        await session.connect()
    assert recorder.errors == []  # connect() raises; on_error is for failures mid-call
    with pytest.raises(RuntimeError):
        await session.connect()


async def test_initial_connect_succeeds_on_a_later_try(vendor, recorder):
    session = session_for(vendor, recorder)
    vendor.open_failures = [OSError("refused")]
    await session.connect()
    assert session.connected and session.connections == 1
    await session.close()


async def test_keepalive_after_idle_interval(vendor, recorder):
    session = session_for(vendor, recorder, keepalive_interval_s=0.02)
    await session.connect()
    await vendor.wait_for(lambda: session.keepalives >= 3)
    await session.close()


async def test_callback_exceptions_do_not_break_the_stream(vendor):
    calls: list[str] = []

    def broken(text: str) -> None:
        calls.append(text)
        raise RuntimeError("app bug")

    request = TranscriptionRequest(
        config=StreamingConfig(), callbacks=TranscriptionCallbacks(on_transcript=broken)
    )
    session = MemorySession(request, vendor)
    await session.connect()
    session._emit_transcript("one")
    session._emit_transcript("two")
    assert calls == ["one", "two"] and session.connected
    await session.close()


async def test_send_audio_rejects_non_bytes(vendor, recorder):
    session = session_for(vendor, recorder)
    with pytest.raises(TypeError, match="bytes"):
        session.send_audio("not audio")  # type: ignore[arg-type]


async def test_close_while_reconnecting_stops_retrying(vendor, recorder, eventually):
    session = session_for(vendor, recorder, reconnect_base_delay_s=0.5, reconnect_max_delay_s=1)
    await session.connect()
    vendor.drop.set()
    await eventually(lambda: session.state == "reconnecting")
    await session.close()
    assert session.state == "closed"
    assert len(vendor.connections) == 1
    assert recorder.errors == []


async def test_keepalive_off_when_the_interval_is_zero(vendor, recorder):
    session = session_for(vendor, recorder, keepalive_interval_s=0)
    await session.connect()
    await asyncio.sleep(0.2)  # idle: ten times what fires three keep-alives at 0.02 s
    assert session.keepalives == 0 and session.connected
    await session.close()


def test_backoff_doubles_from_the_base_up_to_the_cap():
    config = StreamingConfig(reconnect_base_delay_s=1.0, reconnect_max_delay_s=8.0)
    assert [config.backoff_s(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"reconnect_attempts": -1},
            "reconnect_attempts: must be greater than or equal to 0, not -1",
        ),
        ({"reconnect_attempts": 1.5}, "reconnect_attempts: must be a valid integer.*, not 1.5"),
        ({"send_timeout_s": "5"}, "send_timeout_s: must be a valid number, not '5'"),
        ({"send_timeout_s": 0}, "send_timeout_s: must be greater than 0, not 0"),
        ({"reconnect_buffer_ms": 0}, "reconnect_buffer_ms: must be greater than or equal to 20"),
        ({"keepalive_interval_s": -1}, "keepalive_interval_s: must be greater than or equal to 0"),
        ({"api_key": "  "}, "api_key: must not be empty"),
        (
            {"reconect_attempts": 2},
            "reconect_attempts: unknown key .did you mean 'reconnect_attempts'",
        ),
    ],
)
def test_config_rejects_bad_values(table, message):
    with pytest.raises(ConfigError, match=rf"plugins\.toml: \[stt\.x\] {message}"):
        parse_table(StreamingConfig, table, table="stt.x")


def test_config_defaults_and_keepalive_off():
    config = parse_table(StreamingConfig, {}, table="stt.x")
    assert (config.reconnect_attempts, config.reconnect_base_delay_s) == (5, 1.0)
    assert (config.reconnect_buffer_ms, config.keepalive_interval_s) == (2000, 0.0)
    assert (config.connect_timeout_s, config.send_timeout_s, config.close_timeout_s) == (
        10.0,
        5.0,
        3.0,
    )
    assert config.api_key == ""
    timed = parse_table(
        StreamingConfig, {"keepalive_interval_s": 5, "api_key": "sk-secret"}, table="x"
    )
    assert timed.keepalive_interval_s == 5.0  # a TOML integer is fine for a float key
    assert "sk-secret" not in repr(timed)  # the key never reaches a log line


class MemoryProvider(StreamingTranscriptionProvider[StreamingConfig]):
    id = "memory"
    config_class = StreamingConfig

    def open_session(
        self, request: TranscriptionRequest, config: StreamingConfig
    ) -> TranscriptionSession:
        return MemorySession(request, MemoryVendor(), **config.model_dump())


def test_provider_is_configured_needs_a_resolved_key():
    provider = MemoryProvider()
    assert provider.is_configured(StreamingConfig(api_key="k-1"))
    assert not provider.is_configured(StreamingConfig())
    assert not provider.is_configured(StreamingConfig(api_key="${MEMORY_API_KEY}"))


def test_provider_hands_the_parsed_config_to_the_session(recorder):
    config = StreamingConfig(api_key="k-1", reconnect_attempts=1)
    request = TranscriptionRequest(config=config, callbacks=recorder.callbacks)
    session = MemoryProvider().create_session(request)
    assert isinstance(session, MemorySession)
    assert session.config.reconnect_attempts == 1 and session.state == "new"


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.openai.com/v1", "wss://api.openai.com/v1"),
        ("http://127.0.0.1:9001/v1/", "ws://127.0.0.1:9001/v1"),
        ("https://api.deepgram.com", "wss://api.deepgram.com"),
        ("wss://proxy.example/x?y=1", "wss://proxy.example/x?y=1"),
    ],
)
def test_websocket_url_maps_the_scheme(base, expected):
    assert websocket_url(base) == expected


@pytest.mark.parametrize("base", ["ftp://x", "api.openai.com", ""])
def test_websocket_url_rejects_non_urls(base):
    with pytest.raises(ValueError, match="URL"):
        websocket_url(base)


def test_upgrade_errors_are_classified_by_status():
    class Response:
        def __init__(self, status: int) -> None:
            self.status_code = status

    class InvalidStatus(Exception):
        def __init__(self, status: int) -> None:
            self.response = Response(status)

    auth = upgrade_error("x", InvalidStatus(401), where="[stt.x] api_key")
    assert isinstance(auth, ProviderAuthError) and auth.status == 401
    assert "[stt.x] api_key" in str(auth)
    assert isinstance(upgrade_error("x", InvalidStatus(403), where="k"), ProviderAuthError)
    bad = upgrade_error("x", InvalidStatus(400), where="k")
    assert type(bad) is ProviderError and bad.status == 400
    assert upgrade_error("x", InvalidStatus(503), where="k") is None
    assert upgrade_error("x", InvalidStatus(429), where="k") is None
    assert upgrade_error("x", OSError("refused"), where="k") is None
    wrapped = RuntimeError("sdk")
    wrapped.__cause__ = InvalidStatus(401)
    assert http_status_of(wrapped) == 401


async def test_reconnect_off_gives_up_at_the_first_drop(vendor, recorder):
    session = session_for(vendor, recorder, reconnect_attempts=0)
    await session.connect()  # the first connect still gets one try
    vendor.drop.set()
    await recorder.wait_for(lambda: recorder.errors)
    await session.close()
    (error,) = recorder.errors
    assert "reconnect_attempts = 0" in str(error)
    assert len(vendor.connections) == 1
