"""Telephony audio: G.711 μ-law, streaming resampling and 20 ms framing.

Everything here works on raw mono audio, no container or header:

* **μ-law** — ITU-T G.711 μ-law, one byte a sample, 8 kHz on the phone network. What Twilio
  Media Streams carries both ways, in 20 ms frames of 160 bytes (:data:`FRAME_BYTES`).
* **PCM16** — signed 16-bit little-endian linear PCM, two bytes a sample, at 8000, 16000,
  22050 or 24000 Hz (:data:`SUPPORTED_RATES`); what STT providers take and TTS providers give.

The μ-law codec uses two numpy lookup tables (65 536 entries to encode, 256 to decode). It is
bit-exact with CPython's ``audioop.lin2ulaw`` / ``audioop.ulaw2lin`` (removed in Python 3.13,
PEP 594), which implement the Sun Microsystems ``g711.c`` reference of ITU-T G.711: the 14-bit
magnitude path with BIAS 0x21 and CLIP 8159 (the 16-bit "BIAS 0x84 / CLIP 32635" formulation
differs by one step for 381 negative inputs; both are valid G.711). Decoding has no such
variants: ``0x80`` → +32124, ``0x00`` → −32124, ``0xFF`` and ``0x7F`` → 0.

Resampling is libsoxr's (https://sourceforge.net/projects/soxr/, through the ``soxr`` Python
binding) streaming resampler, which keeps its filter state across chunks, so a stream cut into
arbitrary chunks resamples exactly as it would in one piece.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import soxr

from voicehost.contracts import MULAW_8K, AudioFormat

__all__ = [
    "DEFAULT_QUALITY",
    "FRAME_BYTES",
    "FRAME_MS",
    "QUALITIES",
    "SUPPORTED_RATES",
    "TWILIO_FORMAT",
    "ULAW_SILENCE",
    "AudioConverter",
    "Framer",
    "StreamResampler",
    "pcm16_array",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_pcm16_array",
]

#: μ-law byte for silence (decodes to 0). ``0x7F`` ("negative zero") also decodes to 0.
ULAW_SILENCE: Final = 0xFF
#: Duration of one Twilio Media Streams frame, in ms.
FRAME_MS: Final = 20
#: Bytes in one 20 ms μ-law 8 kHz frame: 160 samples of one byte.
FRAME_BYTES: Final = 160
#: The format Twilio Media Streams carries both ways: μ-law, 8000 Hz, mono.
TWILIO_FORMAT: Final = MULAW_8K
#: Sample rates, in Hz, that :class:`StreamResampler` and :class:`AudioConverter` accept.
SUPPORTED_RATES: Final = (8000, 16000, 22050, 24000)
#: soxr recipes a :class:`StreamResampler` accepts, fastest/lowest latency first.
QUALITIES: Final = ("QQ", "LQ", "MQ", "HQ", "VHQ")
#: Default soxr quality, chosen for latency. In 20 ms chunks "LQ" holds back ~11–32 ms on
#: average (at most 20–61 ms, depending on the rate pair) against ~21–64 ms (at most 36–118 ms)
#: for "MQ"/"HQ". Its price is a wider transition band: going 24 kHz → 8 kHz it is flat to
#: 3 kHz (−0.3 dB) but −8 dB at 3.4 kHz, where "MQ"/"HQ" are flat to 3.6 kHz; all three reject
#: aliases by ≥ 80 dB. "QQ" has no latency and no anti-alias filter (a 5 kHz tone folds to
#: 3 kHz at full level going 24 kHz → 8 kHz). Pass ``quality="HQ"`` where the top of the
#: telephone band matters more than ~30 ms. Measured with soxr 1.1.0 (``bench/audio.py``).
DEFAULT_QUALITY: Final = "LQ"


# --- G.711 μ-law lookup tables -------------------------------------------------------------


def _build_decode_table() -> np.ndarray:
    """256 int16 values: ``table[code]`` is the linear PCM16 value of μ-law byte ``code``."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF  # the wire inverts every bit
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _build_encode_table() -> np.ndarray:
    """65 536 uint8 codes: ``table[s & 0xFFFF]`` is the μ-law byte of int16 sample ``s``.

    Sun ``g711.c`` ``linear2ulaw`` on the 14-bit magnitude (``s >> 2``, arithmetic shift),
    as CPython's ``audioop.lin2ulaw``.
    """
    samples = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)
    x = samples.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    x = np.minimum(np.abs(x), 8159) + 0x21  # CLIP, then BIAS
    seg_end = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_end, x)  # first segment whose end is >= x; 8 = beyond the last
    code = np.where(
        seg >= 8, 0x7F, (seg << 4) | ((x >> (np.minimum(seg, 7) + 1)) & 0x0F)
    )  # g711.c: out of range -> the largest magnitude code, 0x7F before the sign mask
    return (code ^ mask).astype(np.uint8)


