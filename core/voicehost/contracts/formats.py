"""Audio formats: the raw encodings voicehost moves between Twilio and providers."""

from __future__ import annotations

from typing import Literal

import attrs

Encoding = Literal["mulaw", "pcm16"]


@attrs.frozen
class AudioFormat:
    """A raw audio format: no container, no header.

    Attributes:
        encoding: ``"mulaw"`` (G.711 μ-law, one byte a sample) or ``"pcm16"`` (signed 16-bit
            little-endian linear PCM, two bytes a sample).
        sample_rate: samples a second, in Hz (8000, 16000, 22050, 24000 …).
        channels: interleaved channels; telephony is always 1.
    """

    encoding: Encoding
    sample_rate: int
    channels: int = 1

    @property
    def sample_width(self) -> int:
        """Bytes a sample per channel: 1 for μ-law, 2 for PCM16."""
        return 1 if self.encoding == "mulaw" else 2

    @property
    def bytes_per_second(self) -> int:
        """Bytes of one second of audio in this format."""
        return self.sample_rate * self.sample_width * self.channels

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes of ``ms`` milliseconds of audio, rounded down to whole samples."""
        samples = int(self.sample_rate * ms / 1000)
        return samples * self.sample_width * self.channels

    def duration_ms(self, n_bytes: int) -> float:
        """Milliseconds of audio in ``n_bytes`` bytes of this format."""
        return n_bytes * 1000 / self.bytes_per_second

    def __str__(self) -> str:
        return f"{self.encoding}/{self.sample_rate}Hz/{self.channels}ch"


#: What Twilio Media Streams carries both ways: G.711 μ-law, 8 kHz, mono.
MULAW_8K = AudioFormat("mulaw", 8000)
PCM16_8K = AudioFormat("pcm16", 8000)
PCM16_16K = AudioFormat("pcm16", 16000)
PCM16_22K = AudioFormat("pcm16", 22050)
PCM16_24K = AudioFormat("pcm16", 24000)
