"""A fake end-of-turn detector for tests: scripted answers, every question recorded.

``FakeTurnDetectorProvider`` (id ``fake``; part of
:class:`voicehost.testing.providers.FakeProvidersPlugin`) answers each ``decide`` with the
next of :attr:`~FakeTurnDetectorProvider.answers` (True: complete), complete when they run
out; a probability of 0.9 or 0.1 goes with it. ``fail = True`` makes ``decide`` raise a
:class:`~voicehost.ProviderError`. :attr:`~FakeTurnDetectorProvider.asked` holds the length
(bytes of PCM16 16 kHz) of the audio of each question.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from voicehost.contracts.turns import TurnConfig, TurnDecision, TurnDetector, TurnDetectorProvider
from voicehost.errors import ProviderError

__all__ = ["FakeTurnDetector", "FakeTurnDetectorProvider"]


class FakeTurnDetector(TurnDetector):
    """One call's scripted detector."""

    def __init__(self, provider: FakeTurnDetectorProvider, config: TurnConfig) -> None:
        self.provider = provider
        self.config = config

    async def decide(self, audio: bytes) -> TurnDecision:
        self.provider.asked.append(len(audio))
        await asyncio.sleep(0)  # an answer is never synchronous
        if self.provider.fail:
            raise ProviderError("fake", "the turn model failed")
        complete = self.provider.answers.pop(0) if self.provider.answers else True
        return TurnDecision(complete, 0.9 if complete else 0.1)


class FakeTurnDetectorProvider(TurnDetectorProvider[TurnConfig]):
    """``fake``: scripted answers (see the module docstring)."""

    id: ClassVar[str] = "fake"
    label: ClassVar[str] = "Fake turn detector (tests)"

    def __init__(self) -> None:
        self.answers: list[bool] = []
        self.asked: list[int] = []
        self.fail = False

    def create_detector(self, config: TurnConfig) -> FakeTurnDetector:
        return FakeTurnDetector(self, config)