_ULAW_TO_PCM16: Final = _build_decode_table()
_PCM16_TO_ULAW: Final = _build_encode_table()
_ULAW_TO_PCM16.flags.writeable = False
_PCM16_TO_ULAW.flags.writeable = False


def _as_buffer(data: object, what: str) -> memoryview:
    if isinstance(data, bytes | bytearray | memoryview):
        return memoryview(data).cast("B")
    raise ValueError(
        f"{what} must be bytes-like (bytes, bytearray, memoryview), got {type(data).__name__}"
    )


def pcm16_array(pcm16: bytes | bytearray | memoryview) -> np.ndarray:
    """View PCM16 LE bytes as an int16 array of samples (no copy; read-only over ``bytes``).

    Raises:
        ValueError: not bytes-like, or an odd number of bytes (half a sample).
    """
    buf = _as_buffer(pcm16, "PCM16 audio")
    if len(buf) % 2:
        raise ValueError(
            f"PCM16 audio must be a whole number of 2-byte samples, got {len(buf)} bytes"
        )
    return np.frombuffer(buf, dtype="<i2")


def ulaw_to_pcm16_array(ulaw: bytes | bytearray | memoryview) -> np.ndarray:
    """Decode G.711 μ-law bytes (one a sample) to an int16 array of the same length.

    Raises:
        ValueError: ``ulaw`` is not bytes-like.
    """
    codes = np.frombuffer(_as_buffer(ulaw, "μ-law audio"), dtype=np.uint8)
    return _ULAW_TO_PCM16[codes]


