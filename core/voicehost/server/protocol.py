"""Twilio Media Streams messages (wire-protocols.md §1.3, §1.4): parsing what Twilio sends and
building what voicehost sends back.

Inbound: ``connected``, ``start``, ``media``, ``dtmf``, ``mark``, ``stop`` (JSON text frames).
Outbound: ``media`` (base64 μ-law 8 kHz, no header), ``mark``, ``clear``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

__all__ = [
    "DTMF_DIGITS",
    "INBOUND_EVENTS",
    "MalformedMessage",
    "clear_message",
    "decode_payload",
    "dtmf_digit",
    "mark_message",
    "media_message",
    "parse_message",
    "sanitize_log_text",
    "valid_sid",
]

#: Events Twilio sends on a bidirectional stream.
INBOUND_EVENTS = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})

#: The keys a ``dtmf`` message may name: the 16 DTMF tones.
DTMF_DIGITS = frozenset("0123456789*#ABCD")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SPACE = re.compile(r"\s+")
_MAX_SID_CHARS = 64


class MalformedMessage(ValueError):
    """An inbound frame that is not a Twilio message.

    Attributes:
        kind: ``"json"`` (not a JSON object), ``"base64"`` (bad ``media.payload``),
            ``"unknown_event"``, ``"binary"`` (a binary frame) or ``"field"`` (a required
            field missing or of the wrong type).
        raw: the offending text, for a sanitised log line.
    """

    def __init__(self, kind: str, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.raw = raw


def sanitize_log_text(value: str, max_chars: int = 120) -> str:
    """Make untrusted text safe for one log line: control characters become spaces, lone
    surrogates (which no log handler can encode) become U+FFFD, runs of whitespace collapse,
    and the result is cut to ``max_chars`` characters (plus ``...``)."""
    text = _SPACE.sub(" ", _CONTROL.sub(" ", _SURROGATE.sub("\ufffd", value))).strip()
    return text if len(text) <= max_chars else text[:max_chars] + "..."


def valid_sid(value: object) -> bool:
    """True for a plausible Twilio id (``CA…``, ``MZ…``, ``AC…``): 1 to 64 ASCII letters and
    digits. Anything else is refused before it reaches a log line, a record or a key."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_SID_CHARS
        and value.isascii()
        and value.isalnum()
    )


def parse_message(raw: str) -> dict[str, Any]:
    """Parse one inbound text frame into a dict with a known ``event``.

    Raises:
        MalformedMessage: ``kind`` ``"json"`` or ``"unknown_event"``.
    """
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage("json", f"invalid JSON: {exc}", raw) from None
    if not isinstance(message, dict):
        raise MalformedMessage("json", "not a JSON object", raw)
    event = message.get("event")
    if not isinstance(event, str) or event not in INBOUND_EVENTS:
        raise MalformedMessage("unknown_event", f"unknown event {event!r}", raw)
    return message


def section(message: dict[str, Any], name: str) -> dict[str, Any]:
    """``message[name]`` as a dict (``{}`` when absent).

    Raises:
        MalformedMessage: ``kind="field"`` when present but not an object.
    """
    value = message.get(name, {})
    if not isinstance(value, dict):
        raise MalformedMessage("field", f"{name!r} is not an object", json.dumps(message)[:200])
    return value


def decode_payload(payload: object) -> bytes:
    """Decode a ``media.payload`` (standard base64 of raw μ-law bytes).

    Raises:
        MalformedMessage: ``kind="base64"`` when it is not a non-empty valid base64 string.
    """
    if not isinstance(payload, str) or not payload:
        raise MalformedMessage("base64", "media.payload missing or not a string", str(payload))
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage("base64", "media.payload is not valid base64", payload) from None


def dtmf_digit(message: dict[str, Any], raw: str = "") -> str:
    """The key of a ``dtmf`` message: one of ``0``-``9``, ``*``, ``#``, ``A``-``D``
    (``raw``: the frame's text, kept for the log line).

    Raises:
        MalformedMessage: ``kind="field"`` for anything else (missing, not a string, more
            than one character, a lone surrogate…): it never reaches the application.
    """
    digit = section(message, "dtmf").get("digit")
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        shown = digit[:20] if isinstance(digit, str) else digit
        raise MalformedMessage("field", f"dtmf.digit {shown!r} is not a DTMF key", raw)
    return digit


def media_message(stream_sid: str, ulaw: bytes) -> str:
    """An outbound ``media`` message carrying ``ulaw`` (μ-law 8 kHz mono, usually 160 bytes)."""
    payload = base64.b64encode(ulaw).decode("ascii")
    return (
        '{"event":"media","streamSid":'
        + json.dumps(stream_sid)
        + ',"media":{"payload":"'
        + (payload + '"}}')
    )


def mark_message(stream_sid: str, name: str) -> str:
    """An outbound ``mark``; Twilio echoes it when the audio sent before it has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """An outbound ``clear``: Twilio drops its buffered audio and echoes every pending mark."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
