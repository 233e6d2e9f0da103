"""The ``scripted`` responder: a greeting, ordered regex rules and a fallback, all from config.

Config blob (``[responder.scripted]`` in ``plugins.toml``)::

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
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import attrs

from voicehost.errors import ConfigError
from voicehost.responders.base import HANG_UP, CallContext, HangUp, Responder, ResponderProvider

_TABLE = "[responder.scripted]"


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


def _compile_rules(raw: object) -> list[Rule]:
    if not isinstance(raw, list):
        raise ConfigError(f"{_TABLE} rules must be a list of tables, got {type(raw).__name__}")
    rules: list[Rule] = []
    for index, entry in enumerate(raw):
        where = f"{_TABLE} rules[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a table with match and reply")
        unknown = set(entry) - {"match", "reply", "hangup"}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s): {', '.join(sorted(unknown))}")
        pattern, reply, hangup = entry.get("match"), entry.get("reply", ""), entry.get("hangup")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{where}.match must be a non-empty regular expression string")
        if not isinstance(reply, str):
            raise ConfigError(f"{where}.reply must be a string")
        if hangup is not None and not isinstance(hangup, bool):
            raise ConfigError(f"{where}.hangup must be true or false")
        if not reply and not hangup:
            raise ConfigError(f"{where} needs a reply, or hangup = true")
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"{where}.match is not a valid regular expression: {exc}") from exc
        rules.append(Rule(compiled, reply, bool(hangup)))
    return rules


def _text(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{_TABLE} {key} must be a string, got {type(value).__name__}")
    return value


class ScriptedResponderProvider(ResponderProvider):
    """Provider of the ``scripted`` responder (the default)."""

    id: ClassVar[str] = "scripted"
    label: ClassVar[str] = "Scripted (greeting, regex rules, fallback)"
    default_config: ClassVar[Mapping[str, Any]] = {
        "greeting": "Hello, you have reached the voicehost demo line. How can I help you?",
        "fallback": "Sorry, I can only tell you our opening hours or who I am. Say goodbye "
        "when you are done.",
        "rules": _default_rules(),
    }

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Raises ConfigError naming the key at fault (bad regex, wrong type, unknown key)."""
        self.create(config)

    def create(self, config: Mapping[str, Any]) -> ScriptedResponder:
        """The responder for a ``[responder.scripted]`` blob.

        Raises:
            ConfigError: as :meth:`validate_config`.
        """
        unknown = set(config) - {"greeting", "fallback", "rules"}
        if unknown:
            raise ConfigError(f"{_TABLE} has unknown key(s): {', '.join(sorted(unknown))}")
        return ScriptedResponder(
            greeting=_text(config, "greeting"),
            rules=_compile_rules(config.get("rules", [])),
            fallback=_text(config, "fallback"),
        )
