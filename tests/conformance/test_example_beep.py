"""The conformance kit against the example third-party plugin's ``beep`` TTS
(examples/voicehost-example-tts; its directory is on ``sys.path``, see conftest.py).
:class:`TestBeep` is the README's "Test it with the conformance kit" example, as written."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from voicehost.testing.conformance import SpeechConformance
from voicehost_example_tts import BeepSpeechProvider


class TestBeep(SpeechConformance):
    config_table: ClassVar[dict[str, Any]] = {"tone_hz": 440}
    expected_seconds = (1.9, 2.1)  # SpeechConformance.text: 10 words of 120 + 80 ms

    @pytest.fixture
    def provider(self):
        return BeepSpeechProvider()

    # No failing_config: beep has no vendor and cannot fail (that test is skipped).


class TestBeepShortWords(TestBeep):
    """Other timings: one beep of 100 + 50 ms per word."""

    config_table: ClassVar[dict[str, Any]] = {"tone_hz": 3000, "beep_ms": 100, "gap_ms": 50}
    expected_seconds = (1.4, 1.6)
