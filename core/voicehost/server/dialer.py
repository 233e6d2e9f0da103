"""Placing outbound calls: the one place ``voicehost call`` and ``POST /api/calls`` check
what they were asked and turn it into Twilio's ``Calls.json`` request (wire-protocols.md §1.7).

Every placed call gets

* ``Url`` = ``public_url + webhook_path``: when answered, Twilio POSTs the (signed) voice
  webhook there, which answers ``<Connect><Stream>`` in ``conversation`` mode;
* in ``notify`` mode the same URL with ``?notify=<message>`` (form-encoded, :data:`NOTIFY_PARAM`):
  the message rides in the signed webhook URL, so any instance (or the CLI process, which
  holds no call state) can place it; the webhook answers ``<Say>`` + ``<Hangup/>`` once per call;
* ``StatusCallback`` = ``public_url + status_path`` with every progress event
  (initiated, ringing, answered, completed), ``Timeout`` 30 s of ringing, and
  ``MachineDetection=DetectMessageEnd`` when asked (``AnsweredBy`` then reaches the webhook).
"""

from __future__ import annotations

import unicodedata
from typing import Literal
from urllib.parse import urlencode

import attrs

from voicehost.phone import is_call_target, is_e164
from voicehost.server.rest import DEFAULT_STATUS_EVENTS, RestCall, TwilioRest
from voicehost.server.settings import ServerSettings, TwilioSettings
from voicehost.server.twiml import NOTIFY_PARAM  # the webhook reads the message from it

__all__ = [
    "DIAL_MODES",
    "MACHINE_DETECTION",
    "MAX_NOTIFY_CHARS",
    "MAX_WEBHOOK_URL_CHARS",
    "NOTIFY_PARAM",
    "RING_TIMEOUT_S",
    "DialMode",
    "DialRequest",
    "check_notify_message",
    "dial_request",
    "place_call",
    "send_dial_request",
]

#: Longest notify message, characters.
MAX_NOTIFY_CHARS = 1000
#: Longest webhook URL a notify message may make (Twilio's URL limit is 4000 characters;
#: it also keeps the request line far below aiohttp's 8190-byte limit).
MAX_WEBHOOK_URL_CHARS = 4000
#: How long a placed call rings before Twilio gives up (``no-answer``), seconds.
RING_TIMEOUT_S = 30
#: ``MachineDetection`` of a call placed with machine detection on.
MACHINE_DETECTION = "DetectMessageEnd"

DialMode = Literal["conversation", "notify"]
DIAL_MODES: tuple[DialMode, ...] = ("conversation", "notify")


@attrs.frozen
class DialRequest:
    """A checked outbound call, ready for ``Calls.json``.

    Attributes:
        to / from_: callee (E.164, ``sip:`` or ``client:``) and caller ID.
        mode: ``conversation`` or ``notify``.
        message: the notify message (None in conversation mode).
        url: the voice webhook URL Twilio POSTs when the call is answered.
        status_callback: the status callback URL.
        machine_detection: ``DetectMessageEnd`` or None.
    """

    to: str
    from_: str
    mode: DialMode
    message: str | None
    url: str
    status_callback: str
    machine_detection: str | None


