"""The ``scripted`` responder: a greeting, ordered rules and a fallback, all from config.

Config (``[responder.scripted]`` in ``plugins.toml``, parsed into :class:`ScriptedConfig`)::

    greeting = "Hello, ..."             # spoken when the stream starts; "" for none
    fallback = "Sorry, ..."             # spoken when no rule matches speech; "" for silence
    dtmf_fallback = ""                  # spoken when keys match no rule; "" for silence
    [[responder.scripted.rules]]
    match = '\\b(bye|goodbye)\\b'       # Python regular expression, searched case-insensitively
    reply = "Goodbye!"                  # what the bot says
    hangup = true                       # optional: end the call after saying it
    [[responder.scripted.rules]]
    dtmf = "0"                          # the keys the caller pressed (0-9 * # A-D)
    reply = "Putting you through."
    transfer = "+15550003333"           # optional: then hand the call to this number / sip: URI
    [[responder.scripted.rules]]
    match = '\\bmenu\\b'
    send_dtmf = "1w2#"                  # optional: then press these keys (w: a 500 ms pause)

A rule has a ``match``, a ``dtmf`` or both, and does one or more of: say ``reply``, press
``send_dtmf``, then ``transfer`` the call or ``hangup`` (not both), in that order.

Rules are tried in order against the caller's final transcript; the first whose ``match`` is
found anywhere in it (``re.search``, ``re.IGNORECASE``) wins. Key presses are collected per
call: the first rule whose ``dtmf`` equals the keys pressed so far wins; while the keys are
the beginning of some rule's ``dtmf`` (``"12"`` of ``"123#"``) the bot waits for more; else
``dtmf_fallback`` is spoken and collecting starts over, as it does after a rule matched or the
caller spoke. Giving ``rules`` in ``plugins.toml`` replaces the whole default list (tables
merge, lists do not).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import attrs
from pydantic import Field, field_validator, model_validator

from voicehost.config_model import ConfigModel, ProviderConfig
from voicehost.contracts import (
    HANG_UP,
    CallContext,
    ReplyItem,
    Responder,
    ResponderProvider,
    SendDtmf,
    Transfer,
)
from voicehost.phone import check_call_target

# The keys pressed so far that are the beginning of some rule's ``dtmf``, in ``call.state``.
_KEYS_STATE = "voicehost.scripted.keys"
_KEYS = re.compile(r"[0-9*#A-D]{1,64}")


@attrs.frozen
class Rule:
    """One compiled rule: when ``pattern`` is found in a transcript, or the keys pressed
    equal ``dtmf``, say ``reply``, press ``send_dtmf``, then transfer to ``transfer`` or hang
    up (``hangup``). Empty strings and a None pattern mean "not given"."""

    pattern: re.Pattern[str] | None
    reply: str
    hangup: bool = False
    dtmf: str = ""
    send_dtmf: str = ""
    transfer: str = ""

    def items(self) -> list[ReplyItem]:
        """The reply stream's items: the text, then the actions, in that order."""
        items: list[ReplyItem] = [self.reply] if self.reply else []
        if self.send_dtmf:
            items.append(SendDtmf(self.send_dtmf))
        if self.transfer:
            items.append(Transfer(self.transfer))
        elif self.hangup:
            items.append(HANG_UP)
        return items


