"""Speech-to-speech conversation providers: the caller's audio goes to one model and its
spoken answer comes back, replacing the STT → responder → TTS pipeline.

A :class:`ConversationProvider` (the seed's ``OpenAIRealtimeConversationProvider``; LiveKit's
``RealtimeModel``) is registered through the ``register_conversation_providers`` hook and
chosen with ``[conversation] provider = "<id>"``; its ``[conversation.<id>]`` table is parsed
into its ``config_class``, a subclass of :class:`ConversationConfig`.

Per call the host asks for a :class:`ConversationSession` (one vendor connection) and

* feeds it every inbound 20 ms frame (:meth:`ConversationSession.send_audio`; μ-law 8 kHz
  passes through untouched when the provider's ``input_formats`` take it);
* reads its :meth:`~ConversationSession.events`: :class:`AudioOut` chunks (framed, paced
  and marked by the host's playback), :class:`CallerSpeechStarted` (barge-in: the host sends
  Twilio ``clear`` and calls :meth:`~ConversationSession.truncate` with what was played),
  transcripts of both sides, :class:`ResponseDone`, :class:`ToolCall` and
  :class:`ConversationError`;
* runs every tool call itself (``hangup``, ``send_dtmf``, ``transfer`` and the tools
  registered through ``register_tools``) and answers with
  :meth:`~ConversationSession.send_tool_result`;
* when the vendor drops, makes a new session whose :attr:`ConversationRequest.context`
  holds the conversation so far (``greet=False``) and replays the caller audio it buffered.

The provider declares the tools it is given (:attr:`ConversationRequest.tools`) to its model;
it never runs them.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, TypeAlias

import attrs
from pydantic import Field, field_validator

from voicehost.config_model import ConfigModel, ProviderConfig
from voicehost.contracts.formats import MULAW_8K, AudioFormat
from voicehost.contracts.providers import ConfigT, Provider
from voicehost.contracts.responders import CallContext
from voicehost.errors import ProviderError
from voicehost.phone import is_call_target

__all__ = [
    "CALL_TOOLS",
    "AudioOut",
    "BotTranscript",
    "CallerSpeechStarted",
    "CallerSpeechStopped",
    "CallerTranscript",
    "ConversationConfig",
    "ConversationError",
    "ConversationEvent",
    "ConversationProvider",
    "ConversationRequest",
    "ConversationSession",
    "ConversationTransferTarget",
    "ResponseDone",
    "SessionExpiring",
    "ToolCall",
    "ToolSpec",
]

#: The tools the host wires to call actions: ``hangup(reason)``, ``send_dtmf(digits)``,
#: ``transfer(to)``.
CALL_TOOLS: tuple[str, ...] = ("hangup", "send_dtmf", "transfer")


class ConversationTransferTarget(ConfigModel):
    """One person or queue the ``transfer`` tool may hand the call to."""

    name: str = Field(description="What the model calls it (e.g. sales); unique.")
    number: str = Field(description="E.164 number (+15550003333) or sip:/client: target.")
    description: str = Field("", description="When to transfer there, for the model.")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("number")
    @classmethod
    def _target(cls, value: str) -> str:
        if not is_call_target(value):
            raise ValueError("must be an E.164 number (+15550003333), a sip: URI or client: id")
        return value


class ConversationConfig(ProviderConfig):
    """What every ``[conversation.<id>]`` table has; a provider's ``config_class``
    subclasses it and adds its vendor's keys. The host reads these fields."""

    instructions: str = Field(
        "You are a helpful voice assistant on a phone call. Be concise.",
        description="System instructions; the host prefixes today's date (and, with "
        "send_dtmf offered, phone-menu guidance).",
    )
    greeting: str = Field(
        "", description="Line the model says first when the call connects; empty: it waits."
    )
    tools: list[str] = Field(
        default_factory=lambda: ["hangup", "send_dtmf"],
        description="Tools offered to the model: hangup, send_dtmf, transfer, and the names "
        "of tools plugins registered (register_tools).",
    )
    transfer_targets: list[ConversationTransferTarget] = Field(
        default_factory=list,
        description="Where the transfer tool may send the call ({name, number, description}).",
    )
    tool_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Bound of one registered tool's run, s."
    )
    max_session_s: float = Field(
        3600.0,
        gt=60,
        description="The vendor's longest session, s: 30 s before it the model is asked to "
        "say goodbye and the call ends (reason max-duration).",
    )
    reconnect_attempts: int = Field(
        4, ge=0, le=20, description="New connections tried after the vendor drops."
    )
    apology: str = Field(
        "Sorry, we are having technical difficulties. Please call again later.",
        description="Said with <Say> when the vendor cannot be reached again; the call ends.",
    )


@attrs.frozen
class ToolSpec:
    """A tool as the model sees it.

    Attributes:
        name: the function name (1-64 of ``A-Z a-z 0-9 _ -``).
        description: what it does and when to call it.
        parameters: its arguments' JSON schema (an ``"object"`` schema).
    """

    name: str
    description: str
    parameters: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}``."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


@attrs.frozen
class ConversationRequest:
    """Everything a provider needs to open one call's session.

    Attributes:
        config: the provider's parsed config (its ``config_class``).
        context: the call (ids, numbers) and, for a session that replaces a dropped one,
            the conversation so far in ``context.history`` (caller and bot turns, oldest
            first) to restore.
        instructions: the system instructions to use: ``config.instructions`` with what the
            host adds (the date, phone-menu guidance).
        tools: the tools to declare to the model, in order.
        greet: speak ``config.greeting`` first (False on a restored session).
        input_format: what :meth:`ConversationSession.send_audio` gets; one of the
            provider's ``input_formats``.
    """

    config: ConversationConfig
    context: CallContext
    instructions: str = ""
    tools: tuple[ToolSpec, ...] = ()
    greet: bool = True
    input_format: AudioFormat = MULAW_8K


