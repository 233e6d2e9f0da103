"""The ``openai`` responder: each caller turn answered by an OpenAI-compatible chat model,
streamed, with call tools.

Per turn (:meth:`OpenAIResponder.reply` for speech, :meth:`~OpenAIResponder.dtmf` for a key
press, read as ``[pressed 1]``): the system prompt (:func:`.prompt.system_prompt`), the last
``history_limit`` turns of the call (:func:`.prompt.history_messages`) and the caller's turn
go to ``POST {base_url}/chat/completions`` with ``stream: true``; text deltas are yielded as
they arrive (the host cuts them into sentences for TTS, so the first sentence is heard before
the completion ends). When the model calls tools (:mod:`.tools`), each call is run and
yielded as a :class:`voicehost.ToolUse` (with its :class:`~voicehost.SendDtmf`,
:class:`~voicehost.Transfer` or :data:`~voicehost.HANG_UP`), the results go back to the
model and it continues — at most ``max_tool_rounds`` completions a turn (the last one may
not call tools). ``hangup`` and ``transfer`` end the reply.

Nothing raises into the call:

* a refused key (401/403) is logged once at ERROR, naming the provider, the server and
  ``[responder.openai] api_key``; counted in :attr:`OpenAIResponder.auth_failures`; the
  turn speaks ``apology``;
* a timeout, an unreachable server, a 408/409/429/5xx or a stream that breaks before the
  first token is retried once after a jittered pause (0.2 – 0.6 s), then the apology;
* any other failure before the first text speaks the apology; a stream that breaks after
  some text keeps that text (no apology) and ends the reply.

Barge-in closes this generator: the open HTTP stream is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from voicehost import (
    CallContext,
    HangUp,
    LoopClientPool,
    ReplyItem,
    Responder,
    ResponderProvider,
    SendDtmf,
    Tool,
    Transfer,
)
from voicehost_openai_responder.config import PROVIDER_ID, OpenAIResponderConfig, WebhookToolConfig
from voicehost_openai_responder.exchange import ChatError, ChatRound
from voicehost_openai_responder.prompt import (
    dtmf_text,
    history_messages,
    system_prompt,
    tool_result_message,
)
from voicehost_openai_responder.tools import ToolBox

if TYPE_CHECKING:
    import openai

    from voicehost_openai_responder.webhook_tools import WebhookTools

__all__ = ["OpenAIResponder", "OpenAIResponderProvider"]

logger = logging.getLogger(__name__)


class OpenAIResponder(Responder):
    """Answers every call of the process from one chat model (see the module docstring).

    Args:
        config: the parsed ``[responder.openai]`` table.
        today: the date for the system prompt (tests pin it); default: the local date.

    Attributes:
        auth_failures: how many turns the server refused the key (401/403).
    """

    #: The jittered pause before the one retry, s: uniform in (low, high).
    retry_backoff_s: ClassVar[tuple[float, float]] = (0.2, 0.6)

    def __init__(
        self, config: OpenAIResponderConfig, *, today: Callable[[], dt.date] | None = None
    ) -> None:
        self.config = config
        self.auth_failures = 0
        self._today = today or dt.date.today
        self._auth_logged = False
        self._registered: dict[str, Tool] = {}
        self._toolbox: ToolBox | None = None
        self._clients: LoopClientPool[openai.AsyncOpenAI] | None = None
        self._webhooks: WebhookTools | None = None

    # --- set-up ------------------------------------------------------------------------

    def use_tools(self, tools: Mapping[str, Tool]) -> None:
        """Take the tools other plugins registered; ``[responder.openai] tools`` chooses
        which are offered.

        Raises:
            ConfigError: ``tools`` names a tool nobody registered, or a webhook tool has a
                registered tool's name.
        """
        self._registered = dict(tools)
        box = self._make_toolbox()
        box.check()
        self._toolbox = box

    @property
    def toolbox(self) -> ToolBox:
        """The tools offered with each request."""
        if self._toolbox is None:
            self._toolbox = self._make_toolbox()
            if self._toolbox.missing:
                logger.warning(
                    "openai responder: [responder.openai] tools names %s, which no plugin "
                    "registered; not offered",
                    ", ".join(self._toolbox.missing),
                )
        return self._toolbox

    @property
    def preemptive(self) -> bool:
        """Asked early (preemptive generation) only when it offers no tools: a tool call
        read ahead would run before the caller's turn is confirmed."""
        return not self.toolbox.schemas()

    def _make_toolbox(self) -> ToolBox:
        return ToolBox(self.config, self._registered, self._post_webhook)

    # --- the contract ------------------------------------------------------------------

    async def greeting(self, call: CallContext) -> AsyncIterator[str]:
        """The configured ``greeting`` line (nothing when empty); no model request."""
        if self.config.greeting:
            yield self.config.greeting

    def reply(self, call: CallContext, transcript: str) -> AsyncIterator[ReplyItem]:
        """Answer the caller's words (see the module docstring)."""
        return self._turn(call, transcript)

    def dtmf(self, call: CallContext, digits: str) -> AsyncIterator[ReplyItem]:
        """Answer a key press: the model reads it as ``[pressed <digits>]``. With
        ``answer_dtmf = false`` nothing is answered (the key stays in the history)."""
        return self._turn(call, dtmf_text(digits) if self.config.answer_dtmf else "")

    async def aclose(self) -> None:
        """Close the running loop's SDK clients and the webhook tools' session. Idempotent."""
        if self._clients is not None:
            await self._clients.aclose()
        if self._webhooks is not None:
            await self._webhooks.aclose()

    # --- one turn ----------------------------------------------------------------------

    def messages(self, call: CallContext, user_text: str) -> list[dict[str, Any]]:
        """The ``messages`` of a turn's first request: system prompt, history, the turn."""
        system = system_prompt(
            self.config.instructions, call, today=self._today(), tools=self.toolbox.offered
        )
        return [
            {"role": "system", "content": system},
            *history_messages(call.history, self.config.history_limit),
            {"role": "user", "content": user_text},
        ]

    def request(self, messages: list[dict[str, Any]], *, final: bool = False) -> dict[str, Any]:
        """The keyword arguments of one ``chat.completions.create`` (``stream`` aside);
        ``final``: the turn's last allowed completion (``tool_choice = "none"``)."""
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": list(messages),
            "temperature": self.config.temperature,
        }
        if self.config.max_tokens:
            request["max_tokens"] = self.config.max_tokens
        tools = self.toolbox.schemas()
        if tools:
            request["tools"] = tools
            if final:
                request["tool_choice"] = "none"
        return request

    async def _turn(self, call: CallContext, user_text: str) -> AsyncIterator[ReplyItem]:
        if not user_text.strip():
            return
        spoke = False
        try:
            messages = self.messages(call, user_text)
            rounds = self.config.max_tool_rounds
            for number in range(rounds):
                final = number == rounds - 1
                result = ChatRound()
                text: list[str] = []
                request = self.request(messages, final=final)
                async with contextlib.aclosing(self._complete(request, result, call)) as deltas:
                    async for delta in deltas:
                        spoke = True
                        text.append(delta)
                        yield delta
                if not result.tool_calls:
                    return
                if final:
                    logger.warning(
                        "openai responder: the model still calls tools after %d rounds "
                        "(call %s); ending the turn",
                        rounds,
                        call.call_sid,
                    )
                    return
                messages.append(_assistant_message("".join(text), result))
                for tool_call in result.tool_calls:
                    outcome = await self.toolbox.run(call, tool_call)
                    if isinstance(outcome.action, SendDtmf):
                        yield outcome.action
                    yield outcome.use(tool_call)
                    if isinstance(outcome.action, HangUp | Transfer):
                        yield outcome.action
                        return
                    messages.append(tool_result_message(tool_call.id, outcome.result))
        except ChatError as exc:
            apology = self._failed(exc, call, spoke)
            if apology:
                yield apology
        except Exception:
            logger.exception("openai responder: the turn failed (call %s)", call.call_sid)
            if not spoke and self.config.apology:
                yield self.config.apology

    async def _complete(
        self, request: dict[str, Any], into: ChatRound, call: CallContext
    ) -> AsyncIterator[str]:
        """One completion's text deltas, retried once when it fails before its first token
        with a retryable error."""
        from voicehost_openai_responder.chat import stream_round

        client = self._client()
        for attempt in (1, 2):
            try:
                async with contextlib.aclosing(stream_round(client, request, into)) as deltas:
                    async for delta in deltas:
                        yield delta
                return
            except ChatError as exc:
                if exc.kind != "retry" or into.started or attempt == 2:
                    raise
                pause = random.uniform(*self.retry_backoff_s)
                logger.warning(
                    "openai responder: %s (call %s); retrying once in %.2f s",
                    exc,
                    call.call_sid,
                    pause,
                )
                await asyncio.sleep(pause)

    def _failed(self, exc: ChatError, call: CallContext, spoke: bool) -> str:
        """Log and count a failed completion; the apology to speak ("" for none)."""
        if exc.kind == "auth":
            self.auth_failures += 1
            if not self._auth_logged:
                self._auth_logged = True
                logger.error(
                    "openai responder: %s refused the API key (%s): check [responder.openai] "
                    "api_key (default: $OPENAI_API_KEY); calls hear the apology until then",
                    self.config.base_url,
                    exc,
                )
        elif spoke:
            logger.warning(
                "openai responder: the stream broke mid-reply (%s, call %s); keeping what was said",
                exc,
                call.call_sid,
            )
        else:
            logger.warning(
                "openai responder: %s (call %s); speaking the apology", exc, call.call_sid
            )
        return "" if spoke else self.config.apology

    # --- clients -----------------------------------------------------------------------

    def _client(self) -> openai.AsyncOpenAI:
        from voicehost_openai_responder.chat import client_closed, close_client, make_client

        if self._clients is None:
            self._clients = LoopClientPool(close=close_client, is_closed=client_closed)
        config = self.config
        key = (config.api_key, config.base_url, config.timeout_s)
        return self._clients.get(key, lambda: make_client(config))

    async def _post_webhook(self, tool: WebhookToolConfig, payload: dict[str, Any]) -> Any:
        from voicehost_openai_responder.webhook_tools import WebhookTools

        if self._webhooks is None:
            self._webhooks = WebhookTools()
        return await self._webhooks.post(tool, payload)


def _assistant_message(text: str, result: ChatRound) -> dict[str, Any]:
    """The assistant message of a completion that called tools (its text, if any, too)."""
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in result.tool_calls
        ],
    }


class OpenAIResponderProvider(ResponderProvider[OpenAIResponderConfig]):
    """Provider of the ``openai`` responder (Chat Completions, streamed, with call tools)."""

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "OpenAI-compatible chat model (streamed, with call tools)"
    config_class: ClassVar[type[OpenAIResponderConfig]] = OpenAIResponderConfig

    def is_configured(self, config: OpenAIResponderConfig) -> bool:
        """True with an ``api_key``, or with a ``base_url`` other than OpenAI's (a local
        server may need none)."""
        return bool(config.api_key.strip()) or not config.offers_openai

    def preload(self, config: OpenAIResponderConfig) -> None:
        """Import the ``openai`` SDK and aiohttp now (at start-up, off the event loop), so
        the first turn does not pay for the imports."""
        import_module("voicehost_openai_responder.chat")
        import_module("voicehost_openai_responder.webhook_tools")

    def create(self, config: OpenAIResponderConfig) -> OpenAIResponder:
        """The process's responder for a parsed ``[responder.openai]`` table."""
        return OpenAIResponder(config)
