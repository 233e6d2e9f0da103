"""Rebuild ``babble.wav`` and ``street.wav`` from the Debian packages named in README.md.

Run once by hand (the tests only read the WAV files this writes)::

    apt-get download codec2-examples openttd-opensfx
    dpkg -x codec2-examples_*.deb /tmp/codec2 && dpkg -x openttd-opensfx_*.deb /tmp/osfx
    .venv/bin/python tests/data/noise/make_noise.py /tmp/codec2 /tmp/osfx

Deterministic: the same inputs give byte-identical files.
"""

from __future__ import annotations

import io
import struct
import sys
import wave
from pathlib import Path

import numpy as np
import soxr

HERE = Path(__file__).resolve().parent
RATE = 8000
#: codec2 speakers mixed into the babble; none of them is in tests/data/human.
BABBLE_SPEAKERS = ("cq_ref", "cross", "g3plx", "kristoff", "vk5qi")
BABBLE_S = 30.0
#: OpenSFX sounds (index in opensfx.cat, start s, end s) joined into the street recording:
#: 27 "Modern bus start" (London bus approaches & leaves), 25 "Truck/old bus start, pull
#: away", 28 "Old bus start", 52 "Wind".
STREET_PARTS = ((27, 0.1, 2.6), (25, 0.1, 3.3), (28, 0.2, 2.5), (52, 0.4, 2.2))
CROSSFADE_S = 0.2
LEVEL_DBFS = -20.0


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * 10 ** ((dbfs - _rms_db(x)) / 20)


def _write(path: Path, x: np.ndarray) -> None:
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def babble(codec2_root: Path) -> np.ndarray:
    """Five codec2 talkers, each looped from a different offset, at equal level, summed."""
    raw = codec2_root / "usr/share/codec2/raw"
    n = int(BABBLE_S * RATE)
    total = np.zeros(n, dtype=np.float64)
    for index, name in enumerate(BABBLE_SPEAKERS):
        x = np.fromfile(raw / f"{name}.raw", dtype="<i2").astype(np.float64) / 32768
        # Loop each talker from its own offset so the talkers do not pause together.
        start = (index * 1931) % len(x)
        looped = np.resize(np.roll(x, -start), n)
        total += _at_level(looped, LEVEL_DBFS)
    return _at_level(total, LEVEL_DBFS)


def street(osfx_root: Path) -> np.ndarray:
    """The OpenSFX vehicle and wind recordings of :data:`STREET_PARTS`, 8 kHz, joined with
    crossfades at equal level."""
    cat = (osfx_root / "usr/share/games/openttd/baseset/opensfx/opensfx.cat").read_bytes()
    fade = int(CROSSFADE_S * RATE)
    ramp = np.linspace(0.0, 1.0, fade)
    out = np.zeros(0)
    for index, start_s, end_s in STREET_PARTS:
        offset, size = struct.unpack("<II", cat[index * 8 : index * 8 + 8])
        offset &= 0x7FFFFFFF
        name_len = cat[offset]
        with wave.open(io.BytesIO(cat[offset + 1 + name_len : offset + size])) as w:
            rate = w.getframerate()
            raw = w.readframes(w.getnframes())
        x = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64) / 32768
        x = soxr.resample(x[int(start_s * rate) : int(end_s * rate)], rate, RATE)
        x = _at_level(x, LEVEL_DBFS)
        if len(out):
            out[-fade:] = out[-fade:] * ramp[::-1] + x[:fade] * ramp
            out = np.concatenate([out, x[fade:]])
        else:
            out = x
    # Make the end crossfade into the start, so the recording loops without a click.
    out[:fade] = out[:fade] * ramp + out[-fade:] * ramp[::-1]
    return out[:-fade]


def main() -> None:
    codec2_root, osfx_root = Path(sys.argv[1]), Path(sys.argv[2])
    _write(HERE / "babble.wav", babble(codec2_root))
    _write(HERE / "street.wav", street(osfx_root))


if __name__ == "__main__":
    main()
