"""Twilio's REST API for calls, through the official ``twilio`` library (wire-protocols.md
§1.7): create a call, update it (new TwiML, a redirect, a status) and hang it up.

Requests go through ``twilio.rest.Client`` with its aiohttp-based
:class:`~twilio.http.async_http_client.AsyncTwilioHttpClient` and the SDK's ``*_async``
methods, never hand-written HTTP. ``[twilio] api_base_url`` replaces
``https://api.twilio.com`` (``client.api.base_url``: every ``calls`` URL is built from it), so
the same code talks to a proxy or, in tests, to the local fake
(:mod:`voicehost.testing.twilio_rest`).

Every failure is a :class:`TwilioRestError` with one clear line::

    Twilio error 21211: Invalid 'To' Phone Number: +1555 (HTTP 400)
    cannot reach Twilio's REST API at https://api.twilio.com: Connection refused

The HTTP session is opened on first use (an aiohttp session needs a running event loop) and
closed by :meth:`TwilioRest.aclose`; each request is bounded by ``timeout_s`` (default 15 s).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs
from twilio.base.exceptions import TwilioException, TwilioRestException

from voicehost.errors import VoicehostError
from voicehost.server.protocol import sanitize_log_text
from voicehost.server.settings import TwilioSettings

if TYPE_CHECKING:
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

log = logging.getLogger(__name__)

__all__ = [
    "ALREADY_OVER_CODES",
    "DEFAULT_API_BASE_URL",
    "DEFAULT_STATUS_EVENTS",
    "RestCall",
    "TwilioRest",
    "TwilioRestError",
]

DEFAULT_API_BASE_URL = "https://api.twilio.com"

#: ``StatusCallbackEvent`` of a placed call: every call-progress event.
DEFAULT_STATUS_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")

#: Twilio error codes that mean "the call is already over" when hanging up: 20404 (no such
#: call: never placed or long gone) and 21220 (call not in progress).
ALREADY_OVER_CODES = frozenset({20404, 21220})

# The SDK prefixes the API's message with what it tried ("Unable to create record: ...").
_SDK_PREFIX = re.compile(r"^Unable to [a-z ]+ record(: )?")


class TwilioRestError(VoicehostError):
    """Twilio's REST API refused a request, or could not be reached.

    Attributes:
        status: the HTTP status Twilio answered, or None when it was not reached (connection
            refused, DNS, timeout).
        code: Twilio's error code (``21211`` …, see twilio.com/docs/errors), or None.
        message: Twilio's message (or what went wrong), without the code and status.
    """

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        self.status = status
        self.code = code
        self.message = message
        if status is None:
            text = message
        elif code is not None:
            text = f"Twilio error {code}: {message} (HTTP {status})"
        else:
            text = f"Twilio error: {message} (HTTP {status})"
        super().__init__(text)

    @property
    def reached(self) -> bool:
        """True when Twilio answered (with an error status)."""
        return self.status is not None


@attrs.frozen
class RestCall:
    """A call as Twilio's REST API describes it (the JSON of ``Calls.json``).

    Attributes:
        sid: the call SID (``CA`` + 32 hex digits).
        status: ``queued``, ``ringing``, ``in-progress``, ``completed``, ``busy``, ``failed``,
            ``no-answer`` or ``canceled``; ``""`` when the answer had none.
        direction: ``outbound-api`` for a call placed over REST, ``inbound`` …; ``""`` if none.
        to / from_: the numbers (E.164, ``sip:`` or ``client:``); ``""`` when missing.
    """

    sid: str
    status: str = ""
    direction: str = ""
    to: str = ""
    from_: str = ""

    @classmethod
    def from_instance(cls, instance: Any) -> RestCall:
        """From the SDK's ``CallInstance`` (its ``from`` is the private ``_from``)."""
        return cls(
            sid=str(instance.sid or ""),
            status=str(instance.status or ""),
            direction=str(instance.direction or ""),
            to=str(instance.to or ""),
            from_=str(getattr(instance, "_from", None) or ""),
        )


