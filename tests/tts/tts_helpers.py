"""Helpers for the TTS tests: changing a config, draining streams and measuring a tone."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import numpy as np

from voicehost import ProviderConfig

ConfigT = TypeVar("ConfigT", bound=ProviderConfig)


def changed(config: ConfigT, **changes: Any) -> ConfigT:
    """A copy of ``config`` with ``changes``, validated again (as the host would parse a
    table holding them).

    Raises:
        pydantic.ValidationError: the changed config is invalid.
    """
    return type(config).model_validate({**config.model_dump(), **changes})


async def collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    """Every chunk of ``stream``, in order."""
    return [chunk async for chunk in stream]


async def collect_until_error(stream: AsyncIterator[bytes]) -> tuple[list[bytes], BaseException]:
    """The chunks yielded before ``stream`` raised, and what it raised.

    Raises:
        AssertionError: the stream ended without an error.
    """
    chunks: list[bytes] = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    raise AssertionError("the stream ended without an error")


def tone_stats(pcm16: bytes, rate: int) -> tuple[float, float]:
    """``(peak frequency in Hz, RMS level in PCM16 units)`` of PCM16 LE mono audio, measured
    on its middle (edges, where filters ramp in and out, are skipped)."""
    samples = np.frombuffer(pcm16, "<i2").astype(np.float64)
    edge = len(samples) // 10
    middle = samples[edge : len(samples) - edge]
    window = np.hanning(len(middle))
    spectrum = np.abs(np.fft.rfft(middle * window))
    peak = int(np.argmax(spectrum))
    # Parabolic interpolation around the peak bin for sub-bin accuracy.
    if 0 < peak < len(spectrum) - 1:
        a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        offset = 0.5 * (a - c) / (a - 2 * b + c)
    else:
        offset = 0.0
    freq = float((peak + offset) * rate / len(middle))
    rms = float(np.sqrt(np.mean(middle**2)))
    return freq, rms


def closed_port() -> int:
    """A local TCP port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
