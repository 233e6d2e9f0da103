"""Helpers of the conformance kit (:mod:`voicehost.testing.conformance`): parsing a config
table, loading a speech clip, matching words, recording STT callbacks, endpoints that refuse
or stall, and measuring audio.

Everything here is re-exported by :mod:`voicehost.testing.conformance`; import it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

import attrs
import numpy as np
import pytest
from pydantic import BaseModel

from voicehost.audio import AudioConverter, Framer, pcm16_array, ulaw_to_pcm16_array
from voicehost.config_model import ConfigModel, ProviderConfig, parse_table
from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    ConversationProvider,
    ResponderProvider,
    SpeechProvider,
    TranscriptionCallbacks,
    TranscriptionProvider,
)
from voicehost.wavfile import read_audio_ulaw

__all__ = [
    "FRAME_BYTES",
    "CallbackEvent",
    "CallbackRecorder",
    "Clip",
    "Signal",
    "bounded",
    "collect",
    "config_from_table",
    "contains_words",
    "frames",
    "load_clip",
    "measure",
    "misreadings",
    "provider_kind",
    "reframe",
    "refusing_endpoint",
    "stalled_endpoint",
    "undocumented_keys",
    "words",
]

T = TypeVar("T")

#: One Twilio media frame: 20 ms of μ-law 8 kHz.
FRAME_BYTES = 160

#: A path or μ-law 8 kHz bytes: what a conformance class takes as its speech clip.
Clip = bytes | str | os.PathLike[str]


# --- config --------------------------------------------------------------------------------


def provider_kind(provider: object) -> str:
    """``"stt"``, ``"tts"``, ``"responder"`` or ``"conversation"``: the ``plugins.toml``
    table ``provider``'s config lives under.

    Raises:
        TypeError: ``provider`` is none of the four provider kinds.
    """
    if isinstance(provider, TranscriptionProvider):
        return "stt"
    if isinstance(provider, SpeechProvider):
        return "tts"
    if isinstance(provider, ResponderProvider):
        return "responder"
    if isinstance(provider, ConversationProvider):
        return "conversation"
    raise TypeError(
        f"{type(provider).__name__} is not a TranscriptionProvider, SpeechProvider, "
        "ResponderProvider or ConversationProvider"
    )


def config_from_table(provider: Any, table: Mapping[str, Any] | None = None) -> ProviderConfig:
    """Parse ``table`` (the provider's ``[<kind>.<id>]`` table of ``plugins.toml``, as a dict)
    into ``provider.config_class`` with the host's own parser
    (:func:`voicehost.config_model.parse_table`): strict types, unknown keys refused, every
    default applied.

    The host resolves ``${VAR}`` references and :func:`~voicehost.env_field` defaults from
    the environment before this step; here values are taken as given (write the API key into
    the table), and an ``env_field`` key left out is ``""``.

    Raises:
        ConfigError: what the host would refuse at start-up; ``problems`` has one line per
            problem, naming ``[<kind>.<id>]``, the key and the value.
    """
    model = getattr(provider, "config_class", ProviderConfig)
    where = f"{provider_kind(provider)}.{provider.id}"
    return parse_table(model, dict(table or {}), table=where)


def undocumented_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Keys of ``model`` (nested config tables included, as ``outer.inner``) declared without
    a ``description``."""
    missing = []
    for name, field in model.model_fields.items():
        if not (field.description or "").strip():
            missing.append(prefix + name)
        for nested in _config_models(field.annotation):
            missing += undocumented_keys(nested, f"{prefix}{name}.")
    return missing


def _config_models(annotation: Any) -> list[type[ConfigModel]]:
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
        return [annotation]
    found: list[type[ConfigModel]] = []
    for arg in get_args(annotation):
        for model in _config_models(arg):
            if model not in found:
                found.append(model)
    return found


# --- speech clips and words ----------------------------------------------------------------


def load_clip(clip: Clip) -> bytes:
    """A speech clip as μ-law 8 kHz bytes (what a Twilio caller sends).

    Args:
        clip: μ-law 8 kHz bytes (returned as they are), or the path of an audio file in any
            format libsndfile reads (WAV, FLAC …; mixed to mono and resampled to 8 kHz).

    Raises:
        voicehost.wavfile.WavError: the file is missing or unreadable.
    """
    if isinstance(clip, bytes | bytearray | memoryview):
        return bytes(clip)
    return read_audio_ulaw(Path(clip))


def frames(audio: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    """``audio`` cut into ``size``-byte frames (the last may be shorter), as Twilio sends it."""
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def words(text: str) -> list[str]:
    """The words of ``text``: lower case, apostrophes dropped (``don't`` → ``dont``), any
    other punctuation a separator."""
    text = re.sub(r"['’]", "", text.lower())
    return re.findall(r"\w+", text)


def contains_words(text: str, expected: str) -> bool:
    """True when the words of ``expected`` appear in ``text`` in that order (other words may
    come between them), compared with :func:`words`."""
    heard = iter(words(text))
    return all(any(word == got for got in heard) for word in words(expected))


# --- STT callbacks -------------------------------------------------------------------------


@attrs.frozen
class CallbackEvent:
    """One STT callback: its kind (``partial``, ``final``, ``speech_start``, ``error``), its
    argument, the thread it ran on and when (``time.monotonic()``)."""

    kind: str
    value: Any
    thread: int
    at: float


class CallbackRecorder:
    """Records an STT session's callbacks with the thread each ran on.

    ``recorder.callbacks`` is the :class:`~voicehost.TranscriptionCallbacks` to put in the
    request. Safe to call from any thread (a plugin that gets the thread wrong is reported by
    the kit, not crashed by it).
    """

    def __init__(self) -> None:
        self.events: list[CallbackEvent] = []
        self._lock = threading.Lock()

    @property
    def callbacks(self) -> TranscriptionCallbacks:
        return TranscriptionCallbacks(
            on_partial=lambda text: self._add("partial", text),
            on_transcript=lambda text: self._add("final", text),
            on_speech_start=lambda: self._add("speech_start", None),
            on_error=lambda exc: self._add("error", exc),
        )

    def _add(self, kind: str, value: Any) -> None:
        with self._lock:
            self.events.append(CallbackEvent(kind, value, threading.get_ident(), time.monotonic()))

    def of(self, kind: str) -> list[Any]:
        """The arguments of every ``kind`` callback so far, in order."""
        with self._lock:
            return [event.value for event in self.events if event.kind == kind]

    @property
    def finals(self) -> list[str]:
        return self.of("final")

    @property
    def errors(self) -> list[Exception]:
        return self.of("error")

    async def wait_for(self, condition: Callable[[], bool], within: float) -> bool:
        """Poll ``condition`` (every 10 ms) until it holds or ``within`` seconds pass;
        returns whether it held. Callbacks may come from any thread, so there is no event to
        await."""
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True


# --- endpoints -----------------------------------------------------------------------------


@contextlib.contextmanager
def refusing_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` where nothing listens: a connection is refused at once
    (TCP RST). The port stays bound (not listening) while the context is open, so nothing
    else can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextlib.contextmanager
def stalled_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` that accepts TCP connections and reads nothing and
    answers nothing: a stalled vendor (the HTTP request or WebSocket upgrade never gets an
    answer). The kernel completes the handshakes into the listen backlog; no thread runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


# --- time bounds ---------------------------------------------------------------------------


async def bounded(awaitable: Awaitable[T], within: float, what: str) -> T:
    """Await ``awaitable``; fail the test (naming ``what``) if it takes over ``within``
    seconds: a hang, not a slow machine, is what these generous bounds catch."""
    try:
        async with asyncio.timeout(within):
            return await awaitable
    except TimeoutError:
        pytest.fail(f"{what} did not finish within {within:g} s (a hang?)")


async def collect(stream: AsyncIterator[T], within: float, what: str) -> list[T]:
    """Every item of ``stream``, bounded like :func:`bounded`."""

    async def drain() -> list[T]:
        return [item async for item in stream]

    return await bounded(drain(), within, what)


# --- audio ---------------------------------------------------------------------------------


@attrs.frozen
class Signal:
    """What :func:`measure` found in some audio.

    Attributes:
        seconds: its length.
        rms_dbfs: its RMS level, dB below full scale (``-inf`` for digital silence).
        flatness: the spectral flatness of its non-silent parts, from 0 (tonal: speech, a
            beep) to 1 (white noise — which is what the bytes of one encoding look like when
            read as another, or PCM16 read with the wrong byte order).
    """

    seconds: float
    rms_dbfs: float
    flatness: float


def measure(audio: bytes, fmt: AudioFormat) -> Signal:
    """Decode ``audio`` (in ``fmt``; whole samples) and measure it."""
    samples = _decode(audio, fmt.encoding)
    seconds = len(samples) / fmt.sample_rate / fmt.channels
    if not len(samples):
        return Signal(0.0, -math.inf, 1.0)
    x = samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    dbfs = 20 * math.log10(rms / 32768) if rms > 0 else -math.inf
    return Signal(seconds, dbfs, _flatness(samples))


def misreadings(audio: bytes, fmt: AudioFormat) -> dict[str, float]:
    """The spectral flatness (see :class:`Signal`) of ``audio`` read *wrongly*: as the other
    encoding, and for PCM16 also with the bytes of each sample swapped. Audio really in
    ``fmt`` is never much more tonal read in one of these ways than read as ``fmt``."""
    if fmt.encoding == "mulaw":
        return {"pcm16": _flatness(_decode(audio[: len(audio) // 2 * 2], "pcm16"))}
    swapped = np.frombuffer(audio, "<i2").byteswap().tobytes()
    return {
        "mulaw": _flatness(_decode(audio, "mulaw")),
        "pcm16 big-endian": _flatness(_decode(swapped, "pcm16")),
    }


def _decode(audio: bytes, encoding: str) -> np.ndarray:
    return ulaw_to_pcm16_array(audio) if encoding == "mulaw" else pcm16_array(audio)


def _flatness(samples: np.ndarray, size: int = 256) -> float:
    """Spectral flatness (geometric over arithmetic mean of the power spectrum, averaged
    over Hann-windowed blocks of ``size`` samples, blocks 40 dB below the loudest left out);
    1.0 for silence."""
    x = samples.astype(np.float64)
    size = min(size, len(x))
    count = len(x) // size if size else 0
    if count == 0:
        return 1.0
    blocks = (x[: count * size].reshape(count, size)) * np.hanning(size)
    power = np.abs(np.fft.rfft(blocks, axis=1)) ** 2
    energy = power.sum(axis=1)
    if energy.max() <= 0:
        return 1.0
    spectrum = power[energy >= energy.max() * 1e-4].mean(axis=0)[1:] + 1e-9
    return float(np.exp(np.mean(np.log(spectrum))) / np.mean(spectrum))


def reframe(chunks: Sequence[bytes], fmt: AudioFormat, sizes: Sequence[int] = ()) -> list[bytes]:
    """What the host plays for a synthesis: ``chunks`` (in ``fmt``) re-cut into ``sizes``
    bytes at a time (repeated; empty: as given), converted to μ-law 8 kHz
    (:class:`~voicehost.AudioConverter`) and cut into 160-byte frames
    (:class:`voicehost.audio.Framer`), the last one padded with silence."""
    audio = b"".join(chunks)
    if sizes:
        pieces, pos, i = [], 0, 0
        while pos < len(audio):
            size = sizes[i % len(sizes)]
            pieces.append(audio[pos : pos + size])
            pos, i = pos + size, i + 1
    else:
        pieces = list(chunks)
    converter = AudioConverter(fmt, MULAW_8K)
    framer = Framer(FRAME_BYTES)
    out: list[bytes] = []
    for piece in pieces:
        out += framer.push(converter.convert(piece))
    out += framer.push(converter.flush(discard_partial=True))
    tail = framer.flush(pad=True)
    if tail is not None:
        out.append(tail)
    return out
