"""The responder contract: what turns a caller's final transcript into the bot's reply.

A *responder provider* is registered once per process through the ``register_responders``
hook (:mod:`voicehost.hookspecs`) and chosen with ``[responder] provider = "<id>"``; its
``[responder.<id>]`` table of ``plugins.toml`` is parsed into its ``config_class``. At
start-up the host calls :meth:`ResponderProvider.create` once with that config; the
:class:`Responder` it returns serves every call of the process, so per-call state lives in the
:class:`CallContext` handed to each method, never on the responder.

Replies are *streamed*: :meth:`Responder.reply` is an async iterator of text pieces, so the TTS
provider can start speaking the first sentence while the rest is still being produced (an LLM
token stream fits as-is). Between the pieces a reply may yield *call actions*
(:data:`Action`), each run by the host, in order, once everything yielded before it has been
spoken:

* :class:`HangUp` (usually :data:`HANG_UP`) ends the call;
* :class:`SendDtmf` presses keys: in-band DTMF tones played into the call (an IVR menu on the
  far end hears them);
* :class:`Transfer` hands the call to another number or SIP URI (the host says
  ``[server] transfer_message``, then Twilio dials the target).

``HangUp`` and ``Transfer`` end the reply: the host reads nothing after them. The host speaks
the text sentence by sentence; when the caller talks over the bot (barge-in), the rest of the
reply, actions included, is dropped, and the bot turn kept in the history (and the call
record) holds only the sentences the caller heard.

A reply may also yield :class:`~voicehost.ToolUse` items: tool calls the responder made
(see :mod:`voicehost.contracts.tools`), recorded and kept in the history in stream order,
never spoken. The host hands the responder every tool plugins registered through
:meth:`Responder.use_tools`.

Key presses of the caller reach :meth:`Responder.dtmf`, one key at a time, and the call's
:attr:`CallContext.history` as ``ConversationTurn("caller", "5", kind="dtmf")``.

A responder plugin, complete (publish the module under the ``voicehost`` entry-point group)::

    from voicehost import HANG_UP, Responder, ResponderProvider, Transfer, hookimpl

    class Echo(Responder):
        async def reply(self, call, transcript):
            yield f"You said: {transcript}."
            if "bye" in transcript.lower():
                yield HANG_UP

        async def dtmf(self, call, digits):    # optional: the caller pressed a key
            if digits == "0":
                yield "Putting you through."
                yield Transfer("+15550003333")

    class EchoProvider(ResponderProvider):
        id = "echo"                       # [responder] provider = "echo"
        def create(self, config):         # config: the parsed [responder.echo] table
            return Echo()

    @hookimpl
    def register_responders(register):
        register(EchoProvider())
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from voicehost.contracts.providers import ConfigT, Provider
from voicehost.contracts.tools import Tool, ToolUse
from voicehost.phone import check_call_target

Role = Literal["caller", "bot"]
#: How a turn was made: ``"speech"`` (said / spoken), ``"dtmf"`` (keys pressed) or ``"tool"``
#: (a tool call of the bot, with its result).
TurnMode = Literal["speech", "dtmf", "tool"]

# The keys of a DTMF string (ITU-T Q.23: 0-9 * # A-D) and ``w``/``W``, a 500 ms pause; the
# same rule as ``voicehost.dtmf.check_dtmf_digits``, kept here so that importing the contracts
# does not import numpy (plugins must stay cheap to import).
_DTMF_DIGITS = re.compile(r"[0-9*#A-DwW]{1,64}")


def _valid_digits(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or _DTMF_DIGITS.fullmatch(value) is None:
        raise ValueError(
            f"DTMF digits must be 1 to 64 of 0-9, *, #, A-D and w (a 500 ms pause), not {value!r}"
        )


def _valid_target(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    check_call_target(value, "transfer target")


@attrs.frozen
class HangUp:
    """Action: end the call after the text before it has been spoken.

    Attributes:
        reason: recorded as the call's end reason (``"bot-hangup"`` unless given).
    """

    reason: str = "bot-hangup"


#: The usual hang-up marker: ``yield HANG_UP`` as the last item of a reply.
HANG_UP = HangUp()


@attrs.frozen
class SendDtmf:
    """Action: press keys, once the text before it has been spoken.

    The host plays the keys into the call as in-band DTMF tones (100 ms tone, 60 ms gap) and
    waits until they have played before it speaks what follows.

    Attributes:
        digits: 1 to 64 of ``0``-``9``, ``*``, ``#``, ``A``-``D``, and ``w`` (or ``W``) for a
            500 ms pause, e.g. ``"1w1234#"``.

    Raises:
        ValueError: at construction, for anything else.
    """

    digits: str = attrs.field(validator=_valid_digits)


@attrs.frozen
class Transfer:
    """Action: hand the call to ``to`` once the text before it has been spoken; ends the reply.

    The host says ``[server] transfer_message`` and has Twilio ``<Dial>`` the target; the
    call's end reason is ``"transferred"``. When the host cannot transfer (no Twilio REST
    credentials) it logs why and the call goes on.

    Attributes:
        to: an E.164 number (``+15550003333``), a ``sip:``/``sips:`` URI or a ``client:``
            identity.

    Raises:
        ValueError: at construction, for anything else.
    """

    to: str = attrs.field(validator=_valid_target)


#: What a responder may ask the host to do with the call, between text pieces.
Action: TypeAlias = HangUp | SendDtmf | Transfer
#: One item of a reply stream: a text piece, an :data:`Action` or a :class:`ToolUse`.
ReplyItem: TypeAlias = str | HangUp | SendDtmf | Transfer | ToolUse


@attrs.frozen
class ConversationTurn:
    """One finished turn of a call's conversation, as responders see it.

    Attributes:
        role: ``"caller"`` (a final transcript, a key press) or ``"bot"`` (a reply, the
            greeting, keys it pressed, a tool call).
        text: what was said (for the bot: the reply text the caller heard: a reply cut off
            by barge-in holds only the sentences that played); for a ``"dtmf"`` turn the keys
            pressed (``"5"``; the bot's may be several, ``"1234#"``); ``""`` for a tool turn.
        kind: ``"speech"`` (the default), ``"dtmf"`` or ``"tool"``.
        tool: the :class:`ToolUse` of a ``"tool"`` turn (see :meth:`for_tool`), else None.
    """

    role: Role
    text: str
    kind: TurnMode = "speech"
    tool: ToolUse | None = None

    @classmethod
    def for_tool(cls, use: ToolUse) -> ConversationTurn:
        """The bot's tool turn for ``use``: ``ConversationTurn("bot", "", "tool", use)``."""
        return cls("bot", "", kind="tool", tool=use)

    def to_json(self) -> dict[str, Any]:
        """The shape the webhook responder posts: ``{"role": ..., "text": ...}``, plus
        ``"dtmf": true`` for a key-press turn (``{"role": "caller", "text": "5", "dtmf":
        true}``); a tool turn is ``{"role": "bot", "text": "", "tool": {"name", "arguments",
        "result", "error"}}``."""
        if self.kind == "dtmf":
            return {"role": self.role, "text": self.text, "dtmf": True}
        if self.kind == "tool" and self.tool is not None:
            return {"role": self.role, "text": self.text, "tool": self.tool.to_json()}
        return {"role": self.role, "text": self.text}


@attrs.define
class CallContext:
    """What a responder knows about one call.

    The conversation handler (:mod:`voicehost.conversation`) makes one per call and appends to
    :attr:`history` after each turn; responders read it and must not mutate it.

    Attributes:
        call_sid: Twilio call SID (``CA…``).
        stream_sid: Twilio Media Stream SID (``MZ…``).
        from_number: the caller's number (E.164, ``+1555…``), empty when unknown.
        to_number: the number that was called, empty when unknown.
        direction: Twilio's ``Direction``: ``"inbound"``, ``"outbound-api"`` (a call voicehost
            placed) …; empty when unknown.
        answered_by: who answered an outbound call placed with machine detection
            (``"human"``, ``"machine_end_beep"``, ``"fax"``, ``"unknown"`` …); else empty.
        history: finished turns, oldest first; the transcript being answered is not in it yet.
            A bot turn holds what the caller heard of it; tool calls are ``kind="tool"``
            turns (:attr:`ConversationTurn.tool`), in the order the responder made them.
        state: a scratch dict a responder may use to keep per-call state between turns.
    """

    call_sid: str
    stream_sid: str = ""
    from_number: str = ""
    to_number: str = ""
    direction: str = ""
    answered_by: str = ""
    history: list[ConversationTurn] = attrs.field(factory=list)
    state: dict[str, Any] = attrs.field(factory=dict)

    def history_json(self) -> list[dict[str, Any]]:
        """:attr:`history` as a list of :meth:`ConversationTurn.to_json` dicts."""
        return [turn.to_json() for turn in self.history]


class Responder(abc.ABC):
    """Produces the bot's side of the conversation for every call of the process."""

    def greeting(self, call: CallContext) -> AsyncIterator[str]:
        """What the bot says when the stream starts, as streamed text. Default: nothing."""
        return _empty()

    @abc.abstractmethod
    def reply(self, call: CallContext, transcript: str) -> AsyncIterator[ReplyItem]:
        """Answer one final transcript of the caller.

        Yields text pieces (any size; the host cuts them into sentences and speaks each as
        soon as it is complete), :data:`Action` items, each run once the text before it has
        been spoken, and :class:`ToolUse` items (recorded, never spoken); a :class:`HangUp` or
        :class:`Transfer` comes at most once and last. A responder should not raise: on its
        own failure it yields an apology (the call goes on); an exception that escapes anyway
        is logged by the host and the turn is skipped. When the caller barges in the host
        closes the stream (``aclose``) at once.
        """

    def dtmf(self, call: CallContext, digits: str) -> AsyncIterator[ReplyItem]:
        """Answer a key press of the caller, like :meth:`reply` answers speech.

        ``digits`` is the key pressed (``"0"``-``"9"``, ``"*"``, ``"#"``, rarely
        ``"A"``-``"D"``); the host calls this once per key, in order, with the earlier keys
        already in ``call.history``. Default: nothing (the key is only recorded).
        """
        return _empty()

    @property
    def preemptive(self) -> bool:
        """True (the default) when :meth:`reply` may be asked on a provisional transcript,
        before the caller's turn is confirmed, and its stream closed unheard if the caller
        goes on (preemptive generation; nothing read ahead is spoken or recorded). Return
        False when ``reply`` acts on the world before its first text: tools with side
        effects, a webhook to someone's server. The host then asks only on the final."""
        return True

    def use_tools(self, tools: Mapping[str, Tool]) -> None:  # noqa: B027 - optional hook
        """Take the tools plugins registered (``register_tools``), by name. The host calls
        this once, right after :meth:`ResponderProvider.create`, before any call (with an
        empty mapping when there are none). Default: the tools are ignored."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release what the responder holds (HTTP sessions …) at shutdown. Idempotent."""


class ResponderProvider(Provider[ConfigT]):
    """A kind of responder, registered through the ``register_responders`` hook.

    Class attributes are :class:`~voicehost.contracts.Provider`'s: ``id`` (chosen with
    ``[responder] provider = "<id>"``), ``label`` and ``config_class`` (the
    ``[responder.<id>]`` table's typed class); so is ``is_configured``.
    """

    @abc.abstractmethod
    def create(self, config: ConfigT) -> Responder:
        """Make the process's responder from its parsed config. It must open nothing
        (HTTP sessions, model loads) until first used: ``voicehost config check`` makes one
        to run its checks and drops it.

        Raises:
            ConfigError: the config cannot be used (a value the config class cannot check).
        """


async def _empty() -> AsyncIterator[str]:
    return
    yield  # pragma: no cover - makes this an async generator


async def collect_reply(stream: AsyncIterator[ReplyItem]) -> tuple[str, HangUp | None]:
    """Drain a reply stream: ``(joined text, the HangUp marker or None)``. For tests and tools;
    :class:`SendDtmf`, :class:`Transfer` and :class:`ToolUse` items are skipped (list the
    stream to see them)."""
    parts: list[str] = []
    hang_up: HangUp | None = None
    async for item in stream:
        if isinstance(item, HangUp):
            hang_up = item
        elif isinstance(item, str):
            parts.append(item)
    return "".join(parts), hang_up


def history_tail(history: Sequence[ConversationTurn], limit: int) -> list[ConversationTurn]:
    """The last ``limit`` turns of ``history`` (all of them when ``limit`` <= 0)."""
    return list(history[-limit:]) if limit > 0 else list(history)
