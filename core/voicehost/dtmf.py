"""DTMF (touch-tone) keys: generate their audio and detect them in μ-law audio.

Frequencies are ITU-T Q.23's: each key is the sum of one row tone and one column tone.

============  =======  =======  =======  =======
row \\ col    1209 Hz  1336 Hz  1477 Hz  1633 Hz
============  =======  =======  =======  =======
697 Hz        1        2        3        A
770 Hz        4        5        6        B
852 Hz        7        8        9        C
941 Hz        \\*       0        #        D
============  =======  =======  =======  =======

A digit string (:func:`check_dtmf_digits`) is 1–64 of the keys ``0-9 * # A-D``, where ``w`` or
``W`` stands for a 500 ms pause, as in Twilio's ``sendDigits``.

Generation (:func:`dtmf_pcm16`, :func:`dtmf_ulaw`): every key is ``tone_ms`` of its two sines,
each at ``level_dbfs`` (peak, relative to full scale), shaped by 5 ms raised-cosine ramps at
both ends so it does not click, followed by ``gap_ms`` of silence; a ``w`` is ``pause_ms`` of
silence. Durations are rounded to whole samples: a key is exactly
``round(tone_ms * rate / 1000) + round(gap_ms * rate / 1000)`` samples.

Detection (:func:`detect_dtmf`) runs the Goertzel algorithm over 25.6 ms windows (205 samples
at 8 kHz, the classic choice: 39 Hz resolution separates the rows, 73 Hz apart) every 5 ms, at
each of the eight frequencies and 1.5 % either side of it (Q.24 asks receivers to accept
±1.5 %; tones 3 % off are rejected). A window holds a key when the strongest row and column
tones each reach -40 dBFS (peak), dominate the other rows / columns by 8 dB, keep within the
twist limits (the column tone 8 dB weaker to 4 dB stronger than the row tone) and together
carry at least 70 % of the window's energy (speech, noise, single tones and windows only
partly inside a tone fail this). A key is reported once per run of such windows spanning at
least 40 ms (a tone of 30 ms already gives one; 25 ms does not); a run survives dropouts of
up to 20 ms, so keys need gaps of 40 ms or more to be told apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np

from voicehost.audio import (
    FRAME_BYTES,
    SUPPORTED_RATES,
    ULAW_SILENCE,
    ulaw_encode,
    ulaw_to_pcm16_array,
)

__all__ = [
    "DTMF_FREQUENCIES",
    "DTMF_KEYS",
    "MAX_DTMF_DIGITS",
    "PAUSE_CHARS",
    "check_dtmf_digits",
    "detect_dtmf",
    "dtmf_pcm16",
    "dtmf_ulaw",
]

#: The sixteen DTMF keys.
DTMF_KEYS: Final = "0123456789*#ABCD"
#: Characters that stand for a pause (``pause_ms``) in a digit string.
PAUSE_CHARS: Final = "wW"
#: Most characters (keys and pauses) in one digit string.
MAX_DTMF_DIGITS: Final = 64

_ROWS: Final = (697, 770, 852, 941)
_COLS: Final = (1209, 1336, 1477, 1633)
_LAYOUT: Final = ("123A", "456B", "789C", "*0#D")

#: Key → (row Hz, column Hz), ITU-T Q.23.
DTMF_FREQUENCIES: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {key: (_ROWS[r], _COLS[c]) for r, keys in enumerate(_LAYOUT) for c, key in enumerate(keys)}
)

_RAMP_MS: Final = 5.0


def check_dtmf_digits(digits: object) -> str:
    """Validate a digit string: 1–64 characters, each a key of ``0-9 * # A-D`` or a pause
    ``w``/``W``. Returns it unchanged.

    Raises:
        ValueError: not a str, empty, longer than 64, or any other character (lower-case
            ``a``-``d`` included).
    """
    if not isinstance(digits, str):
        raise ValueError(f"DTMF digits must be a str, got {type(digits).__name__}")
    if not digits:
        raise ValueError("DTMF digits must not be empty")
    if len(digits) > MAX_DTMF_DIGITS:
        raise ValueError(f"DTMF digits: {len(digits)} characters, at most {MAX_DTMF_DIGITS}")
    bad = sorted({c for c in digits if c not in DTMF_KEYS and c not in PAUSE_CHARS})
    if bad:
        raise ValueError(
            f"DTMF digits {digits!r}: invalid {''.join(bad)!r}; use 0-9 * # A-D, w = 500 ms pause"
        )
    return digits


def _check_rate(rate: object) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in SUPPORTED_RATES:
        raise ValueError(
            f"unsupported DTMF sample rate {rate!r} Hz; supported: "
            + ", ".join(map(str, SUPPORTED_RATES))
        )


def _samples(ms: object, rate: int, what: str, low: int, high: int) -> int:
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not low <= ms <= high:
        raise ValueError(f"{what} must be a number of ms in {low}..{high}, got {ms!r}")
    return round(ms * rate / 1000)


def dtmf_pcm16(
    digits: str,
    *,
    sample_rate: int = 8000,
    tone_ms: float = 100,
    gap_ms: float = 60,
    pause_ms: float = 500,
    level_dbfs: float = -8.0,
) -> bytes:
    """The audio of a digit string, as PCM16 LE mono.

    Args:
        digits: keys and pauses (:func:`check_dtmf_digits`).
        sample_rate: Hz, one of :data:`voicehost.audio.SUPPORTED_RATES`.
        tone_ms: length of each key's tone, 40–2000 ms (Q.24 receivers need 40).
        gap_ms: silence after each tone, 40–2000 ms.
        pause_ms: silence for each ``w``, 0–10000 ms.
        level_dbfs: peak level of each of the two sines, -60 to -6.03 dBFS (the sum of
            two never clips).

    Returns:
        ``round(tone_ms·rate/1000) + round(gap_ms·rate/1000)`` samples per key and
        ``round(pause_ms·rate/1000)`` per pause, two bytes each.

    Raises:
        ValueError: invalid digits or an argument out of range.
    """
    check_dtmf_digits(digits)
    _check_rate(sample_rate)
    n_tone = _samples(tone_ms, sample_rate, "tone_ms", 40, 2000)
    n_gap = _samples(gap_ms, sample_rate, "gap_ms", 40, 2000)
    n_pause = _samples(pause_ms, sample_rate, "pause_ms", 0, 10_000)
    if (
        isinstance(level_dbfs, bool)
        or not isinstance(level_dbfs, int | float)
        or not -60 <= level_dbfs <= -6.03
    ):
        raise ValueError(f"level_dbfs must be in -60..-6.03, got {level_dbfs!r}")
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    t = np.arange(n_tone) / sample_rate
    n_ramp = min(round(_RAMP_MS * sample_rate / 1000), n_tone // 2)
    envelope = np.ones(n_tone)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_ramp) / n_ramp)
    envelope[:n_ramp] = ramp
    envelope[n_tone - n_ramp :] = ramp[::-1]
    gap = np.zeros(n_gap, dtype="<i2").tobytes()
    pause = np.zeros(n_pause, dtype="<i2").tobytes()
    tones: dict[str, bytes] = {}
    parts: list[bytes] = []
    for key in digits:
        if key in PAUSE_CHARS:
            parts.append(pause)
            continue
        if key not in tones:
            low, high = DTMF_FREQUENCIES[key]
            wave = np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)
            tones[key] = np.rint(amplitude * envelope * wave).astype("<i2").tobytes() + gap
        parts.append(tones[key])
    return b"".join(parts)


def dtmf_ulaw(
    digits: str,
    *,
    tone_ms: float = 100,
    gap_ms: float = 60,
    pause_ms: float = 500,
    level_dbfs: float = -8.0,
) -> bytes:
    """The audio of a digit string as μ-law 8 kHz, ready for a Media Stream: the
    :func:`dtmf_pcm16` samples at 8000 Hz, padded with μ-law silence (0xFF) to a whole
    number of 160-byte (20 ms) frames.

    Raises:
        ValueError: as :func:`dtmf_pcm16`.
    """
    ulaw = ulaw_encode(
        dtmf_pcm16(digits, tone_ms=tone_ms, gap_ms=gap_ms, pause_ms=pause_ms, level_dbfs=level_dbfs)
    )
    return ulaw + bytes([ULAW_SILENCE]) * (-len(ulaw) % FRAME_BYTES)


# --- detection -----------------------------------------------------------------------------

_WINDOW_S: Final = 205 / 8000
_HOP_S: Final = 0.005
_MIN_TONE_S: Final = 0.040
_MAX_DROPOUT_S: Final = 0.020
_MIN_LEVEL: Final = 10 ** (-40 / 20)  # peak amplitude of a tone, relative to full scale
_DOMINANCE: Final = 10 ** (8 / 10)  # power over the second-strongest row / column
_TWIST: Final = (10 ** (-8 / 10), 10 ** (4 / 10))  # column power / row power
_MIN_SHARE: Final = 0.7  # of the window's energy in the two tones
_DEVIATIONS: Final = (0.985, 1.0, 1.015)  # Q.24: accept frequencies off by up to 1.5 %


def _goertzel(windows: np.ndarray, freqs: tuple[int, ...], rate: int) -> np.ndarray:
    """Power of each window near each frequency, shape (windows, freqs): the largest of the
    Goertzel powers at ``f`` and ``f ± 1.5 %``, scaled so that a sine of peak amplitude
    ``a`` filling ``n`` samples gives ``(a * n / 2) ** 2``."""
    coeff = 2 * np.cos(2 * np.pi * np.outer(freqs, _DEVIATIONS).ravel() / rate)
    s1 = np.zeros((windows.shape[0], len(coeff)))
    s2 = np.zeros_like(s1)
    for column in windows.T:  # the Goertzel recurrence, all windows and frequencies at once
        s1, s2 = column[:, None] + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return power.reshape(len(windows), len(freqs), len(_DEVIATIONS)).max(axis=2)


def _window_keys(samples: np.ndarray, rate: int, n: int, hop: int) -> list[str | None]:
    """The key each window of ``n`` samples, every ``hop`` samples, holds, or None."""
    if len(samples) < n:
        return []
    windows = np.lib.stride_tricks.sliding_window_view(samples, n)[::hop]
    rows = _goertzel(windows, _ROWS, rate)
    cols = _goertzel(windows, _COLS, rate)
    r, c = rows.argmax(axis=1), cols.argmax(axis=1)
    rows.sort(axis=1)
    cols.sort(axis=1)
    pr, pc = rows[:, -1], cols[:, -1]
    ok = (
        (np.minimum(pr, pc) >= (_MIN_LEVEL * n / 2) ** 2)
        & (pr >= _DOMINANCE * rows[:, -2])
        & (pc >= _DOMINANCE * cols[:, -2])
        & (pc >= _TWIST[0] * pr)
        & (pc <= _TWIST[1] * pr)
        & ((pr + pc) * 2 / n >= _MIN_SHARE * np.einsum("ij,ij->i", windows, windows))
    )
    return [_LAYOUT[i][j] if good else None for i, j, good in zip(r, c, ok, strict=True)]


def detect_dtmf(ulaw: bytes | bytearray | memoryview, *, sample_rate: int = 8000) -> str:
    """The DTMF keys heard in μ-law audio, in order, each tone reported once.

    A key needs about 30 ms of tone (40 ms always suffices) and 40 ms of gap before the
    next; silence, noise, speech and single tones give nothing (the checks are in the
    module docstring).

    Args:
        ulaw: G.711 μ-law mono audio of any length.
        sample_rate: its rate in Hz, one of :data:`voicehost.audio.SUPPORTED_RATES`.

    Raises:
        ValueError: ``ulaw`` is not bytes-like, or an unsupported rate.
    """
    _check_rate(sample_rate)
    samples = ulaw_to_pcm16_array(ulaw) / 32768.0
    n = round(_WINDOW_S * sample_rate)
    hop = round(_HOP_S * sample_rate)
    min_windows = 1 + max(0, math.ceil((_MIN_TONE_S * sample_rate - n) / hop))
    max_dropout = round(_MAX_DROPOUT_S * sample_rate / hop)
    heard: list[str] = []
    run_key: str | None = None  # the key of the current run of windows
    run_len = missed = 0  # windows in the run; windows without a key since its last one
    for key in _window_keys(samples, sample_rate, n, hop):
        if key is not None and key == run_key:
            run_len, missed = run_len + 1, 0
        elif key is None and run_key is not None and missed < max_dropout:
            missed += 1
        else:
            if run_key is not None and run_len >= min_windows:
                heard.append(run_key)
            run_key, run_len, missed = key, 1, 0
    if run_key is not None and run_len >= min_windows:
        heard.append(run_key)
    return "".join(heard)
