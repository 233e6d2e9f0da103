"""Twilio's HTTP side: the signed voice webhook (answers TwiML) and call status callbacks.

Signatures (wire-protocols.md §1.6) are checked with
:class:`twilio.request_validator.RequestValidator` over ``public_url + path + query`` and the
form parameters: the URL Twilio requested, rebuilt from configuration and never from the
``Host`` header, so a TLS-terminating proxy in front of voicehost does not break them (and a
forged ``Host`` cannot make a signature valid). A missing or wrong signature gets 403 and
nothing else happens.

The body is checked before it is decoded, and what a client sends never ends in a 500:

=====  ===================================================================================
403    signature checks are on and ``X-Twilio-Signature`` is missing (answered before the
       body is read), or it does not match; or the form names another account
415    ``Content-Type`` is not ``application/x-www-form-urlencoded``, or its ``charset`` is
       not UTF-8 (Twilio sends this type, UTF-8); multipart and JSON bodies are refused
400    the body is not UTF-8, a ``%XX`` escape decodes to invalid UTF-8, more than
       200 fields, or ``CallSid`` is missing or not a Twilio id (ASCII letters and digits)
409    (voice webhook) the call already has a live stream, here or on another instance:
       a replayed webhook gets no second token (see :func:`handle_voice_webhook`)
503    (voice webhook) the server is draining
=====  ===================================================================================

Body size and read time are bounded for every route by :mod:`voicehost.server.http`
(413 over the app's ``client_max_size``, 408 when it does not arrive in
``request_body_timeout_s``).

The voice webhook answers (``twilio.twiml.voice_response``)::

    <Response><Connect><Stream url="wss://…/voice/stream">
        <Parameter name="token" value="…"/></Stream></Connect></Response>

with a fresh single-use stream token (see :mod:`voicehost.server.tokens`). Nothing follows
``</Connect>``, so the call ends when voicehost closes the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from voicehost.server.events import REJECTED, TERMINAL_STATUSES, CallEvent, event_from_status
from voicehost.server.live_state import CallRecord
from voicehost.server.protocol import sanitize_log_text, valid_sid
from voicehost.server.settings import ServerSettings, TwilioSettings
from voicehost.server.state import SERVER_KEY, CallServer
from voicehost.server.twiml import (
    AFTER_STREAM,
    GATHER,
    NOTIFY_PARAM,
    STEP_PARAM,
    empty_twiml,
    hangup_twiml,
    notify_twiml,
    reject_twiml,
    say_gather_twiml,
    stream_twiml,
)

log = logging.getLogger(__name__)

__all__ = [
    "FORM_CONTENT_TYPE",
    "handle_status_callback",
    "handle_voice_webhook",
    "public_request_url",
    "read_form",
]

#: The only body type a Twilio webhook is accepted in.
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_MAX_FORM_FIELDS = 200


def public_request_url(settings: ServerSettings, request: web.Request) -> str:
    """The URL Twilio requested: ``public_url`` + the raw (still percent-encoded) path and
    query of ``request``."""
    url = settings.public_url + request.rel_url.raw_path
    query = request.rel_url.raw_query_string
    return f"{url}?{query}" if query else url


def signature_ok(
    settings: ServerSettings,
    twilio: TwilioSettings,
    request: web.Request,
    form: Mapping[str, Any],
) -> bool:
    """True when ``X-Twilio-Signature`` is valid for this request, or checks are off (then
    a warning is logged for every request when ``skip_signature_verification`` is set)."""
    if not twilio.verify_signatures:
        if twilio.skip_signature_verification:
            log.warning(
                "webhook signature NOT verified (skip_signature_verification = true): %s",
                request.rel_url.path,
            )
        return True
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        log.warning("webhook %s without X-Twilio-Signature: 403", request.rel_url.path)
        return False
    url = public_request_url(settings, request)
    if not RequestValidator(twilio.auth_token).validate(url, form, signature):
        log.warning(
            "webhook %s with a bad X-Twilio-Signature (checked over %s): 403",
            request.rel_url.path,
            url,
        )
        return False
    return True


async def read_form(request: web.Request) -> MultiDict[str]:
    """The request's form, checked before it is decoded: the type must be
    ``application/x-www-form-urlencoded`` with no ``charset`` or a UTF-8 one, the bytes and
    every ``%XX`` escape valid UTF-8, at most 200 fields.

    Raises:
        web.HTTPUnsupportedMediaType: 415, another type or charset.
        web.HTTPBadRequest: 400, the body does not decode.
    """
    charset = request.charset  # a tuple for an RFC 2231 ``charset*=`` parameter
    if request.content_type != FORM_CONTENT_TYPE or (
        charset is not None and (not isinstance(charset, str) or charset.lower() not in _UTF8_NAMES)
    ):
        log.warning(
            "webhook %s from %s with Content-Type %s: 415",
            request.rel_url.path,
            request.remote,
            sanitize_log_text(request.headers.get("Content-Type", "(none)"), 80),
        )
        raise web.HTTPUnsupportedMediaType(text=f"Expected {FORM_CONTENT_TYPE}; charset=utf-8\n")
    body = await request.read()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError as exc:  # UnicodeDecodeError is a ValueError, so is too many fields
        log.warning(
            "webhook %s from %s: undecodable form (%s): 400",
            request.rel_url.path,
            request.remote,
            sanitize_log_text(str(exc), 120),
        )
        raise web.HTTPBadRequest(text="Malformed form body\n") from None
    return MultiDict(pairs)


async def _verified_form(server: CallServer, request: web.Request) -> MultiDict[str]:
    """The form of a webhook whose signature is valid (or not checked) and whose account is
    ours; see the module's table of answers."""
    if server.twilio.verify_signatures and not request.headers.get("X-Twilio-Signature"):
        log.warning("webhook %s without X-Twilio-Signature: 403", request.rel_url.path)
        raise web.HTTPForbidden(text="Invalid Twilio signature\n")
    form = await read_form(request)
    if not signature_ok(server.settings, server.twilio, request, form):
        raise web.HTTPForbidden(text="Invalid Twilio signature\n")
    expected = server.twilio.account_sid
    account = form.get("AccountSid")
    if expected and account and account != expected:
        log.warning("webhook for another account %s: 403", sanitize_log_text(account, 64))
        raise web.HTTPForbidden(text="Unknown account\n")
    return form


