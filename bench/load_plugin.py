"""The plugin ``bench/load.py`` installs into the ``voicehost serve`` process it measures.

* STT ``bench-count``: a pass-through session (μ-law 8 kHz in, so the host hands Twilio's
  bytes over unconverted) that only timestamps each frame with ``time.monotonic()`` as
  ``send_audio`` gets it, reading the frame's index from its first 4 bytes (big-endian; the
  load generator writes it there), and every ``final_every_s`` seconds of audio fires
  ``on_speech_start`` then, ``speech_lead_s`` later, a final transcript, so the responder
  answers now and then.
* TTS ``fake``: :class:`voicehost.testing.providers.FakeSpeechProvider`, a 440 Hz tone
  (``ms_per_char`` of audio per character of text), in uneven chunks.

When the server process exits, every session's timestamps are written as JSON to the file
named by ``$VOICEHOST_BENCH_REPORT`` (after the load generator has read the server's CPU
time, so writing it is not measured)::

    {"sessions": {"CA…": {"idx": [0, 1, …], "t": [monotonic s, …], "finals": 3}, …}}

``CLOCK_MONOTONIC`` is one clock for every process on a Linux machine, so these times compare
with the load generator's.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections.abc import Callable
from typing import ClassVar

from pydantic import Field

from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    SpeechProvider,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.hookspecs import hookimpl
from voicehost.testing.providers import FakeSpeechProvider

REPORT_ENV = "VOICEHOST_BENCH_REPORT"
FRAME_S = 0.02


class CountingConfig(ProviderConfig):
    """``[stt.bench-count]``: when the scripted caller "finishes a sentence"."""

    final_every_s: float = Field(5.0, gt=0, description="A final every this much audio, s.")
    speech_lead_s: float = Field(1.0, ge=0, description="Speech start this long before it, s.")
    final_text: str = Field("tell me more", description="The final transcript's text.")


class CountingSession(TranscriptionSession):
    """Timestamps every frame; fires speech start and a final on a frame-count schedule."""

    def __init__(self, request: TranscriptionRequest) -> None:
        self.request = request
        config: CountingConfig = request.config  # type: ignore[assignment]
        self.every = max(1, round(config.final_every_s / FRAME_S))
        self.lead = min(self.every - 1, round(config.speech_lead_s / FRAME_S))
        self.text = config.final_text
        self.idx: list[int] = []
        self.t: list[float] = []
        self.finals = 0
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    def send_audio(self, audio: bytes) -> None:
        self.t.append(time.monotonic())
        self.idx.append(int.from_bytes(audio[:4], "big"))
        n = len(self.t) % self.every
        if n == self.every - self.lead:
            self.request.callbacks.on_speech_start()
        elif n == 0:
            self.finals += 1
            self.request.callbacks.on_transcript(self.text)

    async def close(self) -> None:
        self._connected = False


class CountingProvider(TranscriptionProvider[CountingConfig]):
    """STT ``bench-count``: see the module docstring."""

    id: ClassVar[str] = "bench-count"
    label: ClassVar[str] = "Counting pass-through STT (bench/load.py)"
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    config_class: ClassVar[type[ProviderConfig]] = CountingConfig

    def __init__(self) -> None:
        self.sessions: list[CountingSession] = []

    def create_session(self, request: TranscriptionRequest) -> CountingSession:
        session = CountingSession(request)
        self.sessions.append(session)
        return session

    def report(self) -> dict[str, object]:
        """Every session's frame indices and arrival times, by call SID."""
        return {
            "sessions": {
                s.request.call_sid: {"idx": s.idx, "t": s.t, "finals": s.finals}
                for s in self.sessions
            }
        }


class LoadBenchPlugin:
    """Registers ``bench-count`` and the tone TTS ``fake``; dumps the report at exit."""

    def __init__(self) -> None:
        self.stt = CountingProvider()
        self.tts = FakeSpeechProvider()
        path = os.environ.get(REPORT_ENV)
        if path:
            atexit.register(self._dump, path)

    def _dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.stt.report(), f)

    @hookimpl
    def register_transcription_providers(
        self, register: Callable[[TranscriptionProvider], None]
    ) -> None:
        register(self.stt)

    @hookimpl
    def register_speech_providers(self, register: Callable[[SpeechProvider], None]) -> None:
        register(self.tts)


plugin = LoadBenchPlugin()
