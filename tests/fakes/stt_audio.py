"""Known test utterances and the fake recogniser the STT vendor fakes share.

The STT fakes must prove that audio reached the vendor intact, so they "recognise" speech
deterministically: a test makes μ-law clips with :func:`utterance` (a two-tone signal chosen by
a seed; every 20 ms frame of it is voiced), teaches a fake the text of each clip
(:meth:`Utterances.add`), and streams clips separated by μ-law silence (``0xFF``).
:class:`Recogniser` runs a frame-level VAD over the received byte stream: a voiced frame after
silence starts an utterance, ``end_silence_ms`` of silence ends it, and the text is looked up by
the SHA-256 of exactly the voiced bytes. One flipped, lost or reordered byte gives
``<unknown …>`` instead of the text. While an utterance is in progress, the voiced bytes so far
are matched as a prefix of a known clip to produce interim words.

Nothing here imports voicehost: the fakes know only the vendors' wire protocols and G.711.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Literal

import attrs
import numpy as np

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz
FRAME_MS = 20
RATE = 8000
SILENCE_BYTES = frozenset({0xFF, 0x7F})  # μ-law codes that decode to 0


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 μ-law encode int16 samples (the classic BIAS 0x84 / CLIP 32635 formula)."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def utterance(seed: int, ms: int = 600) -> bytes:
    """A deterministic "spoken" μ-law clip: two tones picked by ``seed`` plus a little noise,
    ``ms`` rounded down to whole 20 ms frames. Every frame is voiced (never all-silence)."""
    frames = max(ms // FRAME_MS, 1)
    n = frames * FRAME_BYTES
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    f1, f2 = 200 + (seed * 37) % 600, 900 + (seed * 53) % 1500
    signal = 0.25 * np.sin(2 * math.pi * f1 * t) + 0.15 * np.sin(2 * math.pi * f2 * t)
    signal += 0.02 * rng.standard_normal(n)
    return ulaw_encode(np.round(signal * 32767).astype(np.int16))


def silence(ms: int) -> bytes:
    """μ-law silence (``0xFF``), ``ms`` rounded down to whole samples."""
    return b"\xff" * (RATE * ms // 1000)


def frames(audio: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    """``audio`` cut into ``size``-byte frames (the last may be shorter), as Twilio sends it."""
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def digest(audio: bytes) -> str:
    """Hex SHA-256 of ``audio``."""
    return hashlib.sha256(audio).hexdigest()


class Utterances:
    """The clips a fake knows, by the SHA-256 of their bytes."""

    def __init__(self, known: Iterable[tuple[bytes, str]] = ()) -> None:
        self._text: dict[str, str] = {}
        self._clips: list[tuple[bytes, str]] = []
        for audio, text in known:
            self.add(audio, text)

    def add(self, audio: bytes, text: str) -> None:
        """Teach the fake that ``audio`` (exactly these bytes) says ``text``."""
        self._text[digest(audio)] = text
        self._clips.append((audio, text))

    def text_of(self, audio: bytes) -> str:
        """The text of a complete clip, or ``<unknown N bytes sha XXXXXXXX>``."""
        found = self._text.get(digest(audio))
        return (
            found if found is not None else f"<unknown {len(audio)} bytes sha {digest(audio)[:8]}>"
        )

    def words_so_far(self, audio: bytes) -> str | None:
        """Interim text for the first bytes of a clip: its words in proportion to the bytes
        heard (at least one); None when ``audio`` starts no known clip."""
        for clip, text in self._clips:
            if clip.startswith(audio):
                words = text.split()
                count = max(1, math.floor(len(words) * len(audio) / len(clip)))
                return " ".join(words[:count])
        return None


@attrs.frozen
class Heard:
    """What the recogniser noticed in the stream.

    Attributes:
        kind: ``start`` (speech began), ``partial`` (interim words), ``end`` (utterance over).
        text: interim or final text ("" for ``start``).
        at_ms: stream time of the event, in ms from the first byte.
        audio_ms: length of the utterance's voiced audio so far, in ms.
    """

    kind: Literal["start", "partial", "end"]
    text: str
    at_ms: int
    audio_ms: int


class Recogniser:
    """A frame-level VAD and lookup over a μ-law byte stream fed in arbitrary pieces.

    Args:
        utterances: the known clips.
        end_silence_ms: silence that ends an utterance (None: only :meth:`flush` ends one).
        partial_every_ms: emit a ``partial`` after each this many ms of voiced audio (None: no
            partials).
    """

    def __init__(
        self,
        utterances: Utterances,
        *,
        end_silence_ms: int | None = 300,
        partial_every_ms: int | None = 200,
    ) -> None:
        self.utterances = utterances
        self.end_silence_ms = end_silence_ms
        self.partial_every_ms = partial_every_ms
        self._carry = b""
        self._voiced = bytearray()
        self._speaking = False
        self._silence_ms = 0
        self._frames = 0

    @property
    def speaking(self) -> bool:
        """True inside an utterance."""
        return self._speaking

    def feed(self, audio: bytes) -> list[Heard]:
        """Process more of the stream; what was heard, in order."""
        data = self._carry + audio
        whole = len(data) - len(data) % FRAME_BYTES
        self._carry = data[whole:]
        heard: list[Heard] = []
        for i in range(0, whole, FRAME_BYTES):
            heard.extend(self._frame(data[i : i + FRAME_BYTES]))
        return heard

    def flush(self) -> list[Heard]:
        """End the utterance in progress now (a client ``Finalize`` / ``commit``)."""
        if not self._speaking:
            return []
        return [self._end()]

    def _frame(self, frame: bytes) -> list[Heard]:
        self._frames += 1
        voiced = not set(frame) <= SILENCE_BYTES
        out: list[Heard] = []
        if voiced:
            if not self._speaking:
                self._speaking = True
                self._voiced.clear()
                out.append(Heard("start", "", self._now_ms(), 0))
            self._voiced += frame
            self._silence_ms = 0
            every = self.partial_every_ms
            voiced_ms = len(self._voiced) // 8
            if every and voiced_ms % every == 0:
                words = self.utterances.words_so_far(bytes(self._voiced))
                if words:
                    out.append(Heard("partial", words, self._now_ms(), voiced_ms))
        elif self._speaking:
            self._silence_ms += FRAME_MS
            if self.end_silence_ms is not None and self._silence_ms >= self.end_silence_ms:
                out.append(self._end())
        return out

    def _end(self) -> Heard:
        self._speaking = False
        audio = bytes(self._voiced)
        self._voiced.clear()
        return Heard("end", self.utterances.text_of(audio), self._now_ms(), len(audio) // 8)

    def _now_ms(self) -> int:
        return self._frames * FRAME_MS
