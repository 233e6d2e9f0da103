"""A local fake of Twilio's REST API for calls (wire-protocols.md §1.7), for tests that run
the official ``twilio`` library (and so voicehost's :class:`~voicehost.server.rest.TwilioRest`)
against ``http://127.0.0.1:PORT`` instead of ``https://api.twilio.com``.

It serves ``/2010-04-01/Accounts/{AccountSid}/Calls.json`` (POST: create) and
``/Calls/{CallSid}.json`` (POST: update, GET: fetch), and checks what Twilio checks:

* HTTP Basic auth: the account SID and auth token, else 401 (code 20003); a path naming
  another account than the one authenticated is 404 (20404);
* ``Calls.json``: ``To`` (missing 21201; not E.164 / ``sip:`` / ``client:`` 21211),
  ``From`` (missing 21603; bad 21212), exactly one of ``Url`` / ``Twiml`` /
  ``ApplicationSid`` (21205), ``Url`` / ``StatusCallback`` http(s) URLs (21205 / 21609),
  ``Method`` / ``StatusCallbackMethod`` GET or POST, ``StatusCallbackEvent`` values
  initiated / ringing / answered / completed (21626), ``Timeout`` a whole number 1-600 and
  ``MachineDetection`` ``Enable`` / ``DetectMessageEnd`` (21201-style 400s with code 20001);
* ``Calls/{sid}.json``: an unknown call is 404 (20404); ``Status`` ``completed`` or
  ``canceled``; ``Twiml`` well-formed ``<Response>`` XML (12100); ``Url`` an http(s) URL;
  a call already over is 400 (21220, "not in progress"); an update with nothing to do 400.

It answers Twilio's JSON: 201 and the call on create, 200 and the call on update/fetch,
errors as ``{"code", "message", "more_info", "status"}``. Every request is recorded
(:attr:`FakeTwilioRest.requests`: method, path, form, auth), and
:meth:`FakeTwilioRest.fail_next` makes the next request of a kind fail with a given code.

Connected to a running voicehost (:meth:`FakeTwilioRest.connect_voicehost`), it also plays
Twilio's side of each created call (:mod:`voicehost.testing.twilio_rest_player`)::

    async with FakeTwilioRest() as fake:
        fake.connect_voicehost(server_url, public_url="https://voice.example.test")
        call = await rest.create_call(...)          # voicehost's TwilioRest, base_url=fake.url
        await fake.ring(call.sid)                   # initiated + ringing callbacks
        answered = await fake.answer(call.sid)      # webhook; stream opened if asked for
        await answered.stream.wait_for_audio(...)
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import attrs
import yarl
from aiohttp import web
from multidict import MultiDict

from voicehost.phone import is_call_target, is_e164
from voicehost.testing.twilio import TwilioSimulator, WebhookReply
from voicehost.testing.twilio_rest_calls import AnsweredCall, FakeCall
from voicehost.testing.twilio_rest_player import CallPlayer

__all__ = ["AnsweredCall", "FakeCall", "FakeTwilioRest", "RestRequest"]

_API = "/2010-04-01/Accounts/{account}"
_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
_DETECTION = frozenset({"Enable", "DetectMessageEnd"})
_METHODS = frozenset({"GET", "POST"})


@attrs.frozen
class RestRequest:
    """One request the fake received.

    Attributes:
        method / path: as sent (path without the query).
        form: the form body (every value of repeated keys).
        auth: ``(user, password)`` of HTTP Basic auth, None when absent or unreadable.
        headers: the request headers.
        status: what the fake answered.
    """

    method: str
    path: str
    form: MultiDict[str]
    auth: tuple[str, str] | None
    headers: Mapping[str, str]
    status: int


class RestFailure(Exception):
    """An error answer: HTTP ``status`` with Twilio's ``code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return web.json_response(
            {
                "code": self.code,
                "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
                "status": self.status,
            },
            status=self.status,
        )


