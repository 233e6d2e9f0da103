"""Outbound call requests: what ``voicehost call`` and ``POST /api/calls`` accept, the URLs
they hand Twilio (the notify message inside the signed webhook URL), the JSON body checks of
the route, and the access rule shared with ``GET /api/calls``."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from voicehost.server import ServerSettings, TwilioSettings
from voicehost.server.access import access_refusal
from voicehost.server.dial_api import MAX_DIAL_BODY_BYTES, DialBodyError, parse_dial_body
from voicehost.server.dialer import (
    MACHINE_DETECTION,
    MAX_NOTIFY_CHARS,
    NOTIFY_PARAM,
    dial_request,
)

SERVER = ServerSettings(public_url="https://voice.example.test/bot")
TWILIO = TwilioSettings(account_sid="AC1", auth_token="t", from_number="+15550002222")


def test_conversation_call_urls_and_defaults():
    dial = dial_request(SERVER, TWILIO, to="+15550001111")
    assert dial.url == "https://voice.example.test/bot/voice/webhook"
    assert dial.status_callback == "https://voice.example.test/bot/voice/status"
    assert (dial.from_, dial.mode, dial.message, dial.machine_detection) == (
        "+15550002222",
        "conversation",
        None,
        None,
    )
    assert (
        dial_request(SERVER, TWILIO, to="+15550001111", machine_detection=True).machine_detection
        == MACHINE_DETECTION
    )


@pytest.mark.parametrize(
    "message",
    ["Your table is ready", "a&b=c+d%20 e?f#g", "Ünïcødé ✓ 你好", "line one\nline two"],
)
def test_notify_message_rides_in_the_webhook_url_exactly(message):
    dial = dial_request(SERVER, TWILIO, to="+15550001111", mode="notify", message=message)
    parts = urlsplit(dial.url)
    assert parts.path == "/bot/voice/webhook"
    assert parse_qs(parts.query) == {NOTIFY_PARAM: [message]}


def test_notify_message_is_stripped():
    dial = dial_request(SERVER, TWILIO, to="+15550001111", mode="notify", message="  hi  ")
    assert dial.message == "hi"


def test_explicit_from_wins_and_client_identities_are_callers():
    assert dial_request(SERVER, TWILIO, to="+1555", from_="+15550009999").from_ == "+15550009999"
    assert dial_request(SERVER, TWILIO, to="client:alice", from_="client:bot").from_ == "client:bot"
    assert dial_request(SERVER, TWILIO, to="sip:a@example.com").to == "sip:a@example.com"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"to": "5550001111"}, "to must be an E.164 number"),
        ({"to": "+1 555 000 1111"}, "to must be an E.164 number"),
        ({"to": "+0555"}, "to must be an E.164 number"),
        ({"to": ""}, "to must be an E.164 number"),
        ({"to": "+1" * 600}, "to must be an E.164 number"),
        ({"to": "+15550001111", "from_": "5550002222"}, "from must be an E.164 number"),
        ({"to": "+15550001111", "from_": "sip:bot@example.com"}, "from must be an E.164"),
        ({"to": "+15550001111", "mode": "robocall"}, "mode must be"),
        ({"to": "+15550001111", "mode": "notify"}, "notify mode needs a message"),
        ({"to": "+15550001111", "mode": "notify", "message": "   "}, "needs a message"),
        ({"to": "+15550001111", "message": "hello"}, "only for notify mode"),
        (
            {"to": "+15550001111", "mode": "notify", "message": "x" * (MAX_NOTIFY_CHARS + 1)},
            "at most 1000",
        ),
        ({"to": "+15550001111", "mode": "notify", "message": "a\x00b"}, "control character"),
        ({"to": "+15550001111", "mode": "notify", "message": "a\x1bb"}, "control character"),
        ({"to": "+15550001111", "mode": "notify", "message": "\ud800"}, "control character"),
        ({"to": "+15550001111", "mode": "notify", "message": "你" * 500}, "shorten it"),
    ],
)
def test_bad_requests_say_what_is_wrong(kwargs, error):
    with pytest.raises(ValueError, match=error):
        dial_request(SERVER, TWILIO, **kwargs)


def test_no_caller_id_anywhere():
    with pytest.raises(ValueError, match=r"no caller ID.*from_number"):
        dial_request(SERVER, TwilioSettings(), to="+15550001111")


def test_error_messages_cut_long_input():
    with pytest.raises(ValueError) as caught:
        dial_request(SERVER, TWILIO, to="x" * 5000)
    assert len(str(caught.value)) < 200


# --- the JSON body of POST /api/calls ----------------------------------------------------------


def _parse(body: object, content_type: str = "application/json", charset: object = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_dial_body(content_type, charset, raw)


def test_body_fields_are_returned_checked():
    assert _parse({"to": "+1555"}) == {"to": "+1555"}
    full = {
        "to": "+1555",
        "from": "+1666",
        "mode": "notify",
        "message": "hi",
        "machine_detection": True,
    }
    assert _parse(full) == full
    assert _parse({"to": "+1555", "mode": None, "from": None}) == {"to": "+1555", "from": None}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", 400, "not valid UTF-8 JSON"),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid UTF-8 JSON"),
        (["+1555"], 400, "must be a JSON object"),
        ("+1555", 400, "must be a JSON object"),
        ({}, 400, '"to" is required'),
        ({"to": 15550001111}, 400, '"to" must be a string'),
        ({"to": "+1555", "from": 1}, 400, '"from" must be a string'),
        ({"to": "+1555", "mode": ["notify"]}, 400, '"mode" must be a string'),
        ({"to": "+1555", "message": {"say": "x"}}, 400, '"message" must be a string'),
        ({"to": "+1555", "machine_detection": "yes"}, 400, "true or false"),
        ({"to": "+1555", "machine_detection": 1}, 400, "true or false"),
        ({"to": "+1555", "To": "+1666"}, 400, "unknown field"),
        ({"to": "+1555", "twiml": "<Response/>"}, 400, "unknown field"),
        (b" " * (MAX_DIAL_BODY_BYTES + 1), 413, "over 16384 bytes"),
    ],
)
def test_hostile_bodies_are_refused(body, status, error):
    with pytest.raises(DialBodyError, match=error) as caught:
        _parse(body)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        ("application/x-www-form-urlencoded", None),
        ("text/plain", None),
        ("multipart/form-data", None),
        ("application/json", "latin-1"),
        ("application/json", ("utf-8", "en", "x")),
    ],
)
def test_only_utf8_json_is_accepted(content_type, charset):
    with pytest.raises(DialBodyError) as caught:
        _parse({"to": "+1555"}, content_type, charset)
    assert caught.value.status == 415


def test_access_rule_is_the_records_rule():
    assert access_refusal("127.0.0.1", "", "") is None
    assert access_refusal("::1", "", "") is None
    for remote in ("203.0.113.9", None, "not-an-ip"):
        refused = access_refusal(remote, "", "", what="calls are placed")
        assert refused is not None and refused.status == 403
        assert "calls are placed to loopback clients only" in refused.text
    assert access_refusal("203.0.113.9", "Bearer tok", "tok") is None
    assert access_refusal("127.0.0.1", "Bearer nope", "tok").status == 401
    assert access_refusal("127.0.0.1", "", "tok").status == 401
    assert access_refusal("127.0.0.1", "Bearer tök", "tok").status == 401
