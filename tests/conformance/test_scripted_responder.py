"""The conformance kit against the built-in ``scripted`` responder (default rules)."""

from __future__ import annotations

import pytest

from voicehost.responders.scripted import ScriptedResponderProvider
from voicehost.testing.conformance import ResponderConformance


class TestScriptedResponder(ResponderConformance):
    transcript = "what are your opening hours"
    hangup_transcript = "thanks, goodbye"

    @pytest.fixture
    def provider(self) -> ScriptedResponderProvider:
        return ScriptedResponderProvider()


class TestScriptedResponderFallback(TestScriptedResponder):
    """No rule matches: the fallback is the reply."""

    transcript = "can I speak to the manager"
