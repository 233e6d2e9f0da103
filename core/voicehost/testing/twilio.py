"""A Twilio simulator: plays phone calls against a voicehost server exactly as Twilio does.

For each call it

1. POSTs the signed voice webhook (form ``CallSid``, ``AccountSid``, ``From``, ``To``,
   ``CallStatus``, ``Direction``, ``ApiVersion``, ``Called``, ``Caller``), with
   ``X-Twilio-Signature`` computed by :meth:`RequestValidator.compute_signature` over the
   *public* URL Twilio would have requested (``public_url`` + path; defaults to the URL it
   posts to, but may differ, as behind a TLS proxy);
2. parses the TwiML for ``<Connect><Stream url>`` and its ``<Parameter name="token">``;
3. opens the WebSocket (the stream URL's path on the server's own address) and sends
   ``connected`` then ``start`` (``customParameters`` carrying the token), then on request
   ``media`` frames (160 bytes / 20 ms, real time or ``speed`` times faster), ``dtmf``,
   ``stop``;
4. models Twilio's playback buffer: each outbound ``media`` is queued behind the previous
   one, each ``mark`` is echoed once the audio before it has played (bytes / 8000 s, divided
   by ``speed``), and a ``clear`` drops the buffer and echoes every pending mark at once;
5. records what it receives: the μ-law bytes, each ``media`` frame's arrival time, every
   event, the marks it echoed, the close code, and protocol errors (bad base64, wrong
   ``streamSid``).

Usage::

    async with TwilioSimulator("http://127.0.0.1:8080", auth_token="secret") as sim:
        call = await sim.start_call()
        await call.play(ulaw_bytes)              # caller audio, paced
        await call.wait_for_audio(seconds=1.0)   # bot audio received
        await call.stop()

Message formats: wire-protocols.md §1.3 (in) and §1.4 (out).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import attrs
from twilio.request_validator import RequestValidator

from voicehost.testing.twilio_stream import FRAME_BYTES, SAMPLE_RATE, SimulatedCall, random_sid

__all__ = [
    "FRAME_BYTES",
    "SAMPLE_RATE",
    "SimulatedCall",
    "TwilioSimulator",
    "WebhookReply",
    "parse_stream_twiml",
    "random_sid",
]


@attrs.frozen
class WebhookReply:
    """The server's answer to a webhook POST."""

    status: int
    text: str
    headers: Mapping[str, str]


