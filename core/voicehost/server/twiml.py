"""The TwiML voicehost answers and sends, built with ``twilio.twiml.voice_response``.

Every document is a ``<Response>`` (twilio.com/docs/voice/twiml):

* :func:`stream_twiml`: ``<Connect><Stream>`` with the stream token as a ``<Parameter>``,
  then ``<Redirect>`` to the webhook with ``step=after-stream``. ``<Connect>`` holds the call
  until the stream ends; Twilio then runs the next verb, so the redirect tells voicehost that
  the stream is over (or never connected): the webhook answers ``<Hangup/>``, or the
  ``<Say>``/``<Gather>`` fallback when the stream could not carry the call.
* :func:`notify_twiml`: ``<Say>message</Say><Hangup/>`` (notify calls).
* :func:`say_gather_twiml`: ``<Say>`` (when there is text) then ``<Gather input="speech
  dtmf">`` whose result is POSTed to the webhook with ``step=gather``; also posted when the
  caller said nothing (``actionOnEmptyResult``), so the call keeps listening.
* :func:`dial_twiml`: ``<Dial>`` to an E.164 number, a ``<Sip>`` URI or a ``<Client>``.
* :func:`play_digits_twiml`: ``<Play digits>`` (DTMF on a call without a stream) then
  ``<Gather>``.
* :func:`reject_twiml`, :func:`hangup_twiml`, :func:`empty_twiml`.
"""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

__all__ = [
    "AFTER_STREAM",
    "GATHER",
    "NOTIFY_PARAM",
    "STEP_PARAM",
    "dial_twiml",
    "empty_twiml",
    "hangup_twiml",
    "notify_twiml",
    "play_digits_twiml",
    "reject_twiml",
    "say_gather_twiml",
    "step_url",
    "stream_twiml",
]

#: The webhook query parameter that says which step of a call a request is.
STEP_PARAM = "step"
#: ``step`` of the request Twilio makes when a ``<Connect><Stream>`` ended or failed.
AFTER_STREAM = "after-stream"
#: ``step`` of a ``<Gather>`` result.
GATHER = "gather"
#: The webhook query parameter carrying a notify call's message (set by the dialer, inside
#: the URL Twilio signs).
NOTIFY_PARAM = "notify"


def step_url(webhook_url: str, step: str) -> str:
    """``webhook_url`` with ``?step=<step>`` (the webhook's public URL has no query)."""
    return f"{webhook_url}?{urlencode({STEP_PARAM: step})}"


def stream_twiml(stream_url: str, token: str, webhook_url: str | None = None) -> str:
    """``<Connect><Stream url>`` carrying ``token`` as a ``<Parameter>`` (Twilio strips query
    strings from stream URLs), then, with ``webhook_url``, a ``<Redirect>`` to its
    ``after-stream`` step."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    stream.parameter(name="token", value=token)
    response.append(connect)
    if webhook_url:
        response.redirect(step_url(webhook_url, AFTER_STREAM), method="POST")
    return str(response)


def _say(response: VoiceResponse, text: str, voice: str) -> None:
    if voice:
        response.say(text, voice=voice)
    else:
        response.say(text)


def notify_twiml(message: str, *, voice: str = "") -> str:
    """``<Say>message</Say><Hangup/>``."""
    response = VoiceResponse()
    _say(response, message, voice)
    response.hangup()
    return str(response)


def _gather(response: VoiceResponse, webhook_url: str) -> None:
    response.gather(
        input="speech dtmf",
        action=step_url(webhook_url, GATHER),
        method="POST",
        speech_timeout="auto",
        action_on_empty_result=True,
    )


def say_gather_twiml(text: str, webhook_url: str, *, voice: str = "") -> str:
    """``<Say>text</Say>`` (left out when ``text`` is blank), then ``<Gather input="speech
    dtmf" action="<webhook>?step=gather" speechTimeout="auto" actionOnEmptyResult="true">``."""
    response = VoiceResponse()
    if text.strip():
        _say(response, text, voice)
    _gather(response, webhook_url)
    return str(response)


def play_digits_twiml(digits: str, webhook_url: str) -> str:
    """``<Play digits>`` (``w`` = 0.5 s pause, as Twilio reads it) then ``<Gather>``."""
    response = VoiceResponse()
    response.play(digits=digits)
    _gather(response, webhook_url)
    return str(response)


def dial_twiml(target: str, *, caller_id: str = "") -> str:
    """``<Dial>`` to ``target``: ``<Sip>`` for a ``sip:``/``sips:`` URI, ``<Client>`` for a
    ``client:`` identity, the number itself otherwise (checked by the caller)."""
    response = VoiceResponse()
    dial = Dial(caller_id=caller_id) if caller_id else Dial()
    lowered = target.lower()
    if lowered.startswith(("sip:", "sips:")):
        dial.sip(target)
    elif lowered.startswith("client:"):
        dial.client(target.split(":", 1)[1])
    else:
        dial.number(target)
    response.append(dial)
    return str(response)


def reject_twiml() -> str:
    """``<Reject/>``: the call is refused without being answered (busy tone, not billed)."""
    response = VoiceResponse()
    response.reject()
    return str(response)


def hangup_twiml() -> str:
    """``<Hangup/>``."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def empty_twiml() -> str:
    """``<Response/>``: nothing to do (Twilio ends a call that has nothing left to run)."""
    return str(VoiceResponse())
