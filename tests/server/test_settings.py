"""The [server] and [twilio] tables (typed, parsed by the config layer), stream tokens,
protocol helpers."""

from __future__ import annotations

import json

import pytest

from voicehost.config import Settings, parse_settings_table
from voicehost.config_model import parse_table
from voicehost.errors import ConfigError
from voicehost.server import ServerSettings, TwilioSettings
from voicehost.server.protocol import (
    MalformedMessage,
    decode_payload,
    dtmf_digit,
    media_message,
    parse_message,
    sanitize_log_text,
    valid_sid,
)
from voicehost.server.tokens import StreamTokens, TokenRejected


def _tables(
    server: dict, twilio: dict, environ: dict[str, str]
) -> tuple[ServerSettings, TwilioSettings]:
    """Both tables of one plugins.toml document, as ``voicehost serve`` reads them."""
    doc = Settings.from_dict({"server": server, "twilio": twilio}, environ=environ)
    return (
        parse_settings_table(doc, ServerSettings, "server"),
        parse_settings_table(doc, TwilioSettings, "twilio"),
    )


def test_tables_build_settings_and_twilio_env_defaults():
    s, t = _tables(
        {"public_url": "https://bot.example.com/", "playback_lead_ms": 60, "barge_in": False},
        {},
        environ={"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "secret"},
    )
    assert s.public_url == "https://bot.example.com"
    assert s.stream_url == "wss://bot.example.com/voice/stream"
    assert (s.playback_lead_ms, s.barge_in) == (60, False)
    assert (t.account_sid, t.auth_token) == ("AC1", "secret")
    assert t.verify_signatures
    assert "secret" not in repr(t)


def test_twilio_env_defaults_are_optional():
    """``${TWILIO_AUTH_TOKEN:-}``: an unset variable leaves the key empty, no error."""
    _, t = _tables({}, {}, environ={})
    assert (t.account_sid, t.auth_token) == ("", "")
    assert not t.verify_signatures
    _, t = _tables({}, {"auth_token": "${TWILIO_AUTH_TOKEN:-}"}, environ={})
    assert t.auth_token == ""
    _, t = _tables({}, {"auth_token": "${MY_TOKEN}"}, environ={"MY_TOKEN": "mine"})
    assert t.auth_token == "mine" and t.verify_signatures


def test_twilio_table_wins_over_env_and_empty_token_disables_checks():
    _, t = _tables({}, {"auth_token": ""}, environ={"TWILIO_AUTH_TOKEN": "env"})
    assert t.auth_token == "" and not t.verify_signatures
    _, t = _tables({}, {"auth_token": "t", "skip_signature_verification": True}, environ={})
    assert not t.verify_signatures


def test_http_public_url_gives_a_ws_stream_url():
    s, _ = _tables({"public_url": "http://127.0.0.1:8080"}, {}, environ={})
    assert s.stream_url == "ws://127.0.0.1:8080/voice/stream"


def test_http_timeouts_are_typed_settings_with_defaults():
    s = ServerSettings()
    assert (s.request_header_timeout_s, s.request_body_timeout_s) == (10.0, 10.0)
    assert s.keepalive_timeout_s == 75.0
    s = parse_table(
        ServerSettings,
        {"request_header_timeout_s": 2, "request_body_timeout_s": 0.5},
        table="server",
    )
    assert (s.request_header_timeout_s, s.request_body_timeout_s) == (2.0, 0.5)


@pytest.mark.parametrize(
    ("server", "twilio", "match"),
    [
        (
            {"pubic_url": "https://x"},
            {},
            r"^plugins.toml: \[server\] pubic_url: unknown key \(did you mean 'public_url'\?\)$",
        ),
        ({}, {"token": "x"}, r"^plugins.toml: \[twilio\] token: unknown key"),
        ({"auth_token": "x"}, {}, r"^plugins.toml: \[server\] auth_token: unknown key$"),
        ({"public_url": "ftp://x"}, {}, r"\[server\] public_url: must be an http\(s\) URL"),
        ({"webhook_path": "voice"}, {}, r"\[server\] webhook_path: must start with '/'"),
        ({"max_connections": 0}, {}, r"\[server\] max_connections: must be greater than 0"),
        ({"pre_start_timeout_ms": "5000"}, {}, r"pre_start_timeout_ms: .*not '5000'"),
        ({"barge_in": "yes"}, {}, r"\[server\] barge_in: must be a valid boolean"),
        ({}, {"skip_signature_verification": 1}, r"\[twilio\] skip_signature_verification"),
        ({"request_body_timeout_s": 0}, {}, r"request_body_timeout_s: must be greater than 0"),
        ({"request_header_timeout_s": -1}, {}, r"request_header_timeout_s: must be greater"),
    ],
)
def test_bad_tables_are_config_errors(server, twilio, match):
    with pytest.raises(ConfigError, match=match):
        _tables(server, twilio, environ={})


def test_every_problem_of_a_table_is_reported_once():
    with pytest.raises(ConfigError) as exc:
        parse_table(ServerSettings, {"max_connections": 0, "barge_in": "yes"}, table="server")
    assert exc.value.problems == [
        "plugins.toml: [server] max_connections: must be greater than 0, not 0",
        "plugins.toml: [server] barge_in: must be a valid boolean, not 'yes'",
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_single_use_and_expire():
    clock = Clock()
    tokens = StreamTokens(ttl_s=30, clock=clock)
    token = tokens.issue("CA1")
    assert len(token) == 22
    tokens.consume("CA1", token)
    with pytest.raises(TokenRejected) as exc:
        tokens.consume("CA1", token)
    assert exc.value.reason == "unknown"

    token = tokens.issue("CA2")
    with pytest.raises(TokenRejected, match="mismatch"):
        tokens.consume("CA2", token[:-1] + ("A" if token[-1] != "A" else "B"))
    with pytest.raises(TokenRejected, match="mismatch"):
        tokens.consume("CA2", token + "x")  # different length, still no exception leak
    with pytest.raises(TokenRejected, match="missing"):
        tokens.consume("CA2", None)
    clock.now = 30.5
    with pytest.raises(TokenRejected, match="expired"):
        tokens.consume("CA2", token)
    with pytest.raises(TokenRejected, match="unknown"):
        tokens.consume("CA3", "whatever")


def test_expired_tokens_are_purged_and_revoked_ones_forgotten():
    clock = Clock()
    tokens = StreamTokens(ttl_s=1, clock=clock)
    tokens.issue("CA1")
    tokens.issue("CA2")
    tokens.revoke("CA2")
    assert len(tokens) == 1
    clock.now = 2
    assert len(tokens) == 0


def test_sanitize_log_text():
    assert sanitize_log_text("a\x00b\x1b[31m  c\n\td") == "a b [31m c d"
    long = sanitize_log_text("x" * 500)
    assert long == "x" * 120 + "..."


def test_parse_message_kinds():
    with pytest.raises(MalformedMessage) as exc:
        parse_message("{")
    assert exc.value.kind == "json"
    with pytest.raises(MalformedMessage) as exc:
        parse_message('"just a string"')
    assert exc.value.kind == "json"
    with pytest.raises(MalformedMessage) as exc:
        parse_message('{"event": "clear"}')  # outbound-only event
    assert exc.value.kind == "unknown_event"
    assert parse_message('{"event": "stop"}') == {"event": "stop"}


def test_decode_payload():
    assert decode_payload("AAEC") == b"\x00\x01\x02"
    for bad in ("", "AA=A", "@@@@", None, 5):
        with pytest.raises(MalformedMessage) as exc:
            decode_payload(bad)
        assert exc.value.kind == "base64"


def test_media_message_escapes_the_stream_sid():
    message = json.loads(media_message('MZ"x', b"\xff\xfe"))
    assert message == {"event": "media", "streamSid": 'MZ"x', "media": {"payload": "//4="}}


def test_sanitize_log_text_replaces_lone_surrogates():
    text = sanitize_log_text("a\ud800b\udfffc")
    assert text == "a\ufffdb\ufffdc"
    text.encode("utf-8")  # what a log handler does: no UnicodeEncodeError


@pytest.mark.parametrize("digit", [*"0123456789*#ABCD"])
def test_dtmf_digits_are_the_sixteen_keys(digit):
    assert dtmf_digit({"event": "dtmf", "dtmf": {"digit": digit}}) == digit


@pytest.mark.parametrize(
    "digit", ["", "\ud800", "1" * 20_000, "12", "a", "E", " 1", None, 1, ["1"]]
)
def test_dtmf_digit_outside_the_keys_is_malformed(digit):
    with pytest.raises(MalformedMessage) as exc:
        dtmf_digit({"event": "dtmf", "dtmf": {"digit": digit}})
    assert exc.value.kind == "field"
    assert len(str(exc.value)) < 100
    str(exc.value).encode("utf-8")


def test_valid_sid():
    assert valid_sid("CA" + "0" * 32)
    for bad in ("", "CA-1", "CA\ud800", "CAé", "x" * 65, None, 5):
        assert not valid_sid(bad)