class TwilioSimulator:
    """Plays calls against a voicehost server.

    Args:
        base_url: where the server listens (``http://127.0.0.1:PORT``).
        auth_token: the Twilio auth token to sign with; None sends no signature.
        account_sid: ``AccountSid`` of the simulated account.
        public_url: the URL Twilio "sees" (the server's ``[server] public_url``); signatures
            are computed over it, requests still go to ``base_url``. Default ``base_url``.
        webhook_path / status_path: the server's paths.
        speed: 1.0 plays caller audio and models playback in real time; 10.0 ten times
            faster; ``math.inf`` as fast as possible (marks echo at once).
        session: an aiohttp session to use (default: its own).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth_token: str | None = None,
        account_sid: str | None = None,
        public_url: str | None = None,
        webhook_path: str = "/voice/webhook",
        status_path: str = "/voice/status",
        speed: float = 1.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token
        self.account_sid = account_sid or random_sid("AC")
        self.public_url = (public_url or self.base_url).rstrip("/")
        self.webhook_path = webhook_path
        self.status_path = status_path
        if speed <= 0:
            raise ValueError("speed must be > 0 (math.inf for as fast as possible)")
        self.speed = speed
        self._session = session
        self._own_session = session is None
        self.calls: list[SimulatedCall] = []

    async def __aenter__(self) -> TwilioSimulator:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every call's socket and the HTTP session."""
        for call in self.calls:
            await call.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (opened on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # --- HTTP ------------------------------------------------------------------------------

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` for a POST of ``params`` to ``url`` (§1.6)."""
        if not self.auth_token:
            raise ValueError("no auth_token to sign with")
        return RequestValidator(self.auth_token).compute_signature(url, dict(params))

    async def post_form(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        signature: str | bool | None = True,
        headers: Mapping[str, str] | None = None,
        query: str = "",
    ) -> WebhookReply:
        """POST a form to ``path`` as Twilio does.

        Args:
            signature: True computes it over ``public_url + path[?query]``; a string is
                sent as is; False/None sends none.
            headers: extra headers (e.g. a proxy's ``Host``/``X-Forwarded-*``).
            query: a query string (without ``?``).
        """
        suffix = f"{path}?{query}" if query else path
        send_headers = dict(headers or {})
        if signature is True:
            if self.auth_token:
                send_headers["X-Twilio-Signature"] = self.sign(self.public_url + suffix, params)
        elif isinstance(signature, str):
            send_headers["X-Twilio-Signature"] = signature
        async with self.session.post(
            self.base_url + suffix, data=dict(params), headers=send_headers
        ) as resp:
            return WebhookReply(resp.status, await resp.text(), dict(resp.headers))

    def webhook_params(
        self,
        call_sid: str,
        *,
        from_: str = "+15005550006",
        to: str = "+15005550001",
        direction: str = "inbound",
        status: str = "ringing",
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The voice webhook's form parameters."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": status,
            "Called": to,
            "Caller": from_,
            "Direction": direction,
            "From": from_,
            "To": to,
        }
        params.update(extra or {})
        return params

    async def post_status(self, call_sid: str, status: str, **extra: str) -> WebhookReply:
        """A signed call status callback (``CallStatus`` = ``status``)."""
        params = {
            "AccountSid": self.account_sid,
            "CallSid": call_sid,
            "CallStatus": status,
            "CallbackSource": "call-progress-events",
            "SequenceNumber": "0",
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            **extra,
        }
        return await self.post_form(self.status_path, params)

    # --- calls -----------------------------------------------------------------------------

    async def start_call(
        self,
        *,
        from_: str = "+15005550006",
        to: str = "+15005550001",
        direction: str = "inbound",
        call_sid: str | None = None,
        custom_parameters: Mapping[str, str] | None = None,
        send_start: bool = True,
        extra_params: Mapping[str, str] | None = None,
    ) -> SimulatedCall:
        """Place a call: webhook, TwiML, WebSocket, ``connected`` and (by default) ``start``.

        Raises:
            AssertionError: the webhook did not answer 200 with a ``<Connect><Stream>``.
        """
        call_sid = call_sid or random_sid("CA")
        params = self.webhook_params(
            call_sid, from_=from_, to=to, direction=direction, extra=extra_params
        )
        reply = await self.post_form(self.webhook_path, params)
        if reply.status != 200:
            raise AssertionError(f"voice webhook answered {reply.status}: {reply.text!r}")
        stream_url, stream_params = parse_stream_twiml(reply.text)
        call = await self.open_stream(self.local_stream_url(stream_url), call_sid=call_sid)
        call.twiml = reply.text
        call.stream_url = stream_url
        call.token = stream_params.get("token")
        call.custom_parameters = {**stream_params, **(custom_parameters or {})}
        await call.send_connected()
        if send_start:
            await call.send_start()
        return call

    def local_stream_url(self, stream_url: str) -> str:
        """Where to connect for a TwiML stream URL: its path on ``base_url`` (what a proxy
        in front of the server would do), minus ``public_url``'s path prefix."""
        path = urlsplit(stream_url).path
        prefix = urlsplit(self.public_url).path.rstrip("/")
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :]
        base = urlsplit(self.base_url)
        scheme = "wss" if base.scheme == "https" else "ws"
        return f"{scheme}://{base.netloc}{path}"

    async def open_stream(
        self,
        url: str | None = None,
        *,
        call_sid: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SimulatedCall:
        """Open a Media Streams socket without the webhook (for limit and abuse tests).

        Raises:
            aiohttp.WSServerHandshakeError: the server refused the upgrade (e.g. 503).
        """
        url = url or self.local_stream_url(self.public_url + "/voice/stream")
        ws = await self.session.ws_connect(url, headers=headers, max_msg_size=0, autoping=True)
        call = SimulatedCall(
            ws,
            call_sid=call_sid or random_sid("CA"),
            account_sid=self.account_sid,
            speed=self.speed,
        )
        self.calls.append(call)
        return call


def parse_stream_twiml(twiml: str) -> tuple[str, dict[str, str]]:
    """``(stream url, {parameter name: value})`` from ``<Response><Connect><Stream>`` TwiML.

    Raises:
        AssertionError: no ``<Connect><Stream url>``.
    """
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise AssertionError(f"TwiML has no <Connect><Stream url>: {twiml!r}")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params
