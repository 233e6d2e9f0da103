"""Smart Turn v3's input: Whisper-style log-mel features of the last 8 s of speech.

The numbers follow Pipecat 1.14.0 exactly:

* ``pipecat/audio/turn/smart_turn/base_smart_turn.py`` (``_process_speech_segment``): PCM16
  → float32 ``/ 32768``, the last ``max_duration_secs`` (8 s) kept;
* ``pipecat/audio/turn/smart_turn/local_smart_turn_v3.py`` (``_predict_endpoint``): audio
  shorter than 8 s is zero-padded **at the beginning** (the speech ends at the window's end),
  longer is cut to its last 8 s;
* ``pipecat/audio/turn/smart_turn/_whisper_features.py``
  (``compute_whisper_log_mel_features``, itself vendored from Hugging Face's
  ``WhisperFeatureExtractor(chunk_length=8)``): zero-mean unit-variance normalisation of the
  waveform, a centred (reflect-padded) 400-point periodic-Hann STFT with a 160-sample hop,
  |·|² power, 80 Slaney mel filters over 0-8 kHz with Slaney area normalisation, ``log10``
  with a 1e-10 floor, the last frame dropped, dynamic range clamped to 8 (log10 units) below
  the maximum, then ``(x + 4) / 4``.

This module re-expresses that with numpy (it imports no Pipecat); ``tests/turn`` checks it
against Pipecat's own function on real speech (max abs difference below 1e-4).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "FRAMES",
    "MEL_BINS",
    "SAMPLE_RATE",
    "WINDOW_SAMPLES",
    "log_mel_features",
    "pcm16_to_float",
    "window_last",
]

#: The model's input rate, Hz.
SAMPLE_RATE: Final = 16_000
#: The model's window: 8 s at 16 kHz.
WINDOW_SAMPLES: Final = 8 * SAMPLE_RATE
#: Mel bands (rows of the feature matrix).
MEL_BINS: Final = 80
#: STFT frames in the window (columns of the feature matrix): 128 000 / 160 = 800.
FRAMES: Final = WINDOW_SAMPLES // 160

_N_FFT: Final = 400
_HOP: Final = 160
_MEL_FLOOR: Final = 1e-10
_NORM_EPS: Final = 1e-7


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = 3.0 * hz / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = 200.0 * mel / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


def _mel_filterbank() -> np.ndarray:
    """Triangular Slaney-normalised filters, shape ``(MEL_BINS, 201)`` (mel × FFT bin)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE // 2, _N_FFT // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), MEL_BINS + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz - lower) / (centre - lower)
    falling = (upper - fft_hz) / (upper - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (upper - lower))  # equal area per filter


_WINDOW: Final = np.hanning(_N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window
_FILTERS: Final = _mel_filterbank()


def pcm16_to_float(audio: bytes) -> np.ndarray:
    """PCM16 little-endian mono bytes → float32 samples in [-1, 1) (``/ 32768``, as Pipecat).

    Raises:
        ValueError: an odd number of bytes.
    """
    if len(audio) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, not {len(audio)}")
    return np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0


def window_last(samples: np.ndarray) -> np.ndarray:
    """The model's 8 s window ending at the latest sample: the last ``WINDOW_SAMPLES`` of
    ``samples``, or all of them after leading zeros.

    Args:
        samples: float mono audio at 16 kHz, shape ``(n,)``.

    Returns:
        float32, shape ``(WINDOW_SAMPLES,)``.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size >= WINDOW_SAMPLES:
        return samples[-WINDOW_SAMPLES:]
    return np.concatenate([np.zeros(WINDOW_SAMPLES - samples.size, np.float32), samples])


def log_mel_features(window: np.ndarray) -> np.ndarray:
    """Whisper log-mel features of one 8 s window, normalised as Smart Turn v3 was trained.

    Args:
        window: float mono audio at 16 kHz, shape ``(WINDOW_SAMPLES,)`` (see
            :func:`window_last`).

    Returns:
        float32, shape ``(MEL_BINS, FRAMES)`` = ``(80, 800)``, roughly in [-1, 1.5].

    Raises:
        ValueError: ``window`` is not 1-D with ``WINDOW_SAMPLES`` samples.
    """
    x = np.asarray(window, dtype=np.float32)
    if x.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples, got shape {x.shape}")
    x = (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)  # in float32, as the reference
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = sliding_window_view(padded, _N_FFT)[::_HOP]  # (801, 400)
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2  # (801, 201)
    log_mel = np.log10(np.maximum(_MEL_FLOOR, _FILTERS @ power.T))[:, :-1]  # (80, 800)
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)