def dial_request(
    settings: ServerSettings,
    twilio: TwilioSettings,
    *,
    to: str,
    from_: str | None = None,
    mode: str = "conversation",
    message: str | None = None,
    machine_detection: bool = False,
) -> DialRequest:
    """Check an outbound call and build its request (no network).

    Args:
        settings: ``[server]`` (``public_url``, ``webhook_path``, ``status_path``).
        twilio: ``[twilio]`` (``from_number``, the default caller ID).
        to: whom to call: an E.164 number (``+15550001111``), a ``sip:`` URI or ``client:``.
        from_: the caller ID; None or ``""``: ``[twilio] from_number``.
        mode: ``conversation`` (the bot talks) or ``notify`` (``message`` is said, then the
            call hangs up).
        message: the notify message, 1 to :data:`MAX_NOTIFY_CHARS` characters.
        machine_detection: ask Twilio for answering-machine detection.

    Raises:
        ValueError: with a message saying what is wrong: ``to`` is not a call target, no
            caller ID, a caller ID that is not E.164 / ``client:``, an unknown mode, notify
            without a message, a message in conversation mode, a message too long or with
            control characters.
    """
    if not is_call_target(to):
        raise ValueError(
            "to must be an E.164 number such as +15550001111, a sip: URI or a client: "
            f"identity, not {_shown(to)}"
        )
    caller = from_ or twilio.from_number
    if not caller:
        raise ValueError(
            'no caller ID: give a from number (--from / "from") or set [twilio] from_number'
        )
    if not (is_e164(caller) or (is_call_target(caller) and caller.startswith("client:"))):
        raise ValueError(
            "from must be an E.164 number such as +15550001111 or a client: identity, "
            f"not {_shown(caller)}"
        )
    if mode not in DIAL_MODES:
        raise ValueError(f"mode must be 'conversation' or 'notify', not {str(mode)[:40]!r}")
    url = settings.public_url + settings.webhook_path
    if mode == "notify":
        text = check_notify_message(message)
        url = f"{url}?{urlencode({NOTIFY_PARAM: text})}"
        if len(url) > MAX_WEBHOOK_URL_CHARS:
            raise ValueError(
                f"the notify message makes a {len(url)}-character webhook URL (at most "
                f"{MAX_WEBHOOK_URL_CHARS}); shorten it"
            )
    else:
        if message is not None and message != "":
            raise ValueError("a message is only for notify mode")
        text = None
    return DialRequest(
        to=to,
        from_=caller,
        mode=mode,  # type: ignore[arg-type]  # checked against DIAL_MODES above
        message=text,
        url=url,
        status_callback=settings.public_url + settings.status_path,
        machine_detection=MACHINE_DETECTION if machine_detection else None,
    )


def _shown(value: object) -> str:
    """``value`` for an error message: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_notify_message(message: object) -> str:
    """``message`` stripped, when it is a sayable notify message.

    Raises:
        ValueError: missing or blank, longer than :data:`MAX_NOTIFY_CHARS`, or with control
            characters (other than tab and newline) or lone surrogates, which TwiML cannot
            carry.
    """
    if not isinstance(message, str) or not message.strip():
        raise ValueError("notify mode needs a message to say")
    text = message.strip()
    if len(text) > MAX_NOTIFY_CHARS:
        raise ValueError(
            f"the notify message is {len(text)} characters long; at most {MAX_NOTIFY_CHARS}"
        )
    for char in text:
        if char in "\t\n":
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"the notify message contains a control character (U+{ord(char):04X})")
    return text


async def place_call(
    rest: TwilioRest,
    settings: ServerSettings,
    twilio: TwilioSettings,
    *,
    to: str,
    from_: str | None = None,
    mode: str = "conversation",
    message: str | None = None,
    machine_detection: bool = False,
) -> RestCall:
    """Check the call (:func:`dial_request`) and place it through ``rest``.

    Returns:
        The created call (``sid``, ``status`` usually ``queued``).

    Raises:
        ValueError: as :func:`dial_request`; nothing was sent.
        TwilioRestError: Twilio refused (e.g. 21211) or was not reached.
    """
    request = dial_request(
        settings,
        twilio,
        to=to,
        from_=from_,
        mode=mode,
        message=message,
        machine_detection=machine_detection,
    )
    return await send_dial_request(rest, request)


async def send_dial_request(rest: TwilioRest, request: DialRequest) -> RestCall:
    """``Calls.json`` for a checked :class:`DialRequest`.

    Raises:
        TwilioRestError: Twilio refused or was not reached.
    """
    return await rest.create_call(
        to=request.to,
        from_=request.from_,
        url=request.url,
        status_callback=request.status_callback,
        status_callback_event=DEFAULT_STATUS_EVENTS,
        timeout_s=RING_TIMEOUT_S,
        machine_detection=request.machine_detection,
    )
