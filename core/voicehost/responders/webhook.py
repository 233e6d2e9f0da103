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

Config blob (``[responder.webhook]``)::

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
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from voicehost.errors import ConfigError
from voicehost.responders.base import (
    HANG_UP,
    CallContext,
    HangUp,
    Responder,
    ResponderProvider,
    history_tail,
)

logger = logging.getLogger(__name__)

_TABLE = "[responder.webhook]"
_KEYS = {"url", "timeout_s", "apology", "greeting", "headers", "history_limit"}


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


class WebhookResponderProvider(ResponderProvider):
    """Provider of the ``webhook`` responder."""

    id: ClassVar[str] = "webhook"
    label: ClassVar[str] = "Webhook (POST each turn to your HTTP service)"
    default_config: ClassVar[Mapping[str, Any]] = {
        "url": "",
        "timeout_s": 5,
        "apology": "Sorry, I am having trouble right now. Please say that again in a moment.",
        "greeting": "",
        "headers": {},
        "history_limit": 20,
    }

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Raises ConfigError naming the key at fault (missing/relative url, bad timeout …)."""
        self.create(config)

    def create(self, config: Mapping[str, Any]) -> WebhookResponder:
        """The responder for a ``[responder.webhook]`` blob.

        Raises:
            ConfigError: as :meth:`validate_config`.
        """
        unknown = set(config) - _KEYS
        if unknown:
            raise ConfigError(f"{_TABLE} has unknown key(s): {', '.join(sorted(unknown))}")
        url = config.get("url", "")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{_TABLE} url is required (the HTTP endpoint to POST turns to)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{_TABLE} url must be an absolute http(s) URL, got {url!r}")
        timeout_s = config.get("timeout_s", 5)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise ConfigError(f"{_TABLE} timeout_s must be a number of seconds > 0")
        headers = config.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError(f"{_TABLE} headers must be a table of string values")
        history_limit = config.get("history_limit", 20)
        if isinstance(history_limit, bool) or not isinstance(history_limit, int):
            raise ConfigError(f"{_TABLE} history_limit must be an integer (0 for all)")
        texts = {}
        for key in ("apology", "greeting"):
            value = config.get(key, "")
            if not isinstance(value, str):
                raise ConfigError(f"{_TABLE} {key} must be a string")
            texts[key] = value
        return WebhookResponder(
            url,
            timeout_s=float(timeout_s),
            apology=texts["apology"],
            greeting=texts["greeting"],
            headers=headers,
            history_limit=history_limit,
        )


__all__ = ["WebhookError", "WebhookResponder", "WebhookResponderProvider"]
