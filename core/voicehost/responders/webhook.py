"""The ``webhook`` responder: ask your own HTTP service what to say.

For each final transcript it POSTs JSON to ``url``::

    {"call_sid": "CA…", "stream_sid": "MZ…", "from": "+1555…", "to": "+1555…",
     "transcript": "what are your hours",
     "history": [{"role": "bot", "text": "Hello…"}, {"role": "caller", "text": "…"}]}

A key press of the caller is POSTed the same way, with the key in ``dtmf`` and an empty
``transcript`` (in ``history`` key presses carry ``"dtmf": true``)::

    {"call_sid": "CA…", …, "transcript": "", "dtmf": "1",
     "history": [{"role": "bot", "text": "Press 1 for sales."}, …]}

It expects a JSON object back::

    {"say": "We open at nine.", "hangup": false}
    {"say": "Connecting you.", "transfer": "+15550003333"}
    {"say": "One moment.", "send_dtmf": "1w234#"}

``say`` is spoken (omit it or use ``""`` to stay silent); then ``send_dtmf`` keys are pressed
(0-9, ``*``, ``#``, A-D; ``w`` a 500 ms pause); then ``transfer`` hands the call to an E.164
number or ``sip:`` URI, or ``hangup: true`` ends the call (not both). Each may be omitted or
``null``. A non-2xx status, a body that is not such an object (a bad key string or target
included), a connection error or no answer within ``timeout_s`` seconds makes the bot speak
``apology`` instead; the cause is logged at WARNING and the call goes on.

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
    ReplyItem,
    Responder,
    ResponderProvider,
    SendDtmf,
    Transfer,
    history_tail,
)
from voicehost.urls import http_url

if TYPE_CHECKING:
    import aiohttp

logger = logging.getLogger(__name__)


class WebhookError(Exception):
    """The webhook's answer was unusable (status, body, timeout); the message says why."""


class WebhookResponder(Responder):
    """POSTs each turn (speech or key press) to a URL; speaks the ``say`` of the answer and
    does its ``send_dtmf``, ``transfer`` and ``hangup``.

    One :class:`aiohttp.ClientSession` (made on first use, on the serving event loop) is shared
    by all calls and closed by :meth:`aclose`.
    """

    @property
    def preemptive(self) -> bool:
        """Never asked early: each request reaches the user's server, which may act on it."""
        return False

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

    def payload(self, call: CallContext, transcript: str, dtmf: str = "") -> dict[str, Any]:
        """The JSON body POSTed for one turn (see the module docstring); ``dtmf`` (the keys
        of a key-press turn) is sent only when given."""
        body: dict[str, Any] = {
            "call_sid": call.call_sid,
            "stream_sid": call.stream_sid,
            "from": call.from_number,
            "to": call.to_number,
            "transcript": transcript,
        }
        if dtmf:
            body["dtmf"] = dtmf
        body["history"] = [t.to_json() for t in history_tail(call.history, self.history_limit)]
        return body

    async def greeting(self, call: CallContext) -> AsyncIterator[str]:
        if self._greeting:
            yield self._greeting

    def reply(self, call: CallContext, transcript: str) -> AsyncIterator[ReplyItem]:
        """POST the turn (:meth:`payload`) and yield the answer's items: ``say``, then
        :class:`SendDtmf`, then :class:`Transfer` or ``HANG_UP``. A timeout, a non-2xx
        answer or a malformed body is logged and the ``apology`` is spoken instead; nothing
        is raised into the call."""
        return self._turn(call, self.payload(call, transcript))

    def dtmf(self, call: CallContext, digits: str) -> AsyncIterator[ReplyItem]:
        """POST the key press (``"dtmf": digits``, ``"transcript": ""``) and answer it as
        :meth:`reply` does."""
        return self._turn(call, self.payload(call, "", dtmf=digits))

    async def _turn(self, call: CallContext, body: dict[str, Any]) -> AsyncIterator[ReplyItem]:
        try:
            items = await self._ask(body)
        except WebhookError as exc:
            logger.warning(
                "webhook responder: %s (call %s); speaking the apology", exc, call.call_sid
            )
            if self.apology:
                yield self.apology
            return
        for item in items:
            yield item

    async def _ask(self, body: dict[str, Any]) -> list[ReplyItem]:
        """POST ``body``; the reply items of the answer. Raises WebhookError."""
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


def _parse_answer(answer: object, url: str) -> list[ReplyItem]:
    """The reply items of a webhook's answer: ``say``, ``send_dtmf``, ``transfer`` |
    ``hangup``. Raises WebhookError for a wrong type, bad keys or target, or both
    ``transfer`` and ``hangup``."""
    if not isinstance(answer, dict):
        raise WebhookError(f"{url} answered {type(answer).__name__}, not a JSON object")
    say, send_dtmf, transfer = (_text(answer, key, url) for key in ("say", "send_dtmf", "transfer"))
    hangup = answer.get("hangup", False)
    if hangup is None:
        hangup = False
    if not isinstance(hangup, bool):
        raise WebhookError(f"{url} answered a 'hangup' that is not true/false: {hangup!r}")
    items: list[ReplyItem] = [say] if say else []
    try:
        if send_dtmf:
            items.append(SendDtmf(send_dtmf))
        if transfer:
            items.append(Transfer(transfer))
    except ValueError as exc:
        raise WebhookError(f"{url} answered an unusable action: {exc}") from None
    if transfer and hangup:
        raise WebhookError(f"{url} answered both 'transfer' and 'hangup'; a transfer ends the call")
    if hangup:
        items.append(HANG_UP)
    return items


def _text(answer: dict[str, Any], key: str, url: str) -> str:
    """``answer[key]`` as a string; ``""`` when absent or null. Raises WebhookError."""
    value = answer.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WebhookError(f"{url} answered a {key!r} that is not a string: {value!r}")
    return value


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
