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
from twilio.twiml.voice_response import Connect, VoiceResponse

from voicehost.server.live_state import CallRecord
from voicehost.server.protocol import sanitize_log_text, valid_sid
from voicehost.server.settings import ServerSettings, TwilioSettings
from voicehost.server.state import SERVER_KEY, CallServer

log = logging.getLogger(__name__)

__all__ = [
    "FORM_CONTENT_TYPE",
    "handle_status_callback",
    "handle_voice_webhook",
    "public_request_url",
    "read_form",
    "stream_twiml",
]

#: The only body type a Twilio webhook is accepted in.
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_MAX_FORM_FIELDS = 200


def stream_twiml(stream_url: str, token: str) -> str:
    """TwiML connecting the call to ``stream_url`` with the stream token as a ``<Parameter>``
    (Twilio strips query strings from stream URLs)."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    stream.parameter(name="token", value=token)
    response.append(connect)
    return str(response)


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


async def handle_voice_webhook(request: web.Request) -> web.StreamResponse:
    """``POST webhook_path``: verify, remember the call, answer ``<Connect><Stream>`` TwiML.

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
    if server.draining:
        raise web.HTTPServiceUnavailable(text="Server is shutting down\n")
    if await server.live.is_live(call_sid):
        log.warning("call %s: webhook for a call whose stream is live (a replay?): 409", call_sid)
        raise web.HTTPConflict(text="Call already has a live stream\n")
    await server.live.remember_call(CallRecord.from_form(form))
    token = await server.live.issue_token(call_sid)
    log.info(
        "call %s: webhook answered (%s)",
        call_sid,
        sanitize_log_text(form.get("CallStatus", ""), 32),
    )
    return web.Response(
        text=stream_twiml(server.settings.stream_url, token), content_type="application/xml"
    )


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
        await server.update_status(call_sid, status)
    return web.Response(status=204)
