"""End-of-turn detection: has the caller finished their turn, or only paused?

A :class:`TurnDetectorProvider` (Pipecat's Smart Turn, LiveKit's turn detector) is
registered through the ``register_turn_detectors`` hook and chosen with
``[turn] provider = "<id>"``; its ``[turn.<id>]`` table is parsed into its ``config_class``,
a subclass of :class:`TurnConfig`.

The host serves every STT provider with it. The STT's endpointing (a short pause: Whisper's
``min_silence_ms``, a vendor's own) produces a final transcript; the host then asks the
call's :class:`TurnDetector` about the caller's audio up to now:

* **complete** → the final ends the caller's turn and is answered at once;
* **incomplete** (a pause at a comma, an "um") → the final is held; when the caller goes on,
  the next final is joined to it and the detector asked again; when they stay silent for
  ``incomplete_timeout_ms`` after their speech ended, the held text is answered anyway.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs
from pydantic import Field

from voicehost.config_model import ProviderConfig
from voicehost.contracts.formats import PCM16_16K, AudioFormat
from voicehost.contracts.providers import ConfigT, Provider

__all__ = ["TurnConfig", "TurnDecision", "TurnDetector", "TurnDetectorProvider"]


class TurnConfig(ProviderConfig):
    """What every ``[turn.<id>]`` table has; a provider's ``config_class`` subclasses it.
    The host reads these fields."""

    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="A turn is complete when its probability is at least this."
    )
    incomplete_timeout_ms: int = Field(
        2000,
        ge=200,
        le=10_000,
        description="Silence after speech that ends a turn the detector called incomplete, ms.",
    )


@attrs.frozen
class TurnDecision:
    """The detector's answer.

    Attributes:
        complete: the caller finished their turn (``probability >= threshold``).
        probability: how sure it is that the turn is complete, 0-1.
    """

    complete: bool
    probability: float


class TurnDetector(abc.ABC):
    """One call's end-of-turn detector (it may keep state between questions)."""

    @abc.abstractmethod
    async def decide(self, audio: bytes) -> TurnDecision:
        """Is the turn that ends with ``audio`` complete?

        Args:
            audio: the caller's speech up to now, in the provider's ``input_format``
                (PCM16 16 kHz mono by default), at most ``max_audio_s`` of it, the latest
                last. It is resampled from the call's μ-law 8 kHz (phone audio must be
                resampled, not fed at 8 kHz: pipecat#3844).

        Must not block the event loop (run the model in a thread).

        Raises:
            ProviderError: the model failed; the host then treats the turn as complete.
        """

    async def aclose(self) -> None:
        """Release per-call resources. The default does nothing."""
        return None


class TurnDetectorProvider(Provider[ConfigT]):
    """An end-of-turn detector provider.

    Class attributes (besides :class:`~voicehost.Provider`'s ``id``, ``label``,
    ``config_class``, which must subclass :class:`TurnConfig`):
        input_format: the audio ``decide`` takes (PCM16 16 kHz by default).
        max_audio_s: the most audio ``decide`` gets (the model's window), s.
    """

    config_class: ClassVar[type[ProviderConfig]] = TurnConfig
    input_format: ClassVar[AudioFormat] = PCM16_16K
    max_audio_s: ClassVar[float] = 8.0

    @abc.abstractmethod
    def create_detector(self, config: ConfigT) -> TurnDetector:
        """Make one call's detector (cheap: a loaded model is shared by calls; load it in
        ``preload``)."""
