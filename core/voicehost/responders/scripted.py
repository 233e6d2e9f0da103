"""The ``scripted`` responder: a greeting, ordered regex rules and a fallback, all from config.

Config (``[responder.scripted]`` in ``plugins.toml``, parsed into :class:`ScriptedConfig`)::

    greeting = "Hello, ..."             # spoken when the stream starts; "" for none
    fallback = "Sorry, ..."             # spoken when no rule matches; "" to stay silent
    [[responder.scripted.rules]]
    match = '\\b(bye|goodbye)\\b'       # Python regular expression, searched case-insensitively
    reply = "Goodbye!"                  # what the bot says
    hangup = true                       # optional: end the call after saying it

Rules are tried in order against the caller's final transcript; the first whose ``match`` is
found anywhere in it (``re.search``, ``re.IGNORECASE``) wins. Giving ``rules`` in
``plugins.toml`` replaces the whole default list (tables merge, lists do not).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import attrs
from pydantic import Field, field_validator, model_validator

from voicehost.config_model import ConfigModel, ProviderConfig
from voicehost.contracts import HANG_UP, CallContext, HangUp, Responder, ResponderProvider


@attrs.frozen
class Rule:
    """One compiled rule: when ``pattern`` is found in a transcript, say ``reply``."""

    pattern: re.Pattern[str]
    reply: str
    hangup: bool = False


class ScriptedResponder(Responder):
    """Answers from a fixed script; see the module docstring for the config."""

    def __init__(self, greeting: str, rules: list[Rule], fallback: str) -> None:
        self._greeting = greeting
        self.rules = rules
        self._fallback = fallback

    def match(self, transcript: str) -> Rule | None:
        """The first rule whose pattern is found in ``transcript``, or None."""
        for rule in self.rules:
            if rule.pattern.search(transcript):
                return rule
        return None

    async def greeting(self, call: CallContext) -> AsyncIterator[str]:
        if self._greeting:
            yield self._greeting

    async def reply(self, call: CallContext, transcript: str) -> AsyncIterator[str | HangUp]:
        """The first matching rule's reply (else the fallback), then ``HANG_UP`` when the
        rule says ``hangup = true``."""
        rule = self.match(transcript)
        text = rule.reply if rule else self._fallback
        if text:
            yield text
        if rule and rule.hangup:
            yield HANG_UP


def _default_rules() -> list[dict[str, Any]]:
    return [
        {
            "match": r"\b(bye|goodbye|good bye|that'?s all|that is all)\b",
            "reply": "Thanks for calling. Goodbye!",
            "hangup": True,
        },
        {
            "match": r"\b(hours?|open|opening|close|closing)\b",
            "reply": "We are open Monday to Friday, from nine in the morning to five in the "
            "evening.",
        },
        {
            "match": r"\b(who are you|what are you|your name|who is this|am i talking to)\b",
            "reply": "I am the voicehost demo assistant, a voice bot running entirely on this "
            "machine.",
        },
        {
            "match": r"\b(help|options|what can you do|what can i ask)\b",
            "reply": "You can ask me about our opening hours, or who I am. Say goodbye when "
            "you are done.",
        },
        {
            "match": r"\b(hello|hi|hey)\b",
            "reply": "Hello! How can I help you today?",
        },
    ]


class ScriptedRule(ConfigModel):
    """One ``[[responder.scripted.rules]]`` entry."""

    match: str = Field(
        min_length=1,
        description="Python regular expression, searched case-insensitively in the caller's "
        "final transcript.",
    )
    reply: str = Field("", description="What the bot says when the rule matches.")
    hangup: bool = Field(False, description="End the call after saying the reply.")

    @field_validator("match")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc}): {value!r}") from None
        return value

    @model_validator(mode="after")
    def _says_or_hangs_up(self) -> ScriptedRule:
        if not self.reply and not self.hangup:
            raise ValueError("needs a reply, or hangup = true")
        return self


class ScriptedConfig(ProviderConfig):
    """The ``[responder.scripted]`` table. Giving ``rules`` replaces the whole default list."""

    greeting: str = Field(
        "Hello, you have reached the voicehost demo line. How can I help you?",
        description="Spoken when the stream starts; empty for none.",
    )
    fallback: str = Field(
        "Sorry, I can only tell you our opening hours or who I am. Say goodbye when you are done.",
        description="Spoken when no rule matches; empty to stay silent.",
    )
    rules: list[ScriptedRule] = Field(
        default_factory=lambda: [ScriptedRule.model_validate(r) for r in _default_rules()],
        description="Ordered rules; the first whose match is found answers.",
    )


class ScriptedResponderProvider(ResponderProvider[ScriptedConfig]):
    """Provider of the ``scripted`` responder (the default)."""

    id: ClassVar[str] = "scripted"
    label: ClassVar[str] = "Scripted (greeting, regex rules, fallback)"
    config_class: ClassVar[type[ProviderConfig]] = ScriptedConfig

    def create(self, config: ScriptedConfig) -> ScriptedResponder:
        """The responder for a parsed ``[responder.scripted]`` table."""
        rules = [
            Rule(re.compile(rule.match, re.IGNORECASE), rule.reply, rule.hangup)
            for rule in config.rules
        ]
        return ScriptedResponder(config.greeting, rules, config.fallback)
