"""ServerSettings from plugins.toml tables, stream tokens, protocol helpers."""

from __future__ import annotations

import pytest

from voicehost.errors import ConfigError
from voicehost.server import ServerSettings
from voicehost.server.protocol import (
    MalformedMessage,
    decode_payload,
    media_message,
    parse_message,
    sanitize_log_text,
)
from voicehost.server.tokens import StreamTokens, TokenRejected


def test_tables_build_settings_and_twilio_env_defaults():
    s = ServerSettings.from_tables(
        {"public_url": "https://bot.example.com/", "playback_lead_ms": 60, "barge_in": False},
        {},
        environ={"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "secret"},
    )
    assert s.public_url == "https://bot.example.com"
    assert s.stream_url == "wss://bot.example.com/voice/stream"
    assert (s.playback_lead_ms, s.barge_in) == (60, False)
    assert (s.account_sid, s.auth_token) == ("AC1", "secret")
    assert s.verify_signatures
    assert "secret" not in repr(s)


def test_twilio_table_wins_over_env_and_empty_token_disables_checks():
    s = ServerSettings.from_tables({}, {"auth_token": ""}, environ={"TWILIO_AUTH_TOKEN": "env"})
    assert s.auth_token == "" and not s.verify_signatures
    s = ServerSettings.from_tables(
        {}, {"auth_token": "t", "skip_signature_verification": True}, environ={}
    )
    assert not s.verify_signatures


def test_http_public_url_gives_a_ws_stream_url():
    s = ServerSettings.from_tables({"public_url": "http://127.0.0.1:8080"}, {}, environ={})
    assert s.stream_url == "ws://127.0.0.1:8080/voice/stream"


@pytest.mark.parametrize(
    ("server", "twilio", "match"),
    [
        ({"pubic_url": "https://x"}, {}, "unknown key 'pubic_url'"),
        ({}, {"token": "x"}, r"\[twilio\]: unknown key 'token'"),
        ({"auth_token": "x"}, {}, "unknown key 'auth_token'"),
        ({"public_url": "ftp://x"}, {}, "http"),
        ({"webhook_path": "voice"}, {}, "must start with '/'"),
        ({"max_connections": 0}, {}, "max_connections must be > 0"),
        ({"pre_start_timeout_ms": "5000"}, {}, "pre_start_timeout_ms"),
        ({"barge_in": "yes"}, {}, "barge_in"),
        ({}, {"skip_signature_verification": 1}, "skip_signature_verification"),
    ],
)
def test_bad_tables_are_config_errors(server, twilio, match):
    with pytest.raises(ConfigError, match=match):
        ServerSettings.from_tables(server, twilio, environ={})


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
    import json

    message = json.loads(media_message('MZ"x', b"\xff\xfe"))
    assert message == {"event": "media", "streamSid": 'MZ"x', "media": {"payload": "//4="}}
