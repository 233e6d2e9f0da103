"""The ``webhook`` responder: ask your own HTTP service what to say.

For each final transcript it POSTs JSON to ``url``::

    {"call_sid": "CA…", "stream_sid": "MZ…", "from": "+1555…", "to": "+1555…",
     "transcript": "what are your hours",
     "history": [{"role": "bot", "text": "Hello…"}, {"role": "caller", "text": "…"}]}

and expects a JSON object back::

    {"say": "We open at nine.", "hangup": false}

``say`` is spoken (omit it or use ``""`` to stay silent); ``hangup: true`` ends the call once
``say`` has been spoken. A non-2xx status, a body that is not such an object, a connection
error or no answer within ``timeout_s`` seconds makes the bot speak ``apology`` instead; the
cause is logged at WARNING and the call goes on.

Config (``[responder.webhook]``, parsed into :class:`WebhookConfig`)::

    url = "https://example.com/voice-turn"   # required
    timeout_s = 5                            # whole request, seconds
    apology = "Sorry, …"                     # spoken on error or timeout; "" for silence
    greeting = ""                            # spoken when the stream starts; "" for none
    headers = { Authorization = "Bearer ${BOT_TOKEN}" }   # extra request headers
    history_limit = 20                       # turns of history sent; 0 for all
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    HANG_UP,
    CallContext,
    HangUp,
    Responder,
    ResponderProvider,
    history_tail,
)
from voicehost.urls import http_url

if TYPE_CHECKING:
    import aiohttp

logger = logging.getLogger(__name__)


class WebhookError(Exception):
    """The webhook's answer was unusable (status, body, timeout); the message says why."""


class WebhookResponder(Responder):
    """POSTs each turn to a URL and speaks the ``say`` field of the answer.

    One :class:`aiohttp.ClientSession` (made on first use, on the serving event loop) is shared
    by all calls and closed by :meth:`aclose`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        apology: str = "",
        greeting: str = "",
        headers: Mapping[str, str] | None = None,
        history_limit: int = 20,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.apology = apology
        self._greeting = greeting
        self.headers = dict(headers or {})
        self.history_limit = history_limit
        self._session: aiohttp.ClientSession | None = None

    def payload(self, call: CallContext, transcript: str) -> dict[str, Any]:
        """The JSON body POSTed for one turn (see the module docstring)."""
        return {
            "call_sid": call.call_sid,
            "stream_sid": call.stream_sid,
            "from": call.from_number,
            "to": call.to_number,
            "transcript": transcript,
            "history": [t.to_json() for t in history_tail(call.history, self.history_limit)],
        }

    async def greeting(self, call: CallContext) -> AsyncIterator[str]:
        if self._greeting:
            yield self._greeting

    async def reply(self, call: CallContext, transcript: str) -> AsyncIterator[str | HangUp]:
        """POST the turn (:meth:`payload`) and speak the answer's ``say``, then ``HANG_UP``
        when it says ``hangup``. A timeout, a non-2xx answer or a malformed body is logged
        and the ``apology`` is spoken instead; nothing is raised into the call."""
        try:
            say, hangup = await self._ask(self.payload(call, transcript))
        except WebhookError as exc:
            logger.warning(
                "webhook responder: %s (call %s); speaking the apology", exc, call.call_sid
            )
            if self.apology:
                yield self.apology
            return
        if say:
            yield say
        if hangup:
            yield HANG_UP

    async def _ask(self, body: dict[str, Any]) -> tuple[str, bool]:
        """POST ``body``; ``(say, hangup)`` from the answer. Raises WebhookError."""
        import aiohttp  # on first use: listing plugins must not pay for the HTTP client

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self._session.post(
                self.url, json=body, headers=self.headers, timeout=timeout
            ) as response:
                if response.status // 100 != 2:
                    text = (await response.text())[:200]
                    raise WebhookError(f"{self.url} answered HTTP {response.status}: {text!r}")
                try:
                    answer = await response.json(content_type=None)
                except ValueError as exc:
                    raise WebhookError(f"{self.url} answered with a body that is not JSON") from exc
        except TimeoutError as exc:
            raise WebhookError(f"{self.url} did not answer within {self.timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise WebhookError(f"POST {self.url} failed: {exc!r}") from exc
        return _parse_answer(answer, self.url)

    async def aclose(self) -> None:
        """Close the HTTP session (its keep-alive connections). Idempotent."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _parse_answer(answer: object, url: str) -> tuple[str, bool]:
    if not isinstance(answer, dict):
        raise WebhookError(f"{url} answered {type(answer).__name__}, not a JSON object")
    say = answer.get("say", "")
    hangup = answer.get("hangup", False)
    if say is None:
        say = ""
    if not isinstance(say, str):
        raise WebhookError(f"{url} answered a 'say' that is not a string: {say!r}")
    if not isinstance(hangup, bool):
        raise WebhookError(f"{url} answered a 'hangup' that is not true/false: {hangup!r}")
    return say, hangup


class WebhookConfig(ProviderConfig):
    """The ``[responder.webhook]`` table."""

    url: str = Field(description="The http(s) endpoint each turn is POSTed to (required).")
    timeout_s: float = Field(
        5.0, gt=0, allow_inf_nan=False, description="Bound of the whole request, s."
    )
    apology: str = Field(
        "Sorry, I am having trouble right now. Please say that again in a moment.",
        description="Spoken on an error or timeout; empty for silence.",
    )
    greeting: str = Field("", description="Spoken when the stream starts; empty for none.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (e.g. Authorization)."
    )
    history_limit: int = Field(20, ge=0, description="Turns of history sent; 0 for all.")

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        return http_url(value)


class WebhookResponderProvider(ResponderProvider[WebhookConfig]):
    """Provider of the ``webhook`` responder."""

    id: ClassVar[str] = "webhook"
    label: ClassVar[str] = "Webhook (POST each turn to your HTTP service)"
    config_class: ClassVar[type[ProviderConfig]] = WebhookConfig

    def create(self, config: WebhookConfig) -> WebhookResponder:
        """The responder for a parsed ``[responder.webhook]`` table."""
        return WebhookResponder(
            config.url,
            timeout_s=config.timeout_s,
            apology=config.apology,
            greeting=config.greeting,
            headers=config.headers,
            history_limit=config.history_limit,
        )


__all__ = ["WebhookConfig", "WebhookError", "WebhookResponder", "WebhookResponderProvider"]