# --- events ---------------------------------------------------------------------------------


@attrs.frozen
class AudioOut:
    """A chunk of the bot's speech (any length), in ``provider.output_format(config)``.

    Attributes:
        audio: the bytes.
        item_id: the vendor's id of the spoken item (what :meth:`ConversationSession.truncate`
            takes).
        response_id: the vendor's id of the response it belongs to.
    """

    audio: bytes
    item_id: str
    response_id: str = ""


@attrs.frozen
class CallerSpeechStarted:
    """The vendor heard the caller start speaking (the host barges in)."""


@attrs.frozen
class CallerSpeechStopped:
    """The vendor heard the caller stop speaking (its turn detection decides the end)."""


@attrs.frozen
class CallerTranscript:
    """What the caller said in one turn (final).

    Attributes:
        text: the transcript.
        item_id: the vendor's id of the caller's item.
    """

    text: str
    item_id: str = ""


@attrs.frozen
class BotTranscript:
    """What the bot said in one spoken item (the whole item's transcript, even when the
    caller cut it off; the host knows how much played).

    Attributes:
        text: the transcript.
        item_id: the spoken item's id (as in :class:`AudioOut`).
        response_id: the response's id.
    """

    text: str
    item_id: str = ""
    response_id: str = ""


@attrs.frozen
class ResponseDone:
    """A response finished: all of its audio and tool calls were sent.

    Attributes:
        response_id: the vendor's id.
        status: ``completed``, ``cancelled`` (barge-in), ``failed`` or ``incomplete``.
    """

    response_id: str = ""
    status: str = "completed"


@attrs.frozen
class ToolCall:
    """The model called a tool; the host runs it and answers with
    :meth:`ConversationSession.send_tool_result` (same ``call_id``).

    Attributes:
        call_id: the vendor's id of the call.
        name: the tool's name.
        arguments: the JSON text of its arguments, as the model sent it.
    """

    call_id: str
    name: str
    arguments: str = "{}"


@attrs.frozen
class SessionExpiring:
    """The vendor's session is about to reach its length limit (or reached it): the host
    ends the call after what is playing."""


@attrs.frozen
class ConversationError:
    """A vendor error the session survives (a bad event, a failed transcription); the
    session goes on. Errors that end the session are raised by ``events()`` instead.

    Attributes:
        error: the error, with the vendor's ``code``.
    """

    error: ProviderError


#: What :meth:`ConversationSession.events` yields.
ConversationEvent: TypeAlias = (
    AudioOut
    | CallerSpeechStarted
    | CallerSpeechStopped
    | CallerTranscript
    | BotTranscript
    | ResponseDone
    | ToolCall
    | SessionExpiring
    | ConversationError
)


class ConversationSession(abc.ABC):
    """One call's connection to a speech-to-speech model.

    The host calls :meth:`connect` once, reads :meth:`events` until it ends, feeds
    :meth:`send_audio` meanwhile, and calls :meth:`close` exactly once (also after a drop).
    """

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the vendor connection and configure it (checking the vendor's
        acknowledgement, not only what was sent); restore ``request.context.history``;
        ask for the greeting when ``request.greet`` and a greeting is configured.

        Raises:
            ProviderAuthError: the vendor rejected the credentials (never retried).
            ProviderError: any other failure, including a configuration the vendor did not
                apply as asked.
        """

    @abc.abstractmethod
    def send_audio(self, audio: bytes) -> None:
        """Queue one chunk of caller audio (``request.input_format``). Never blocks and never
        raises; audio sent after the connection dropped is discarded (the host buffers)."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[ConversationEvent]:
        """The session's events, in the vendor's order. Ends when :meth:`close` is called.

        Raises (while iterating):
            ProviderError: the vendor dropped the connection or ended the session with an
                error; the host may open a new session.
        """

    @abc.abstractmethod
    async def send_tool_result(self, call_id: str, output: str, *, respond: bool) -> None:
        """Give the model the result of tool call ``call_id`` (JSON text); with ``respond``
        ask it to go on speaking (a lookup's answer); without, it waits for the caller
        (``hangup``, ``send_dtmf``)."""

    @abc.abstractmethod
    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Barge-in: the caller heard item ``item_id`` only up to ``audio_end_ms`` (ms from
        its start); the vendor drops the rest from the conversation (OpenAI
        ``conversation.item.truncate``)."""

    @abc.abstractmethod
    async def say(self, instructions: str) -> None:
        """Ask the model to speak now, following ``instructions`` (e.g. to say goodbye)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the vendor connection; :meth:`events` then ends. Idempotent."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """True while the vendor connection is open and configured."""


class ConversationProvider(Provider[ConfigT]):
    """A speech-to-speech conversation provider.

    Class attributes (besides :class:`~voicehost.Provider`'s ``id``, ``label``,
    ``config_class``, which must subclass :class:`ConversationConfig`):
        input_formats: formats ``send_audio`` accepts, preferred first; μ-law 8 kHz among
            them lets Twilio's bytes through untouched.
        output_formats: formats :class:`AudioOut` may carry.
    """

    config_class: ClassVar[type[ProviderConfig]] = ConversationConfig
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)

    def output_format(self, config: ConfigT) -> AudioFormat:
        """The format of :class:`AudioOut` for ``config``. Default: the first declared."""
        return self.output_formats[0]

    @abc.abstractmethod
    def create_session(self, request: ConversationRequest) -> ConversationSession:
        """Make (not yet connect) one call's session."""
