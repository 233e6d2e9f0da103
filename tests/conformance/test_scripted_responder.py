"""The conformance kit against the built-in ``scripted`` responder (default rules)."""

from __future__ import annotations

from typing import Any, ClassVar

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


class TestScriptedResponderKeys(TestScriptedResponder):
    """A script with key rules: ``1`` presses keys, ``0`` transfers, ``9`` hangs up; the keys
    are answered with reply items."""

    config_table: ClassVar[dict[str, Any]] = {
        "rules": [
            {"match": r"\bhours\b", "reply": "Nine to five."},
            {"match": r"\bbye\b", "reply": "Goodbye.", "hangup": True},
            {"dtmf": "1", "reply": "Pressing.", "send_dtmf": "1w2#"},
            {"dtmf": "0", "reply": "Transferring.", "transfer": "+15550003333"},
            {"dtmf": "9", "hangup": True},
        ],
    }
    transcript = "what are your hours"
    hangup_transcript = "bye"
    dtmf_keys = "109"