class ScriptedResponder(Responder):
    """Answers from a fixed script; see the module docstring for the config."""

    def __init__(
        self, greeting: str, rules: list[Rule], fallback: str, dtmf_fallback: str = ""
    ) -> None:
        self._greeting = greeting
        self.rules = rules
        self._fallback = fallback
        self._dtmf_fallback = dtmf_fallback

    def match(self, transcript: str) -> Rule | None:
        """The first rule whose pattern is found in ``transcript``, or None."""
        for rule in self.rules:
            if rule.pattern is not None and rule.pattern.search(transcript):
                return rule
        return None

    def match_keys(self, keys: str) -> Rule | None:
        """The first rule whose ``dtmf`` is exactly ``keys``, or None."""
        return next((rule for rule in self.rules if rule.dtmf and rule.dtmf == keys), None)

    async def greeting(self, call: CallContext) -> AsyncIterator[str]:
        if self._greeting:
            yield self._greeting

    async def reply(self, call: CallContext, transcript: str) -> AsyncIterator[ReplyItem]:
        """The first matching rule's items (:meth:`Rule.items`), else the fallback. Keys
        pressed before are forgotten."""
        call.state.pop(_KEYS_STATE, None)
        rule = self.match(transcript)
        if rule is None:
            if self._fallback:
                yield self._fallback
            return
        for item in rule.items():
            yield item

    async def dtmf(self, call: CallContext, digits: str) -> AsyncIterator[ReplyItem]:
        """Add ``digits`` to the keys pressed so far: the items of the first rule whose
        ``dtmf`` they equal; nothing while they begin some rule's ``dtmf``; else the
        ``dtmf_fallback``."""
        keys = call.state.pop(_KEYS_STATE, "") + digits
        rule = self.match_keys(keys)
        if rule is not None:
            for item in rule.items():
                yield item
        elif any(r.dtmf.startswith(keys) for r in self.rules if r.dtmf):
            call.state[_KEYS_STATE] = keys  # wait for the rest
        elif self._dtmf_fallback:
            yield self._dtmf_fallback


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
    """One ``[[responder.scripted.rules]]`` entry: a ``match`` and/or a ``dtmf``, and at
    least one of ``reply``, ``send_dtmf``, ``transfer``, ``hangup``."""

    match: str | None = Field(
        None,
        min_length=1,
        description="Python regular expression, searched case-insensitively in the caller's "
        "final transcript.",
    )
    dtmf: str | None = Field(
        None,
        description='The keys the caller pressed (0-9, *, #, A-D; e.g. "1" or "123#").',
    )
    reply: str = Field("", description="What the bot says when the rule matches.")
    send_dtmf: str = Field(
        "",
        description="Keys the bot presses after the reply (0-9, *, #, A-D; w: a 500 ms pause).",
    )
    transfer: str = Field(
        "",
        description="Hand the call to this E.164 number or sip: URI after the reply.",
    )
    hangup: bool = Field(False, description="End the call after saying the reply.")

    @field_validator("match")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc}): {value!r}") from None
        return value

    @field_validator("dtmf")
    @classmethod
    def _valid_keys(cls, value: str | None) -> str | None:
        if value is not None and _KEYS.fullmatch(value) is None:
            raise ValueError(f"must be 1 to 64 keys of 0-9, *, #, A-D, not {value!r}")
        return value

    @field_validator("send_dtmf")
    @classmethod
    def _valid_digits(cls, value: str) -> str:
        if value:
            SendDtmf(value)  # ValueError with the rule
        return value

    @field_validator("transfer")
    @classmethod
    def _valid_target(cls, value: str) -> str:
        return check_call_target(value, "transfer target") if value else value

    @model_validator(mode="after")
    def _matches_and_acts(self) -> ScriptedRule:
        if self.match is None and self.dtmf is None:
            raise ValueError("needs a match (a regular expression) or a dtmf (keys)")
        if not (self.reply or self.send_dtmf or self.transfer or self.hangup):
            raise ValueError("needs a reply, a send_dtmf, a transfer or hangup = true")
        if self.transfer and self.hangup:
            raise ValueError("has both transfer and hangup = true: a transfer ends the call")
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
    dtmf_fallback: str = Field(
        "",
        description="Spoken when the keys pressed match no rule's dtmf; empty to stay silent.",
    )
    rules: list[ScriptedRule] = Field(
        default_factory=lambda: [ScriptedRule.model_validate(r) for r in _default_rules()],
        description="Ordered rules; the first whose match is found answers.",
    )


class ScriptedResponderProvider(ResponderProvider[ScriptedConfig]):
    """Provider of the ``scripted`` responder (the default)."""

    id: ClassVar[str] = "scripted"
    label: ClassVar[str] = "Scripted (greeting, regex and key rules, fallback)"
    config_class: ClassVar[type[ProviderConfig]] = ScriptedConfig

    def create(self, config: ScriptedConfig) -> ScriptedResponder:
        """The responder for a parsed ``[responder.scripted]`` table."""
        rules = [
            Rule(
                re.compile(rule.match, re.IGNORECASE) if rule.match is not None else None,
                rule.reply,
                rule.hangup,
                dtmf=rule.dtmf or "",
                send_dtmf=rule.send_dtmf,
                transfer=rule.transfer,
            )
            for rule in config.rules
        ]
        return ScriptedResponder(config.greeting, rules, config.fallback, config.dtmf_fallback)
