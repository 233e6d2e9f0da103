"""DTMF: Q.23 tone generation (sample-exact durations) and the Goertzel detector (every key
round-trips; silence, noise, speech-like sound and single tones give nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from voicehost.audio import ulaw_encode
from voicehost.dtmf import (
    DTMF_FREQUENCIES,
    DTMF_KEYS,
    check_dtmf_digits,
    detect_dtmf,
    dtmf_pcm16,
    dtmf_ulaw,
)


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int32)


def two_tone(low: float, high: float, ms: float, *, level: float = 0.3, pad_ms: int = 100):
    """μ-law: ``pad_ms`` silence, ``ms`` of two sines at ``level`` each, ``pad_ms`` silence."""
    t = np.arange(round(ms * 8)) / 8000
    wave = level * 32767 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    pad = np.zeros(pad_ms * 8)
    return ulaw_encode(np.concatenate([pad, wave, pad]).astype(np.int16))


def test_frequencies_are_itu_q23():
    assert set(DTMF_FREQUENCIES) == set(DTMF_KEYS) and len(DTMF_KEYS) == 16
    assert {row for row, _ in DTMF_FREQUENCIES.values()} == {697, 770, 852, 941}
    assert {col for _, col in DTMF_FREQUENCIES.values()} == {1209, 1336, 1477, 1633}
    assert DTMF_FREQUENCIES["1"] == (697, 1209)
    assert DTMF_FREQUENCIES["5"] == (770, 1336)
    assert DTMF_FREQUENCIES["9"] == (852, 1477)
    assert DTMF_FREQUENCIES["*"] == (941, 1209)
    assert DTMF_FREQUENCIES["0"] == (941, 1336)
    assert DTMF_FREQUENCIES["#"] == (941, 1477)
    assert DTMF_FREQUENCIES["A"] == (697, 1633)
    assert DTMF_FREQUENCIES["D"] == (941, 1633)
    assert len(set(DTMF_FREQUENCIES.values())) == 16


@pytest.mark.parametrize("key", list(DTMF_KEYS))
def test_every_key_round_trips_alone(key):
    assert detect_dtmf(dtmf_ulaw(key)) == key


def test_all_keys_in_a_row_round_trip_with_nothing_extra():
    assert detect_dtmf(dtmf_ulaw(DTMF_KEYS)) == DTMF_KEYS
    assert detect_dtmf(dtmf_ulaw("1111#00*")) == "1111#00*"  # repeats each reported once
    # the shortest tones and gaps Q.24 allows still separate repeated keys
    assert detect_dtmf(dtmf_ulaw("99AA11", tone_ms=40, gap_ms=40)) == "99AA11"


@pytest.mark.parametrize("rate", [16000, 22050, 24000])
def test_other_sample_rates_round_trip(rate):
    pcm = samples(dtmf_pcm16(DTMF_KEYS, sample_rate=rate)).astype(np.int16)
    assert detect_dtmf(ulaw_encode(pcm), sample_rate=rate) == DTMF_KEYS


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000])
def test_tone_and_gap_durations_are_exact_sample_counts(rate):
    n_tone, n_gap = round(0.1 * rate), round(0.06 * rate)
    pcm = samples(dtmf_pcm16("5", sample_rate=rate))
    assert len(pcm) == n_tone + n_gap
    assert not pcm[n_tone:].any()  # the gap is silence
    assert np.abs(pcm[n_tone // 10 : n_tone - n_tone // 10]).max() > 8000  # the tone is loud
    custom = samples(dtmf_pcm16("12", sample_rate=rate, tone_ms=40, gap_ms=45))
    assert len(custom) == 2 * (round(0.04 * rate) + round(0.045 * rate))


def test_w_is_a_pause_of_silence():
    key, pause = 800 + 480, 4000  # 100 ms + 60 ms; 500 ms at 8 kHz
    pcm = samples(dtmf_pcm16("1w2W3"))
    assert len(pcm) == 3 * key + 2 * pause
    assert not pcm[key : key + pause].any()
    assert len(samples(dtmf_pcm16("1w", pause_ms=250))) == key + 2000
    assert len(samples(dtmf_pcm16("ww"))) == 2 * pause
    assert detect_dtmf(dtmf_ulaw("1w1W1")) == "111"


def test_tones_are_two_equal_sines_at_the_level_with_ramps():
    pcm = samples(dtmf_pcm16("9", level_dbfs=-8.0))[:800]
    spectrum = np.abs(np.fft.rfft(pcm[40:760] * np.hanning(720)))
    freqs = np.fft.rfftfreq(720, 1 / 8000)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert peaks[0] == pytest.approx(852, abs=12) and peaks[1] == pytest.approx(1477, abs=12)
    top = np.sort(spectrum)[-2:]
    assert top[0] / top[1] > 0.9  # equal levels
    amplitude = 32767 * 10 ** (-8 / 20)
    assert 1.8 * amplitude < np.abs(pcm).max() <= 2 * amplitude + 1
    # raised-cosine ramps: starts and ends at zero, no click
    assert pcm[0] == 0 and abs(pcm[-1]) < 0.02 * amplitude
    assert np.abs(np.diff(pcm[:10])).max() < 0.1 * amplitude


def test_ulaw_is_the_pcm_encoded_and_padded_to_whole_frames():
    for digits in ("1", "12", "1w#", DTMF_KEYS):
        ulaw = dtmf_ulaw(digits)
        body = ulaw_encode(dtmf_pcm16(digits))
        assert len(ulaw) % 160 == 0 and len(ulaw) - len(body) < 160
        assert ulaw[: len(body)] == body
        assert set(ulaw[len(body) :]) <= {0xFF}
    assert len(dtmf_ulaw("1")) == 1280  # 1280 samples: already whole frames, no padding


def test_silence_noise_and_single_tones_give_nothing():
    rng = np.random.default_rng(7)
    t = np.arange(8000) / 8000
    assert detect_dtmf(b"\xff" * 8000) == ""
    assert detect_dtmf(b"") == ""
    assert detect_dtmf(b"\xff" * 100) == ""  # shorter than one window
    noise = rng.normal(0, 4000, 16000).clip(-32768, 32767).astype(np.int16)
    assert detect_dtmf(ulaw_encode(noise)) == ""
    for f in (1000, 697, 941, 1209, 1633):  # a 1 kHz tone, and single DTMF tones
        assert detect_dtmf(ulaw_encode((12000 * np.sin(2 * np.pi * f * t)).astype(np.int16))) == ""
    for f0 in range(80, 320, 20):  # voiced-speech-like: harmonics of a pitch, falling 1/k
        wave = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 3400 // f0))
        assert detect_dtmf(ulaw_encode((wave / np.abs(wave).max() * 20000).astype(np.int16))) == ""


def test_tone_length_needed():
    assert detect_dtmf(two_tone(770, 1336, 40)) == "5"
    assert detect_dtmf(two_tone(770, 1336, 20)) == ""


def test_frequency_tolerance_and_twist():
    for dev in (-0.015, 0.015):  # Q.24: accept ±1.5 %
        assert detect_dtmf(two_tone(852 * (1 + dev), 1477 * (1 + dev), 200)) == "9"
    for dev in (-0.035, 0.035):  # ... reject ±3.5 %
        assert detect_dtmf(two_tone(852 * (1 + dev), 1477 * (1 + dev), 200)) == ""
    t = np.arange(1600) / 8000

    def twisted(db: float) -> bytes:
        wave = 0.3 * (np.sin(2 * np.pi * 941 * t) + 10 ** (db / 20) * np.sin(2 * np.pi * 1477 * t))
        return ulaw_encode((wave * 32767).astype(np.int16))

    assert [detect_dtmf(twisted(db)) for db in (-12, -6, 0, 3, 7)] == ["", "#", "#", "#", ""]


def test_quiet_tones():
    assert detect_dtmf(dtmf_ulaw("159#", level_dbfs=-30)) == "159#"
    assert detect_dtmf(dtmf_ulaw("159#", level_dbfs=-55)) == ""


@pytest.mark.parametrize(
    "bad", ["", "12x", "a", "1 2", "1-2", "é", "0" * 65, None, 123, b"12", ["1"]]
)
def test_invalid_digits_raise(bad):
    with pytest.raises(ValueError, match="DTMF digits"):
        check_dtmf_digits(bad)
    with pytest.raises(ValueError, match="DTMF digits"):
        dtmf_pcm16(bad)
    with pytest.raises(ValueError, match="DTMF digits"):
        dtmf_ulaw(bad)


def test_valid_digits_are_returned_unchanged():
    for good in ("1", "0123456789*#ABCD", "1w2W3", "w", "9" * 64):
        assert check_dtmf_digits(good) == good


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tone_ms": 39}, "tone_ms"),
        ({"tone_ms": 2001}, "tone_ms"),
        ({"gap_ms": 0}, "gap_ms"),
        ({"pause_ms": -1}, "pause_ms"),
        ({"tone_ms": True}, "tone_ms"),
        ({"level_dbfs": -3.0}, "level_dbfs"),
        ({"level_dbfs": -61}, "level_dbfs"),
        ({"sample_rate": 44100}, "sample rate"),
        ({"sample_rate": 8000.0}, "sample rate"),
    ],
)
def test_out_of_range_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dtmf_pcm16("1", **kwargs)


def test_detector_rejects_bad_input():
    with pytest.raises(ValueError, match="bytes-like"):
        detect_dtmf("1234")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample rate"):
        detect_dtmf(b"\xff" * 800, sample_rate=11025)
    assert detect_dtmf(bytearray(dtmf_ulaw("7"))) == "7"
    assert detect_dtmf(memoryview(dtmf_ulaw("7"))) == "7"
