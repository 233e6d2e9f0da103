"""The responder contract: what turns a caller's final transcript into the bot's reply.

A *responder provider* is registered once per process through the ``register_responders``
hook (:mod:`voicehost.hookspecs`) and chosen with ``[responder] provider = "<id>"``; its
``[responder.<id>]`` table of ``plugins.toml`` is parsed into its ``config_class``. At
start-up the host calls :meth:`ResponderProvider.create` once with that config; the
:class:`Responder` it returns serves every call of the process, so per-call state lives in the
:class:`CallContext` handed to each method, never on the responder.

Replies are *streamed*: :meth:`Responder.reply` is an async iterator of text pieces, so the TTS
provider can start speaking the first sentence while the rest is still being produced (an LLM
token stream fits as-is). Yielding the :data:`HANG_UP` marker asks the host to end the call once
everything yielded before it has been spoken.

A responder plugin, complete (publish the module under the ``voicehost`` entry-point group)::

    from voicehost import HANG_UP, Responder, ResponderProvider, hookimpl

    class Echo(Responder):
        async def reply(self, call, transcript):
            yield f"You said: {transcript}."
            if "bye" in transcript.lower():
                yield HANG_UP

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
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import attrs

from voicehost.contracts.providers import ConfigT, Provider

Role = Literal["caller", "bot"]


@attrs.frozen
class HangUp:
    """Marker a responder yields to end the call after the text before it has been spoken.

    Attributes:
        reason: recorded as the call's end reason (``"responder_hangup"`` unless given).
    """

    reason: str = "responder_hangup"


#: The usual hang-up marker: ``yield HANG_UP`` as the last item of a reply.
HANG_UP = HangUp()


@attrs.frozen
class ConversationTurn:
    """One finished turn of a call's conversation, as responders see it.

    Attributes:
        role: ``"caller"`` (a final transcript) or ``"bot"`` (a reply or the greeting).
        text: what was said (for the bot: the reply text it produced).
    """

    role: Role
    text: str

    def to_json(self) -> dict[str, str]:
        """``{"role": ..., "text": ...}``, the shape the webhook responder posts."""
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
        history: finished turns, oldest first; the transcript being answered is not in it yet.
        state: a scratch dict a responder may use to keep per-call state between turns.
    """

    call_sid: str
    stream_sid: str = ""
    from_number: str = ""
    to_number: str = ""
    history: list[ConversationTurn] = attrs.field(factory=list)
    state: dict[str, Any] = attrs.field(factory=dict)

    def history_json(self) -> list[dict[str, str]]:
        """:attr:`history` as a list of ``{"role", "text"}`` dicts."""
        return [turn.to_json() for turn in self.history]


class Responder(abc.ABC):
    """Produces the bot's side of the conversation for every call of the process."""

    def greeting(self, call: CallContext) -> AsyncIterator[str]:
        """What the bot says when the stream starts, as streamed text. Default: nothing."""
        return _empty()

    @abc.abstractmethod
    def reply(self, call: CallContext, transcript: str) -> AsyncIterator[str | HangUp]:
        """Answer one final transcript of the caller.

        Yields text pieces (any size; the host cuts them into sentences for TTS) and, at most
        once and last, a :class:`HangUp` marker to end the call after speaking. A responder
        should not raise: on its own failure it yields an apology (the call goes on); an
        exception that escapes anyway is logged by the host and the turn is skipped.
        """

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
        """Make the process's responder from its parsed config.

        Raises:
            ConfigError: the config cannot be used (a value the config class cannot check).
        """


async def _empty() -> AsyncIterator[str]:
    return
    yield  # pragma: no cover - makes this an async generator


async def collect_reply(stream: AsyncIterator[str | HangUp]) -> tuple[str, HangUp | None]:
    """Drain a reply stream: ``(joined text, the HangUp marker or None)``. For tests and tools."""
    parts: list[str] = []
    hang_up: HangUp | None = None
    async for item in stream:
        if isinstance(item, HangUp):
            hang_up = item
        else:
            parts.append(item)
    return "".join(parts), hang_up


def history_tail(history: Sequence[ConversationTurn], limit: int) -> list[ConversationTurn]:
    """The last ``limit`` turns of ``history`` (all of them when ``limit`` <= 0)."""
    return list(history[-limit:]) if limit > 0 else list(history)
