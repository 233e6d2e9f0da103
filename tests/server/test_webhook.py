"""The voice webhook and status callbacks: signatures, TwiML, tokens, call status."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from twilio.request_validator import RequestValidator

from voicehost.server.twiml import stream_twiml
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import parse_stream_twiml, random_sid

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://voice.example.test"


async def _webhook(sim, call_sid=None, **kwargs):
    params = sim.webhook_params(call_sid or random_sid("CA"))
    return params, await sim.post_form("/voice/webhook", params, **kwargs)


async def test_valid_signature_gets_connect_stream_twiml_with_a_token(harness):
    async with harness.simulator() as sim:
        params, reply = await _webhook(sim)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(reply.text)
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://voice.example.test/voice/stream"
    # after </Connect>: a redirect telling the webhook the stream is over (or never started)
    assert [child.tag for child in root] == ["Connect", "Redirect"]
    redirect = root.find("./Redirect")
    assert redirect.get("method") == "POST"
    assert redirect.text == "https://voice.example.test/voice/webhook?step=after-stream"
    _, stream_params = parse_stream_twiml(reply.text)
    token = stream_params["token"]
    assert len(token) == 22  # 16 random bytes, url-safe base64 without padding
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    record = await harness.live.get_call(params["CallSid"])
    assert (record.from_, record.to, record.direction) == (
        "+15005550006",
        "+15005550001",
        "inbound",
    )


async def test_each_webhook_issues_a_fresh_token(harness):
    async with harness.simulator() as sim:
        _, first = await _webhook(sim)
        _, second = await _webhook(sim)
    assert parse_stream_twiml(first.text)[1] != parse_stream_twiml(second.text)[1]


async def test_wrong_signature_is_403_and_nothing_happens(harness):
    async with harness.simulator() as sim:
        params, reply = await _webhook(sim, signature="bm90IGEgc2lnbmF0dXJl")
    assert reply.status == 403
    assert "Connect" not in reply.text
    assert await harness.live.get_call(params["CallSid"]) is None
    assert len(harness.live.tokens) == 0


async def test_missing_signature_is_403(harness):
    async with harness.simulator() as sim:
        _, reply = await _webhook(sim, signature=False)
    assert reply.status == 403
    assert len(harness.live.tokens) == 0


async def test_signature_from_another_token_is_403(harness):
    async with harness.simulator(auth_token="some-other-token") as sim:
        _, reply = await _webhook(sim)
    assert reply.status == 403


async def test_tampered_parameters_are_403(harness):
    async with harness.simulator() as sim:
        params = sim.webhook_params(random_sid("CA"))
        signature = sim.sign(PUBLIC_URL + "/voice/webhook", params)
        reply = await sim.post_form(
            "/voice/webhook", {**params, "From": "+19999999999"}, signature=signature
        )
    assert reply.status == 403


async def test_behind_a_proxy_the_host_header_is_ignored(harness):
    """The proxy forwards to 127.0.0.1 with its own Host: the signature over the public URL
    is valid, and one over the URL the server actually saw is not."""
    proxy_headers = {"Host": "internal-lb:8080", "X-Forwarded-Host": "evil.example"}
    async with harness.simulator() as sim:
        _, ok = await _webhook(sim, headers=proxy_headers)
        params = sim.webhook_params(random_sid("CA"))
        local_sig = sim.sign("http://internal-lb:8080/voice/webhook", params)
        bad = await sim.post_form(
            "/voice/webhook", params, signature=local_sig, headers=proxy_headers
        )
        seen_sig = sim.sign(harness.base_url + "/voice/webhook", params)
        bad_too = await sim.post_form("/voice/webhook", params, signature=seen_sig)
    assert ok.status == 200
    assert bad.status == 403
    assert bad_too.status == 403


async def test_query_string_is_part_of_the_signed_url(harness):
    async with harness.simulator() as sim:
        params = sim.webhook_params(random_sid("CA"))
        ok = await sim.post_form("/voice/webhook", params, query="tenant=a%20b&x=1")
        signed_without = sim.sign(PUBLIC_URL + "/voice/webhook", params)
        bad = await sim.post_form(
            "/voice/webhook", params, signature=signed_without, query="tenant=a%20b&x=1"
        )
    assert ok.status == 200
    assert bad.status == 403


async def test_twilio_test_vector_accepted():
    """wire-protocols.md §1.6 test vector, through the same validator the server uses."""
    v = RequestValidator("12345")
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert v.validate(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


async def test_other_account_is_403(make_server):
    h = await make_server(twilio={"auth_token": AUTH_TOKEN, "account_sid": "AC" + "1" * 32})
    async with h.simulator(account_sid="AC" + "2" * 32) as sim:
        _, reply = await _webhook(sim)
    assert reply.status == 403
    async with h.simulator(account_sid="AC" + "1" * 32) as sim:
        _, reply = await _webhook(sim)
    assert reply.status == 200


async def test_missing_call_sid_is_400(harness):
    async with harness.simulator() as sim:
        params = sim.webhook_params("x")
        del params["CallSid"]
        reply = await sim.post_form("/voice/webhook", params)
    assert reply.status == 400


async def test_skip_signature_verification_warns_at_startup_and_per_request(make_server, caplog):
    caplog.set_level(logging.WARNING)
    h = await make_server(twilio={"auth_token": AUTH_TOKEN, "skip_signature_verification": True})
    assert any("NOT checked" in r.getMessage() for r in caplog.records)
    caplog.clear()
    async with h.simulator() as sim:
        _, reply = await _webhook(sim, signature=False)
        _, reply2 = await _webhook(sim, signature="garbage")
    assert reply.status == reply2.status == 200
    warnings = [r for r in caplog.records if "NOT verified" in r.getMessage()]
    assert len(warnings) == 2


async def test_without_auth_token_signatures_are_not_checked(make_server):
    h = await make_server(twilio={})
    assert not h.twilio.verify_signatures
    async with h.simulator(auth_token=None) as sim:
        _, reply = await _webhook(sim, signature=False)
    assert reply.status == 200


async def test_status_callback_updates_the_call_state(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        live = h.server.calls[call.call_sid]
        reply = await sim.post_status(call.call_sid, "in-progress")
        assert reply.status == 204
        assert live.status == "in-progress"
        assert (await h.live.get_call(call.call_sid)).status == "in-progress"
        reply = await sim.post_status(call.call_sid, "completed", CallDuration="3")
        assert reply.status == 204
        assert await call.wait_closed() == 1000
        end = await handler.wait_for("end")
    assert end[2] == "caller-hangup"  # Twilio's completed while streaming
    assert live.status == "completed"
    assert call.call_sid not in h.server.calls


async def test_status_callback_before_the_stream_revokes_the_token(harness):
    async with harness.simulator() as sim:
        params, _ = await _webhook(sim)
        assert len(harness.live.tokens) == 1
        status = await sim.post_status(params["CallSid"], "no-answer")
        assert status.status == 204
        assert len(harness.live.tokens) == 0
        assert await harness.live.get_call(params["CallSid"]) is None


async def test_status_callback_needs_a_valid_signature(harness):
    async with harness.simulator(auth_token="wrong") as sim:
        reply = await sim.post_status(random_sid("CA"), "completed")
    assert reply.status == 403


def test_stream_twiml_shape():
    xml = stream_twiml("wss://h.example/voice/stream", "tok")
    assert xml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://h.example/voice/stream"><Parameter name="token" value="tok" />'
        "</Stream></Connect></Response>"
    )