def ulaw_decode(ulaw: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 μ-law bytes to PCM16 LE bytes (twice as long), same sample rate.

    Bit-exact with ``audioop.ulaw2lin(ulaw, 2)``.

    Raises:
        ValueError: ``ulaw`` is not bytes-like.
    """
    return ulaw_to_pcm16_array(ulaw).astype("<i2", copy=False).tobytes()


def ulaw_encode(pcm16: bytes | bytearray | memoryview | np.ndarray) -> bytes:
    """Encode PCM16 to G.711 μ-law, one byte a sample, same sample rate.

    Args:
        pcm16: PCM16 LE bytes (an even number of them), or an int16 numpy array of samples
            (any shape is flattened in C order; any byte order).

    Returns:
        ``len(samples)`` μ-law bytes, bit-exact with ``audioop.lin2ulaw(pcm16, 2)``.

    Raises:
        ValueError: odd byte length, an array that is not int16, or another type.
    """
    if isinstance(pcm16, np.ndarray):
        if pcm16.dtype.kind != "i" or pcm16.dtype.itemsize != 2:
            raise ValueError(f"PCM16 samples must be an int16 array, got dtype {pcm16.dtype}")
        samples = pcm16.astype(np.int16, copy=False).ravel()
    else:
        samples = pcm16_array(pcm16)
    return _PCM16_TO_ULAW[samples.view(np.uint16)].tobytes()


# --- resampling ----------------------------------------------------------------------------


def _check_rate(rate: object, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in SUPPORTED_RATES:
        raise ValueError(
            f"unsupported {what} sample rate {rate!r} Hz; supported: "
            + ", ".join(str(r) for r in SUPPORTED_RATES)
        )
    return rate


_FROM_PCM16: Final = np.float32(1 / 32768)


def _float_to_pcm16(samples: np.ndarray) -> bytes:
    """Round float samples in [-1, 1) to PCM16 LE bytes, clipping filter overshoot."""
    return np.clip(np.rint(samples * 32768), -32768, 32767).astype("<i2").tobytes()


class StreamResampler:
    """Stateful resampler for a stream of mono PCM16 LE audio (libsoxr ``ResampleStream``).

    Feed chunks of any length to :meth:`process`; an odd trailing byte is carried over to the
    next call (never dropped or padded), and the filter state spans chunks, so the output does
    not depend on how the input was cut. Call :meth:`flush` at the end of the stream for the
    filter's tail; the resampler is then ready for a new stream. When ``in_rate == out_rate``
    audio passes through unchanged (only whole samples are returned).

    soxr runs in float32 (samples scaled by 1/32768) and the result is rounded and clipped to
    int16 here: soxr's own int16 output varies by up to ±2 LSB with the chunk boundaries
    (measured, soxr 1.1.0), whereas the float path is bit-identical however the stream is cut.

    Args:
        in_rate: input sample rate in Hz, one of :data:`SUPPORTED_RATES`.
        out_rate: output sample rate in Hz, one of :data:`SUPPORTED_RATES`.
        quality: soxr recipe, one of :data:`QUALITIES`; :data:`DEFAULT_QUALITY` ("LQ") trades
            a little passband width for the low latency a phone call needs.

    Raises:
        ValueError: an unsupported rate or quality.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = DEFAULT_QUALITY) -> None:
        self.in_rate = _check_rate(in_rate, "input")
        self.out_rate = _check_rate(out_rate, "output")
        if quality not in QUALITIES:
            raise ValueError(
                f"unknown soxr quality {quality!r}; choose one of {', '.join(QUALITIES)}"
            )
        self.quality = quality
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )
        self._carry = b""

    @property
    def passthrough(self) -> bool:
        """True when input and output rates are equal and audio is passed through unchanged."""
        return self._stream is None

    @property
    def pending_bytes(self) -> int:
        """Bytes held back from the last :meth:`process` call (0 or 1: half a sample)."""
        return len(self._carry)

    def process(self, pcm16: bytes | bytearray | memoryview) -> bytes:
        """Resample one chunk of PCM16 LE at ``in_rate``; returns PCM16 LE at ``out_rate``.

        The output may be shorter than the chunk's share (the filter buffers a few ms) or
        empty; the rest comes with later chunks and :meth:`flush`.

        Raises:
            ValueError: ``pcm16`` is not bytes-like.
        """
        data = self._carry + bytes(_as_buffer(pcm16, "PCM16 audio"))
        whole = len(data) & ~1
        self._carry = data[whole:]
        if self._stream is None:
            return data[:whole]
        if not whole:
            return b""
        samples = np.frombuffer(data, dtype="<i2", count=whole // 2)
        return _float_to_pcm16(self._stream.resample_chunk(samples * _FROM_PCM16))

    def flush(self, *, discard_partial: bool = False) -> bytes:
        """End the stream: return the filter's remaining output and reset for a new stream.

        Args:
            discard_partial: drop a pending half sample instead of raising.

        Raises:
            ValueError: the stream ended in the middle of a sample (an odd total byte count)
                and ``discard_partial`` is false; nothing is lost and the state is unchanged,
                so the caller may still supply the missing byte.
        """
        if self._carry and not discard_partial:
            raise ValueError(
                "PCM16 stream ended mid-sample: 1 byte pending (odd total length); "
                "send the missing byte or call flush(discard_partial=True)"
            )
        self._carry = b""
        if self._stream is None:
            return b""
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._stream.clear()
        return _float_to_pcm16(out)

    def reset(self) -> None:
        """Drop all buffered audio (e.g. on barge-in) and start a new stream."""
        self._carry = b""
        if self._stream is not None:
            self._stream.clear()


# --- framing -------------------------------------------------------------------------------


class Framer:
    """Cuts a byte stream into fixed-size frames, carrying the remainder between pushes.

    The default, 160 bytes, is one 20 ms Twilio Media Streams frame of μ-law 8 kHz.

    Args:
        frame_bytes: frame size in bytes (> 0).
        pad_byte: the byte :meth:`flush` pads a final partial frame with; μ-law silence
            (:data:`ULAW_SILENCE`, 0xFF) by default, use 0 for PCM.

    Raises:
        ValueError: ``frame_bytes`` not a positive int or ``pad_byte`` not in 0–255.
    """

    def __init__(self, frame_bytes: int = FRAME_BYTES, pad_byte: int = ULAW_SILENCE) -> None:
        if isinstance(frame_bytes, bool) or not isinstance(frame_bytes, int) or frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be a positive int, got {frame_bytes!r}")
        if isinstance(pad_byte, bool) or not isinstance(pad_byte, int) or not 0 <= pad_byte <= 255:
            raise ValueError(f"pad_byte must be an int in 0..255, got {pad_byte!r}")
        self.frame_bytes = frame_bytes
        self.pad_byte = pad_byte
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes held back, waiting for a full frame (always < ``frame_bytes``)."""
        return len(self._buffer)

    def push(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Add a chunk; return every full frame now available, in order (maybe none).

        Raises:
            ValueError: ``chunk`` is not bytes-like.
        """
        self._buffer += _as_buffer(chunk, "audio chunk")
        n = len(self._buffer) - len(self._buffer) % self.frame_bytes
        if not n:
            return []
        view = bytes(self._buffer[:n])
        del self._buffer[:n]
        size = self.frame_bytes
        return [view[i : i + size] for i in range(0, n, size)]

    def flush(self, pad: bool = False) -> bytes | None:
        """End the stream: return the final partial frame, or None if nothing is pending.

        Args:
            pad: fill the partial frame up to ``frame_bytes`` with ``pad_byte`` (silence).
                Padding only ever happens here, at the end of a stream.
        """
        if not self._buffer:
            return None
        tail = bytes(self._buffer)
        self._buffer.clear()
        if pad:
            tail += bytes([self.pad_byte]) * (self.frame_bytes - len(tail))
        return tail

    def reset(self) -> None:
        """Drop the pending partial frame (e.g. on barge-in)."""
        self._buffer.clear()


# --- format conversion ---------------------------------------------------------------------


def _check_format(fmt: object, what: str) -> AudioFormat:
    if not isinstance(fmt, AudioFormat):
        raise ValueError(f"{what} format must be an AudioFormat, got {type(fmt).__name__}")
    if fmt.encoding not in ("mulaw", "pcm16"):
        raise ValueError(f"unsupported {what} encoding {fmt.encoding!r}; supported: mulaw, pcm16")
    if fmt.channels != 1:
        raise ValueError(
            f"unsupported {what} channel count {fmt.channels}; only mono (1) is supported"
        )
    _check_rate(fmt.sample_rate, what)
    return fmt


class AudioConverter:
    """Streaming conversion between raw mono formats: μ-law or PCM16 at any supported rate.

    Used by the call server inbound (μ-law 8 kHz from Twilio → the STT provider's input
    format) and outbound (the TTS provider's output format → μ-law 8 kHz). The pipeline is
    μ-law decode (G.711) → soxr resample (:class:`StreamResampler`) → μ-law encode, each step
    only when needed; with ``src == dst`` chunks pass through untouched. State (the resampler's
    filter, a carried odd PCM16 byte) spans chunks, so how the stream is cut does not matter.

    Args:
        src: format of the chunks given to :meth:`convert`.
        dst: format of the bytes returned.
        quality: soxr quality for rate changes (see :data:`DEFAULT_QUALITY`).

    Raises:
        ValueError: a format that is not an :class:`AudioFormat`, not mono, or has an
            unsupported encoding or rate.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat, quality: str = DEFAULT_QUALITY) -> None:
        self.src = _check_format(src, "source")
        self.dst = _check_format(dst, "destination")
        self._passthrough = src == dst
        self._resampler = StreamResampler(src.sample_rate, dst.sample_rate, quality)

    @property
    def passthrough(self) -> bool:
        """True when source and destination formats are equal and chunks pass unchanged."""
        return self._passthrough

    def _finish(self, pcm16: bytes) -> bytes:
        return ulaw_encode(pcm16) if self.dst.encoding == "mulaw" else pcm16

    def convert(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Convert one chunk of ``src`` audio; returns ``dst`` audio (possibly empty).

        Raises:
            ValueError: ``chunk`` is not bytes-like.
        """
        buf = _as_buffer(chunk, "audio chunk")
        if self._passthrough:
            return bytes(buf)
        pcm16 = ulaw_decode(buf) if self.src.encoding == "mulaw" else buf
        return self._finish(self._resampler.process(pcm16))

    def flush(self, *, discard_partial: bool = False) -> bytes:
        """End the stream: return the remaining ``dst`` audio and reset for a new stream.

        Raises:
            ValueError: a PCM16 source ended mid-sample (see :meth:`StreamResampler.flush`).
        """
        if self._passthrough:
            return b""
        return self._finish(self._resampler.flush(discard_partial=discard_partial))

    def reset(self) -> None:
        """Drop all buffered audio (e.g. on barge-in) and start a new stream."""
        self._resampler.reset()