def _call_sid(form: Mapping[str, Any]) -> str:
    call_sid = form.get("CallSid")
    if not valid_sid(call_sid):
        raise web.HTTPBadRequest(text="Missing or malformed CallSid\n")
    assert isinstance(call_sid, str)
    return call_sid


def _twiml(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/xml")


async def handle_voice_webhook(request: web.Request) -> web.StreamResponse:
    """``POST webhook_path``: verify, then answer the TwiML for where the call stands.

    ==========================================  ==============================================
    the request                                 the answer
    ==========================================  ==============================================
    ``CallStatus`` completed / busy / failed /  ``<Response/>``: no stream, no token
    no-answer / canceled
    an inbound caller refused by                ``<Reject/>``; logged, ``ended`` event with
    ``allowed_callers`` / ``blocked_callers``   reason ``rejected``
    ``?notify=<message>`` (a notify call)       ``<Say>message</Say><Hangup/>`` the first
                                                time for the call, ``<Response/>`` after
    an outbound call not yet ``in-progress``    ``<Response/>``
    ``?step=after-stream`` (the stream ended    ``<Hangup/>``; the ``<Say>``/``<Gather>``
    or never connected)                         fallback when it never carried the call
    ``?step=gather`` (a ``<Gather>`` result)    its ``SpeechResult`` / ``Digits`` go to the
                                                call; ``<Gather>`` again
    any other call                              ``<Connect><Stream>`` with a fresh token
    ==========================================  ==============================================

    403: missing or wrong signature, other account. 415 / 400: a body that is not a UTF-8
    form, no ``CallSid``. 503: draining. 409: the call already has a live stream.

    Why 409 for a live call: Twilio asks the voice webhook once per call, and the only way
    it asks again for the same ``CallSid`` is a REST redirect of the call, which stops the
    call's ``<Connect><Stream>`` first. A request for a call whose stream is still live is
    therefore a replay of a captured signed request (signatures carry no nonce or time), and
    answering it with TwiML would hand out a second stream token for the call (one record,
    two greetings). The 409 issues no token, changes no state, and Twilio, were it ever the
    sender, treats it as an application error of that one request (error 11200; its
    fallback URL if one is set). A second ``start`` for a live call is also refused by the
    stream (close 1008), whichever instance it reaches.
    """
    server = request.app[SERVER_KEY]
    form = await _verified_form(server, request)
    call_sid = _call_sid(form)
    status = str(form.get("CallStatus", ""))
    direction = str(form.get("Direction", ""))
    step = request.query.get(STEP_PARAM, "")
    if step == GATHER:
        return await _gather_result(server, call_sid, form)
    if step == AFTER_STREAM:
        return await _after_stream(server, call_sid, form)
    if status in TERMINAL_STATUSES:
        log.info("call %s: webhook for a call that is %s: no stream", call_sid, status)
        await server.update_status(call_sid, status, form)
        return _twiml(empty_twiml())
    caller = str(form.get("From", ""))
    if not direction.startswith("outbound") and server.twilio.caller_refused(caller):
        log.warning(
            "call %s: caller %s refused: <Reject/>", call_sid, sanitize_log_text(caller, 32)
        )
        record = CallRecord.from_form(form)
        server.emit(CallEvent(call_sid, "ringing", direction=direction, from_=caller, to=record.to))
        server.emit(
            CallEvent(
                call_sid, "ended", reason=REJECTED, direction=direction, from_=caller, to=record.to
            )
        )
        return _twiml(reject_twiml())
    if server.draining:
        raise web.HTTPServiceUnavailable(text="Server is shutting down\n")
    notify = request.query.get(NOTIFY_PARAM)
    if notify is not None:
        return await _notify(server, call_sid, form, notify)
    if direction.startswith("outbound") and status != "in-progress":
        log.info("call %s: outbound call is %s, not answered: no stream yet", call_sid, status)
        _emit_progress(server, form)
        return _twiml(empty_twiml())
    token = await server.live.admit_call(CallRecord.from_form(form))
    if token is None:
        log.warning("call %s: webhook for a call whose stream is live (a replay?): 409", call_sid)
        raise web.HTTPConflict(text="Call already has a live stream\n")
    _emit_progress(server, form)
    log.info("call %s: webhook answered (%s)", call_sid, sanitize_log_text(status, 32))
    return _twiml(stream_twiml(server.settings.stream_url, token, server.control.webhook_url))


def _emit_progress(server: CallServer, form: Mapping[str, Any]) -> None:
    """The lifecycle event of a webhook's ``CallStatus`` (``ringing`` of an inbound call;
    ``answered`` with ``AnsweredBy`` of an outbound one)."""
    event = event_from_status(form)
    if event is not None and event.kind != "ended":
        server.emit(event)


async def _notify(
    server: CallServer, call_sid: str, form: Mapping[str, Any], message: str
) -> web.Response:
    """A notify call: its message once, then empty TwiML (as the seed's stored TwiML)."""
    if not message.strip() or not await server.live.claim_notify(call_sid):
        log.info("call %s: notify message already served: empty TwiML", call_sid)
        return _twiml(empty_twiml())
    await server.live.remember_call(CallRecord.from_form(form))
    _emit_progress(server, form)
    log.info("call %s: notify message served (%d characters)", call_sid, len(message))
    return _twiml(notify_twiml(message, voice=server.twilio.say_voice))


async def _after_stream(server: CallServer, call_sid: str, form: Mapping[str, Any]) -> web.Response:
    """Twilio ran the ``<Redirect>`` after ``<Connect><Stream>``: the stream ended or never
    connected. A call the stream carried (or ended on purpose) is hung up; one whose stream
    never started, or broke, goes on with ``<Say>``/``<Gather>`` when REST is configured."""
    record = await server.live.get_call(call_sid)
    live = call_sid in server.calls or await server.live.is_live(call_sid)
    broken = record is not None and record.stream_outcome in ("", "error")
    if live or not broken or server.rest is None or server.draining:
        if record is not None and not record.stream_outcome and not live:
            log.warning("call %s: the stream never connected; hanging up", call_sid)
        return _twiml(hangup_twiml())
    assert record is not None
    await server.live.revoke_token(call_sid)
    if not await server.claim_call(call_sid):
        return _twiml(hangup_twiml())
    why = "never connected" if not record.stream_outcome else "broke"
    log.warning("call %s: the stream %s; going on with <Say>/<Gather>", call_sid, why)
    server.start_stream_less_call(record)
    return _twiml(say_gather_twiml("", server.control.webhook_url, voice=server.twilio.say_voice))


async def _gather_result(
    server: CallServer, call_sid: str, form: Mapping[str, Any]
) -> web.Response:
    """A ``<Gather>`` result: hand ``SpeechResult`` / ``Digits`` to the stream-less call and
    keep listening; ``<Hangup/>`` for a call that is not (or no longer) live here."""
    call = server.calls.get(call_sid)
    if call is None or call.streaming or call.end_reason is not None:
        log.info("call %s: <Gather> result for a call not live here: <Hangup/>", call_sid)
        return _twiml(hangup_twiml())
    speech = sanitize_log_text(str(form.get("SpeechResult", "")), 2000)
    digits = "".join(ch for ch in str(form.get("Digits", "")) if ch in "0123456789*#")[:64]
    call.gathered(speech, digits)
    return _twiml(say_gather_twiml("", server.control.webhook_url, voice=server.twilio.say_voice))


async def handle_status_callback(request: web.Request) -> web.StreamResponse:
    """``POST status_path``: a signed call (or stream) status callback; updates the call's
    ``status`` and ends a live call whose status is terminal. 204 on success; 403 / 415 /
    400 as the voice webhook."""
    server = request.app[SERVER_KEY]
    form = await _verified_form(server, request)
    call_sid = _call_sid(form)
    stream_event = form.get("StreamEvent")
    if stream_event:
        log.info(
            "call %s: stream event %s %s",
            call_sid,
            sanitize_log_text(stream_event, 32),
            sanitize_log_text(form.get("StreamError", ""), 120),
        )
    status = form.get("CallStatus")
    if status:
        await server.update_status(call_sid, status, form)
    return web.Response(status=204)