class TwilioRest:
    """The calls part of Twilio's REST API for one account.

    Args:
        account_sid: the account (``AC…``); also the HTTP Basic user.
        auth_token: the account's auth token (HTTP Basic password).
        api_base_url: ``https://api.twilio.com``, a proxy, or a local fake.
        timeout_s: bound on each request (connect, send, answer), seconds.

    Use it as an async context manager, or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str = DEFAULT_API_BASE_URL,
        timeout_s: float = 15.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("account_sid and auth_token are both required")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.account_sid = account_sid
        self.api_base_url = api_base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._auth_token = auth_token
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, twilio: TwilioSettings, *, timeout_s: float = 15.0) -> TwilioRest | None:
        """A client for ``[twilio]``, or None when the REST API is not configured (no
        ``account_sid`` or no ``auth_token``)."""
        if not twilio.rest_configured:
            return None
        return cls(
            twilio.account_sid,
            twilio.auth_token,
            api_base_url=twilio.api_base_url,
            timeout_s=timeout_s,
        )

    def __repr__(self) -> str:
        return f"TwilioRest({self.account_sid!r}, api_base_url={self.api_base_url!r})"

    async def __aenter__(self) -> TwilioRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    def _sdk(self) -> Client:
        """The SDK client, built on first use (inside the running event loop)."""
        if self._closed:
            raise TwilioRestError("the Twilio REST client is closed")
        if self._client is None:
            # imported on first use: ``config check`` and ``serve`` start-up need not pay for
            # the SDK's REST tree (about 0.3 s)
            from twilio.http.async_http_client import AsyncTwilioHttpClient
            from twilio.rest import Client

            http = AsyncTwilioHttpClient(pool_connections=False)
            # The SDK's own session has no time limit (aiohttp's 5 minutes); bound it.
            http.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
            client = Client(self.account_sid, self._auth_token, http_client=http)
            client.api.base_url = self.api_base_url
            if self.api_base_url != DEFAULT_API_BASE_URL:
                # $TWILIO_EDGE / $TWILIO_REGION rewrite host names; a custom base names its
                # host exactly.
                client.edge = None
                client.region = None
            self._http, self._client = http, client
        return self._client

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str | None = None,
        status_callback_event: Sequence[str] = DEFAULT_STATUS_EVENTS,
        timeout_s: int = 30,
        machine_detection: str | None = None,
    ) -> RestCall:
        """``POST Calls.json``: place a call to ``to`` from ``from_`` whose TwiML comes from
        ``url`` (POSTed when answered).

        Args:
            status_callback: URL of the call status callback (None: none).
            status_callback_event: the progress events posted to it.
            timeout_s: how long it may ring before ``no-answer``, seconds.
            machine_detection: ``"Enable"`` or ``"DetectMessageEnd"`` (answering-machine
                detection; ``AnsweredBy`` then comes with the webhook), None for none.

        Raises:
            TwilioRestError: Twilio refused (e.g. code 21211, a bad ``To``) or was not reached.
        """
        kwargs: dict[str, Any] = {"to": to, "from_": from_, "url": url, "timeout": timeout_s}
        if status_callback:
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_event"] = list(status_callback_event)
        if machine_detection:
            kwargs["machine_detection"] = machine_detection
        instance = await self._call("create a call", self._sdk().calls.create_async(**kwargs))
        return RestCall.from_instance(instance)

    async def update_call(
        self,
        call_sid: str,
        *,
        status: str | None = None,
        twiml: str | None = None,
        url: str | None = None,
    ) -> RestCall:
        """``POST Calls/{call_sid}.json``: end the call (``status`` ``completed`` or
        ``canceled``), or give it new TwiML (``twiml``, e.g. a ``<Dial>``) or a new TwiML URL.

        Raises:
            ValueError: nothing to update.
            TwilioRestError: Twilio refused (20404: no such call; 21220: not in progress)
                or was not reached.
        """
        kwargs = {
            key: value
            for key, value in (("status", status), ("twiml", twiml), ("url", url))
            if value is not None
        }
        if not kwargs:
            raise ValueError("update_call needs status, twiml or url")
        instance = await self._call(
            f"update call {call_sid}", self._sdk().calls(call_sid).update_async(**kwargs)
        )
        return RestCall.from_instance(instance)

    async def fetch_call(self, call_sid: str) -> RestCall:
        """``GET Calls/{call_sid}.json``: the call as Twilio sees it now.

        Raises:
            TwilioRestError: Twilio refused (20404: no such call) or was not reached.
        """
        instance = await self._call(
            f"fetch call {call_sid}", self._sdk().calls(call_sid).fetch_async()
        )
        return RestCall.from_instance(instance)

    async def hangup(self, call_sid: str) -> None:
        """End the call (``Status=completed``: hangs up an answered call, cancels a ringing
        one). A call that is already over (404 / 20404, or 21220 "not in progress") is not an
        error: there is nothing left to end.

        Raises:
            TwilioRestError: any other refusal, or Twilio was not reached.
        """
        try:
            await self.update_call(call_sid, status="completed")
        except TwilioRestError as exc:
            if exc.status == 404 or exc.code in ALREADY_OVER_CODES:
                log.info("call %s: already over (%s)", call_sid, exc)
                return
            raise

    async def aclose(self) -> None:
        """Close the HTTP session; calling it again does nothing."""
        self._closed = True
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()

    async def _call(self, what: str, request: Any) -> Any:
        """Await the SDK ``request``, turning every failure into :class:`TwilioRestError`."""
        try:
            return await request
        except TwilioRestException as exc:
            raise _rest_error(exc) from None
        except TwilioException as exc:  # RFC 9457 problem answers, SDK-side errors
            status = getattr(exc, "status", None)
            code = getattr(exc, "code", None)
            detail = getattr(exc, "detail", None) or getattr(exc, "title", None) or str(exc)
            raise TwilioRestError(
                sanitize_log_text(str(detail), 300),
                status=status if isinstance(status, int) else None,
                code=code if isinstance(code, int) and code >= 10000 else None,
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = sanitize_log_text(str(exc) or type(exc).__name__, 200)
            raise TwilioRestError(
                f"cannot reach Twilio's REST API at {self.api_base_url} to {what}: {reason}"
            ) from None
        except ValueError as exc:  # an answer that is not JSON
            raise TwilioRestError(
                f"Twilio's REST API at {self.api_base_url} gave an unreadable answer to "
                f"{what}: {sanitize_log_text(str(exc), 200)}",
                status=None,
            ) from None


def _rest_error(exc: TwilioRestException) -> TwilioRestError:
    """A :class:`TwilioRestError` from the SDK's exception: Twilio's own message (without the
    SDK's "Unable to create record:" prefix), its code when it is a Twilio code (the SDK puts
    the HTTP status there when the body had none), and the HTTP status."""
    message = _SDK_PREFIX.sub("", str(exc.msg or "")).strip()
    code = exc.code if isinstance(exc.code, int) and exc.code >= 10000 else None
    if not message:
        message = "request refused"
    return TwilioRestError(sanitize_log_text(message, 300), status=exc.status, code=code)
