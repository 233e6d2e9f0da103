"""Twilio's HTTP side: the signed voice webhook (answers TwiML) and call status callbacks.

Signatures (wire-protocols.md §1.6) are checked with
:class:`twilio.request_validator.RequestValidator` over ``public_url + path + query`` and the
form parameters: the URL Twilio requested, rebuilt from configuration and never from the
``Host`` header, so a TLS-terminating proxy in front of voicehost does not break them (and a
forged ``Host`` cannot make a signature valid). A missing or wrong signature gets 403 and
nothing else happens.

The voice webhook answers (``twilio.twiml.voice_response``)::

    <Response><Connect><Stream url="wss://…/voice/stream">
        <Parameter name="token" value="…"/></Stream></Connect></Response>

with a fresh single-use stream token (see :mod:`voicehost.server.tokens`). Nothing follows
``</Connect>``, so the call ends when voicehost closes the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

if TYPE_CHECKING:
    from voicehost.server.app import CallServer
    from voicehost.server.settings import ServerSettings

log = logging.getLogger(__name__)

__all__ = ["handle_status_callback", "handle_voice_webhook", "public_request_url", "stream_twiml"]

#: ``CallStatus`` values after which a call is over.
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


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


def signature_ok(settings: ServerSettings, request: web.Request, form: Mapping[str, Any]) -> bool:
    """True when ``X-Twilio-Signature`` is valid for this request, or checks are off (then
    a warning is logged for every request when ``skip_signature_verification`` is set)."""
    if not settings.verify_signatures:
        if settings.skip_signature_verification:
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
    if not RequestValidator(settings.auth_token).validate(url, form, signature):
        log.warning(
            "webhook %s with a bad X-Twilio-Signature (checked over %s): 403",
            request.rel_url.path,
            url,
        )
        return False
    return True


async def _verified_form(server: CallServer, request: web.Request) -> Mapping[str, Any]:
    form = await request.post()
    if not signature_ok(server.settings, request, form):
        raise web.HTTPForbidden(text="Invalid Twilio signature\n")
    expected = server.settings.account_sid
    account = form.get("AccountSid")
    if expected and account and account != expected:
        log.warning("webhook for another account %s: 403", account)
        raise web.HTTPForbidden(text="Unknown account\n")
    return form


async def handle_voice_webhook(request: web.Request) -> web.StreamResponse:
    """``POST webhook_path``: verify, remember the call, answer ``<Connect><Stream>`` TwiML.

    403: missing or wrong signature, other account. 400: no ``CallSid``. 503: draining.
    """
    from voicehost.server.app import SERVER_KEY

    server = request.app[SERVER_KEY]
    form = await _verified_form(server, request)
    call_sid = form.get("CallSid")
    if not isinstance(call_sid, str) or not call_sid:
        raise web.HTTPBadRequest(text="Missing CallSid\n")
    if server.draining:
        raise web.HTTPServiceUnavailable(text="Server is shutting down\n")
    server.remember_call(form)
    token = server.tokens.issue(call_sid)
    log.info("call %s: webhook answered (%s)", call_sid, form.get("CallStatus", ""))
    return web.Response(
        text=stream_twiml(server.settings.stream_url, token), content_type="application/xml"
    )


async def handle_status_callback(request: web.Request) -> web.StreamResponse:
    """``POST status_path``: a signed call (or stream) status callback; updates the call's
    ``status`` and ends a live call whose status is terminal. 204 on success."""
    from voicehost.server.app import SERVER_KEY

    server = request.app[SERVER_KEY]
    form = await _verified_form(server, request)
    call_sid = form.get("CallSid")
    if not isinstance(call_sid, str) or not call_sid:
        raise web.HTTPBadRequest(text="Missing CallSid\n")
    stream_event = form.get("StreamEvent")
    if stream_event:
        log.info("call %s: stream event %s %s", call_sid, stream_event, form.get("StreamError", ""))
    status = form.get("CallStatus")
    if isinstance(status, str) and status:
        server.update_status(call_sid, status)
    return web.Response(status=204)
