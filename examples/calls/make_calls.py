"""Regenerate the caller WAVs in this folder with the offline Piper voice.

Each file is one caller utterance that hits a rule of the scripted responder in the shipped
``plugins.toml``; play them with ``voicehost simulate``::

    uv run python examples/calls/make_calls.py        # rewrites the WAVs beside this script
    uv run voicehost simulate --local examples/calls/hours.wav examples/calls/goodbye.wav

The voice is the ``piper`` TTS provider loaded through the plugin host with its
``[tts.piper]`` defaults (the bundled ``en_US-joe-medium``), exactly as ``simulate --say``
voices a caller; its 22.05 kHz speech is resampled to 8 kHz (soxr ``HQ``) and stored as
16-bit PCM mono WAV, the sound of a phone line, about 16 KB a second. Piper samples noise
while it speaks, so a new run gives files that sound the same but are not byte-identical.
The texts were chosen to be heard right by Whisper ``tiny.en`` (the shipped STT): "Who are
you?" was sometimes heard as "Hey, where are you?", which hits the greeting rule instead.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import soundfile

from voicehost.audio import AudioConverter
from voicehost.config_model import parse_table
from voicehost.contracts import PCM16_8K
from voicehost.plugins import load_plugin_host

HERE = Path(__file__).resolve().parent

#: file name → what the caller says (and the scripted rule it hits).
CALLS: dict[str, str] = {
    "hours.wav": "What are your opening hours?",  # hours → "We are open Monday to Friday…"
    "who.wav": "Who am I talking to?",  # who are you → "I am the voicehost demo assistant…"
    "goodbye.wav": "Okay, that is all. Goodbye.",  # goodbye → "Thanks for calling…", hangs up
}


async def synthesize(texts: list[str]) -> list[np.ndarray]:
    """Each text spoken by the ``piper`` provider, as int16 samples at 8 kHz."""
    host = load_plugin_host()
    provider = host.registry("tts").get("piper")
    if provider is None:
        sys.exit("the piper TTS provider (voicehost-piper-tts) is not installed")
    config = parse_table(provider.config_class, {}, table="tts.piper")
    fmt = provider.output_format(config)
    spoken = []
    for text in texts:
        converter = AudioConverter(fmt, PCM16_8K, quality="HQ")
        pcm = b"".join([converter.convert(c) async for c in provider.synthesize(text, config)])
        pcm += converter.flush(discard_partial=True)
        spoken.append(np.frombuffer(pcm, dtype="<i2"))
    return spoken


def main() -> None:
    spoken = asyncio.run(synthesize(list(CALLS.values())))
    for (name, text), samples in zip(CALLS.items(), spoken, strict=True):
        path = HERE / name
        soundfile.write(str(path), samples, 8000, subtype="PCM_16", format="WAV")
        print(f"{path.name}: {len(samples) / 8000:.2f} s, {path.stat().st_size} bytes: {text!r}")


if __name__ == "__main__":
    main()
