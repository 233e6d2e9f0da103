"""The conformance kit against the offline ``piper`` TTS plugin (the bundled
``en_US-joe-medium`` voice, PCM16 22 050 Hz, one chunk a sentence). Slow: it loads the
voice."""

from __future__ import annotations

import pytest

from voicehost.testing.conformance import SpeechConformance
from voicehost_piper_tts import PiperProvider

pytestmark = pytest.mark.slow


class TestPiperTTS(SpeechConformance):
    expected_seconds = (1.5, 8.0)  # SpeechConformance.text: two short sentences

    @pytest.fixture
    def provider(self) -> PiperProvider:
        return PiperProvider()

    # No failing_config: Piper has no vendor to fail. Its voice files are checked when the
    # table is parsed and the voice is loaded by preload() at start-up (an unloadable voice
    # is a ConfigError then, by design).