class FakeTwilioRest:
    """Twilio's REST API for calls on 127.0.0.1 (see the module doc).

    Args:
        account_sid / auth_token: the only credentials accepted (random when None).

    Attributes:
        requests: every request received, in order.
        calls: every call created, by SID.
    """

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.requests: list[RestRequest] = []
        self.calls: dict[str, FakeCall] = {}
        self.player: CallPlayer | None = None
        self._failures: dict[str, list[RestFailure]] = {"create": [], "update": []}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- life ------------------------------------------------------------------------------

    async def start(self) -> FakeTwilioRest:
        """Listen on 127.0.0.1 (a free port); :attr:`url` is then the API base URL."""
        app = web.Application()
        prefix = _API.format(account="{account}")
        app.router.add_post(prefix + "/Calls.json", self._create)
        app.router.add_post(prefix + "/Calls/{sid}.json", self._update)
        app.router.add_get(prefix + "/Calls/{sid}.json", self._fetch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        """Stop playing calls and listening."""
        if self.player is not None:
            await self.player.close()
            await self.player.simulator.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTwilioRest:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def connect_voicehost(
        self, base_url: str, *, public_url: str | None = None, speed: float = math.inf
    ) -> TwilioSimulator:
        """Play the created calls against the voicehost server at ``base_url`` whose
        ``[server] public_url`` is ``public_url`` (default ``base_url``): webhooks and
        callbacks are signed with this account's auth token over the public URLs.

        Returns:
            The simulator used (its streams play audio ``speed`` times real time).
        """
        simulator = TwilioSimulator(
            base_url,
            auth_token=self.auth_token,
            account_sid=self.account_sid,
            public_url=public_url,
            speed=speed,
        )
        self.player = CallPlayer(simulator)
        return simulator

    # --- driving calls ---------------------------------------------------------------------

    def call(self, sid: str) -> FakeCall:
        """The call ``sid``.

        Raises:
            KeyError: no such call.
        """
        return self.calls[sid]

    @property
    def last_call(self) -> FakeCall:
        """The call created last.

        Raises:
            AssertionError: none yet.
        """
        if not self.calls:
            raise AssertionError("no call was created")
        return list(self.calls.values())[-1]

    def _player(self) -> CallPlayer:
        if self.player is None:
            raise AssertionError("call connect_voicehost() first")
        return self.player

    async def ring(self, sid: str) -> FakeCall:
        """``initiated`` + ``ringing`` status callbacks of a queued call."""
        call = self.call(sid)
        await self._player().ring(call)
        return call

    async def answer(self, sid: str, *, answered_by: str | None = None) -> AnsweredCall:
        """The callee answers: see :meth:`CallPlayer.answer`."""
        return await self._player().answer(self.call(sid), answered_by)

    async def finish(self, sid: str, status: str = "completed") -> FakeCall:
        """The call ends on Twilio's side with ``status`` (``completed``: the callee hung
        up; ``busy``, ``no-answer``, ``failed``, ``canceled``): its stream is stopped and the
        final status callback posted."""
        call = self.call(sid)
        await self._player().end(call, status)
        return call

    async def request_twiml(self, sid: str) -> WebhookReply:
        """POST the call's voice webhook again (as Twilio would not: a replay) and return
        the answer without playing it."""
        return await self._player().webhook(self.call(sid))

    async def gather(
        self, sid: str, *, speech: str | None = None, digits: str | None = None
    ) -> WebhookReply:
        """The caller answers the call's ``<Gather>``: see :meth:`CallPlayer.gather`."""
        return await self._player().gather(self.call(sid), speech=speech, digits=digits)

    async def settled(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait for what follows REST requests (callbacks, stream stops) to finish."""
        if self.player is not None:
            await self.player.settled(timeout)

    def fail_next(
        self, kind: str = "create", code: int = 21211, *, status: int = 400, message: str = ""
    ) -> None:
        """Make the next ``create`` (or ``update``) request fail with Twilio error ``code``
        (after authentication)."""
        if kind not in self._failures:
            raise ValueError("kind must be 'create' or 'update'")
        self._failures[kind].append(
            RestFailure(status, code, message or f"Simulated Twilio error {code}")
        )

    # --- HTTP ------------------------------------------------------------------------------

    async def _record(self, request: web.Request, status: int) -> None:
        form: MultiDict[str] = MultiDict()
        if request.method == "POST":
            form = MultiDict(await request.post())  # type: ignore[arg-type]
        self.requests.append(
            RestRequest(
                request.method, request.path, form, _basic_auth(request), request.headers, status
            )
        )

    async def _handle(self, request: web.Request, kind: str) -> web.Response:
        try:
            self._authenticate(request)
            form = MultiDict(await request.post()) if request.method == "POST" else MultiDict()
            if self._failures.get(kind):
                raise self._failures[kind].pop(0)
            status, body = self._dispatch(kind, request.match_info.get("sid", ""), form)
        except RestFailure as failure:
            await self._record(request, failure.status)
            return failure.response()
        await self._record(request, status)
        return web.json_response(body, status=status)

    async def _create(self, request: web.Request) -> web.Response:
        return await self._handle(request, "create")

    async def _update(self, request: web.Request) -> web.Response:
        return await self._handle(request, "update")

    async def _fetch(self, request: web.Request) -> web.Response:
        return await self._handle(request, "fetch")

    def _authenticate(self, request: web.Request) -> None:
        auth = _basic_auth(request)
        if auth is None or auth != (self.account_sid, self.auth_token):
            raise RestFailure(401, 20003, "Authenticate")
        if request.match_info["account"] != self.account_sid:
            raise RestFailure(404, 20404, f"The requested resource {request.path} was not found")

    def _dispatch(self, kind: str, sid: str, form: MultiDict[str]) -> tuple[int, dict[str, Any]]:
        if kind == "create":
            call = self._new_call(form)
            self.calls[call.sid] = call
            return 201, call.to_json()
        call = self.calls.get(sid)
        if call is None:
            raise RestFailure(
                404, 20404, f"The requested resource /Calls/{sid[:40]}.json was not found"
            )
        if kind == "update":
            self._apply_update(call, form)
        return 200, call.to_json()

    def _new_call(self, form: MultiDict[str]) -> FakeCall:
        to, from_ = form.get("To"), form.get("From")
        if not to:
            raise RestFailure(400, 21201, "No 'To' number is specified")
        if not is_call_target(to):
            raise RestFailure(400, 21211, f"Invalid 'To' Phone Number: {to[:40]}")
        if not from_:
            raise RestFailure(400, 21603, "A 'From' phone number is required.")
        if not (is_e164(from_) or (is_call_target(from_) and from_.startswith("client:"))):
            raise RestFailure(400, 21212, f"Invalid 'From' Phone Number: {from_[:40]}")
        sources = [key for key in ("Url", "Twiml", "ApplicationSid") if form.get(key)]
        if len(sources) != 1:
            raise RestFailure(400, 21205, "Exactly one of Url, Twiml or ApplicationSid is required")
        url = form.get("Url", "")
        if url and not _http_url(url):
            raise RestFailure(400, 21205, f"Url is not a valid URL: {url[:60]}")
        twiml = form.get("Twiml", "")
        if twiml:
            _check_twiml(twiml)
        callback = form.get("StatusCallback", "")
        if callback and not _http_url(callback):
            raise RestFailure(400, 21609, f"Invalid StatusCallback URL: {callback[:60]}")
        events = form.getall("StatusCallbackEvent", [])
        if any(event not in _EVENTS for event in events):
            raise RestFailure(400, 21626, f"Invalid StatusCallbackEvent values: {events}")
        for key in ("Method", "StatusCallbackMethod"):
            if key in form and form[key].upper() not in _METHODS:
                raise RestFailure(400, 20001, f"{key} must be GET or POST")
        timeout = form.get("Timeout", "60")
        if not (timeout.isascii() and timeout.isdigit() and 1 <= int(timeout) <= 600):
            raise RestFailure(400, 20001, f"Timeout must be a whole number 1-600: {timeout!r}")
        detection = form.get("MachineDetection", "")
        if detection and detection not in _DETECTION:
            raise RestFailure(400, 20001, f"Invalid MachineDetection: {detection!r}")
        return FakeCall(
            sid="CA" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            url=url,
            method=form.get("Method", "POST").upper(),
            twiml=twiml,
            application_sid=form.get("ApplicationSid", ""),
            status_callback=callback,
            status_callback_events=tuple(events) if events else ("completed",),
            timeout=int(timeout),
            machine_detection=detection,
            form={key: form.getall(key) for key in form},
        )

    def _apply_update(self, call: FakeCall, form: MultiDict[str]) -> None:
        status, twiml, url = form.get("Status"), form.get("Twiml"), form.get("Url")
        if not (status or twiml or url):
            raise RestFailure(400, 20001, "Nothing to update: give Status, Twiml or Url")
        if status and status not in ("completed", "canceled"):
            raise RestFailure(400, 20001, f"Status must be completed or canceled: {status!r}")
        if twiml:
            _check_twiml(twiml)
        if url and not _http_url(url):
            raise RestFailure(400, 21205, f"Url is not a valid URL: {url[:60]}")
        if call.over:
            raise RestFailure(400, 21220, "Call is not in-progress. Cannot redirect.")
        call.updates.append(dict(form))
        player = self.player
        if status:  # canceled leaves a call in progress alone; completed ends any call
            ended = "canceled" if call.status in ("queued", "ringing") else None
            ended = ended or ("completed" if status == "completed" else None)
            if ended and call.finish_now(ended) and player is not None:
                player.spawn(player.after_end(call))
        elif call.status in ("queued", "ringing"):  # used when it is answered
            call.twiml, call.url = (twiml, "") if twiml else ("", url or call.url)
        elif player is not None:
            player.spawn(player.redirect(call, twiml=twiml, url=url))
        elif twiml:
            call.twimls.append(twiml)


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    """``(user, password)`` of an ``Authorization: Basic`` header, None when absent or
    unreadable."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parsed = yarl.URL(url)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def _check_twiml(twiml: str) -> None:
    """Raises RestFailure (12100) unless ``twiml`` is a well-formed ``<Response>`` document
    of at most 4000 characters (Twilio's limit on ``Twiml``)."""
    if len(twiml) > 4000:
        raise RestFailure(400, 21232, "Twiml is longer than 4000 characters")
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise RestFailure(400, 12100, f"Document parse failure: {exc}") from None
    if root.tag != "Response":
        raise RestFailure(400, 12100, f"Document root must be <Response>, not <{root.tag}>")
