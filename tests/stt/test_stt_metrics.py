"""voicehost.stt_stream counts its vendor's trouble in voicehost.metrics: drops of an open
socket (``voicehost_stt_reconnects_total``) and failed connect tries
(``voicehost_vendor_errors_total`` kinds ``connect``, ``auth``, ``refused``). The registry is
process-global, so every check is a delta."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from voicehost import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    StreamingConfig,
    StreamingTranscriptionSession,
    TranscriptionRequest,
    metrics,
)

FAST = {
    "reconnect_attempts": 3,
    "reconnect_base_delay_s": 0.01,
    "reconnect_max_delay_s": 0.05,
    "send_timeout_s": 0.2,
    "close_timeout_s": 1.0,
}
PROVIDER = "memory-metrics"


class FlakyVendor:
    """An in-memory vendor: ``failures`` are raised by the next opens, ``drop`` cuts the
    open socket."""

    def __init__(self) -> None:
        self.failures: list[Exception] = []
        self.opened = 0
        self.drop = asyncio.Event()


class FlakySession(StreamingTranscriptionSession[StreamingConfig]):
    provider_id = PROVIDER

    def __init__(self, request: TranscriptionRequest, vendor: FlakyVendor) -> None:
        super().__init__(request, StreamingConfig.model_validate(FAST))
        self.vendor = vendor

    async def _open(self) -> None:
        if self.vendor.failures:
            raise self.vendor.failures.pop(0)
        self.vendor.drop.clear()
        self.vendor.opened += 1

    async def _send_audio(self, audio: bytes) -> None:
        return None

    async def _receive(self) -> None:
        await self.vendor.drop.wait()
        raise ConnectionResetError("vendor went away")

    async def _discard_connection(self) -> None:
        return None


@pytest.fixture(autouse=True)
def _metrics_on() -> None:
    metrics.set_enabled(True)


def count(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def errors(kind: str) -> float:
    return count("voicehost_vendor_errors_total", provider=PROVIDER, kind=kind)


def session_for(vendor: FlakyVendor, recorder: Any) -> FlakySession:
    request = TranscriptionRequest(config=StreamingConfig(), callbacks=recorder.callbacks)
    return FlakySession(request, vendor)


async def _until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - another task's state
            await asyncio.sleep(0.005)


async def test_failed_connect_tries_and_a_drop_are_counted(recorder):
    vendor = FlakyVendor()
    vendor.failures = [OSError("refused"), TimeoutError()]
    session = session_for(vendor, recorder)
    connects, drops = errors("connect"), count("voicehost_stt_reconnects_total", provider=PROVIDER)
    await session.connect()
    assert errors("connect") - connects == 2
    vendor.drop.set()
    await _until(lambda: vendor.opened == 2 and session.connected)
    assert count("voicehost_stt_reconnects_total", provider=PROVIDER) - drops == 1
    await session.close()
    assert recorder.errors == []


async def test_refused_credentials_and_requests_are_counted_by_kind(recorder):
    auth, refused = errors("auth"), errors("refused")
    vendor = FlakyVendor()
    vendor.failures = [ProviderAuthError(PROVIDER, "bad key", status=401)]
    with pytest.raises(ProviderAuthError):
        await session_for(vendor, recorder).connect()
    vendor.failures = [ProviderError(PROVIDER, "bad request", status=400)]
    with pytest.raises(ProviderError):
        await session_for(vendor, recorder).connect()
    assert errors("auth") - auth == 1
    assert errors("refused") - refused == 1


async def test_nothing_is_counted_while_metrics_are_off(recorder):
    vendor = FlakyVendor()
    vendor.failures = [OSError("refused")] * 3
    session = session_for(vendor, recorder)
    connects = errors("connect")
    metrics.set_enabled(False)
    try:
        with pytest.raises(ProviderConnectionError):
            await session.connect()
    finally:
        metrics.set_enabled(True)
    assert errors("connect") == connects
