"""The ``[turn.smart-turn]`` table: :class:`SmartTurnConfig`, parsed once at start-up.

Parsing it locates the model file (the ``pipecat-ai`` wheel's copy unless ``model_path`` is
set) but loads nothing; importing this module imports neither numpy nor ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from voicehost import ConfigError, Field, TurnConfig, field_validator
from voicehost_smart_turn.weights import resolve_model_path

__all__ = ["PROVIDER_ID", "SmartTurnConfig"]

#: The provider id: ``[turn] provider = "smart-turn"``, table ``[turn.smart-turn]``.
PROVIDER_ID: Final = "smart-turn"


class SmartTurnConfig(TurnConfig):
    """The ``[turn.smart-turn]`` table of ``plugins.toml``.

    Inherited from :class:`voicehost.TurnConfig` (read by the host):

    * ``threshold`` (0-1, default 0.5, Pipecat's): a turn is complete when Smart Turn's
      probability is at least this. Higher holds more finals (fewer cut-ins, slower answers).
    * ``incomplete_timeout_ms`` (200-10 000, default 2000): silence after speech that ends a
      turn the model called incomplete.

    Its own:

    * ``model_path``: ``""`` (default) for Smart Turn v3.2 as shipped in the ``pipecat-ai``
      wheel, or a path to another Smart Turn v3 ``.onnx`` file (same input and output: e.g.
      the unquantised ``smart-turn-v3.2-gpu.onnx`` from the model card).

    Raises (as ``ConfigError`` lines naming ``[turn.smart-turn]``, the key and the value): an
    unknown key, a wrong type, a value out of range, a model file that is missing, not
    ``.onnx``, or (bundled) a ``pipecat-ai`` install without it.
    """

    model_path: str = Field(
        "",
        description='"" for Smart Turn v3.2 from the pipecat-ai wheel, or a path to a Smart '
        "Turn v3 .onnx file.",
        validate_default=True,  # config check finds a pipecat-ai install without the weights
    )

    @field_validator("model_path")
    @classmethod
    def _model_path(cls, value: str) -> str:
        resolve_model_path(value)  # ValueError naming the missing file
        return value

    def model_file(self) -> Path:
        """The ONNX file to load.

        Raises:
            ConfigError: it went missing since the table was parsed.
        """
        try:
            return resolve_model_path(self.model_path)
        except ValueError as exc:
            raise ConfigError(f"[turn.{PROVIDER_ID}] model_path: {exc}") from exc
