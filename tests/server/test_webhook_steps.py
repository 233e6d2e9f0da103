"""The voice webhook by where the call stands: terminal statuses, outbound calls, machine
detection, notify calls, the caller allow/block lists, the after-stream step and the
``<Say>``/``<Gather>`` fallback (its ``<Gather>`` results come back as caller turns)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest

from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import random_sid

EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'
HANGUP = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'


def tags(twiml: str) -> list[str]:
    return [child.tag for child in ET.fromstring(twiml)]


async def webhook(sim, call_sid=None, *, query="", **params):
    call_sid = call_sid or random_sid("CA")
    extra = {k: v for k, v in params.items() if k[0].isupper()}
    form = sim.webhook_params(
        call_sid,
        direction=params.get("direction", "inbound"),
        status=params.get("status", "ringing"),
        from_=params.get("from_", "+15005550006"),
        extra=extra,
    )
    return call_sid, await sim.post_form("/voice/webhook", form, query=query)


@pytest.mark.parametrize("status", ["completed", "busy", "failed", "no-answer", "canceled"])
async def test_a_call_that_is_over_gets_no_stream_and_no_token(harness, status):
    async with harness.simulator() as sim:
        _, reply = await webhook(sim, status=status)
    assert (reply.status, reply.text) == (200, EMPTY)
    assert len(harness.live.tokens) == 0


async def test_an_outbound_call_streams_only_once_answered(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call_sid, ringing = await webhook(sim, direction="outbound-api", status="ringing")
        assert ringing.text == EMPTY and len(h.live.tokens) == 0
        _, answered = await webhook(
            sim,
            call_sid,
            direction="outbound-api",
            status="in-progress",
            AnsweredBy="machine_end_beep",
        )
        assert tags(answered.text) == ["Connect", "Redirect"]
        assert len(h.live.tokens) == 1
        record = await h.live.get_call(call_sid)
        assert record.answered_by == "machine_end_beep"
        await asyncio.sleep(0.05)
    assert handler.lifecycle(call_sid) == [("ringing", ""), ("answered", "machine_end_beep")]


async def test_answered_by_reaches_the_call(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call(
            direction="outbound-api",
            extra_params={"AnsweredBy": "human", "CallStatus": "in-progress"},
        )
        await handler.wait_for("start")
        assert handler.calls[0].answered_by == "human"
        await call.stop()


async def test_notify_message_is_served_once(harness):
    query = urlencode({"notify": "Your table is ready"})
    async with harness.simulator() as sim:
        call_sid, first = await webhook(
            sim, query=query, direction="outbound-api", status="in-progress"
        )
        _, again = await webhook(
            sim, call_sid, query=query, direction="outbound-api", status="in-progress"
        )
    root = ET.fromstring(first.text)
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert root.find("Say").text == "Your table is ready"
    assert again.text == EMPTY
    assert len(harness.live.tokens) == 0  # never a stream


async def test_notify_query_is_covered_by_the_signature(harness):
    """The message rides in the URL Twilio signed: another message is a forgery (403)."""
    async with harness.simulator() as sim:
        form = sim.webhook_params(random_sid("CA"), direction="outbound-api", status="in-progress")
        signature = sim.sign(harness.settings.public_url + "/voice/webhook?notify=Hello", form)
        reply = await sim.post_form(
            "/voice/webhook", form, query="notify=Pay+now", signature=signature
        )
    assert reply.status == 403


@pytest.mark.parametrize(
    ("lists", "caller", "refused"),
    [
        ({"allowed_callers": ["+1555*"]}, "+16660001111", True),
        ({"allowed_callers": ["+1555*"]}, "+15550001111", False),
        ({"blocked_callers": ["+15550001111"]}, "+15550001111", True),
        ({"blocked_callers": ["+1900*"], "allowed_callers": ["*"]}, "+19005550000", True),
        ({"blocked_callers": ["+1900*"]}, "+15550001111", False),
    ],
)
async def test_allow_and_block_lists(make_server, lists, caller, refused):
    handler = RecordingHandler()
    h = await make_server(handler=handler, twilio={"auth_token": "t0k", **lists})
    async with h.simulator() as sim:
        call_sid, reply = await webhook(sim, from_=caller)
        await asyncio.sleep(0.05)
    if refused:
        assert tags(reply.text) == ["Reject"]
        assert len(h.live.tokens) == 0
        assert handler.lifecycle(call_sid) == [("ringing", ""), ("ended", "rejected")]
    else:
        assert tags(reply.text) == ["Connect", "Redirect"]


async def test_after_a_streamed_call_the_redirect_hangs_up(make_server):
    class HangUpAtStart(RecordingHandler):
        async def on_call_start(self, call):
            await super().on_call_start(call)
            await call.hangup()

    handler = HangUpAtStart()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("end")
        reply = await sim.post_form(
            "/voice/webhook",
            sim.webhook_params(call.call_sid, status="in-progress"),
            query="step=after-stream",
        )
    assert reply.text == HANGUP


async def test_a_stream_that_never_connected_hangs_up_without_rest(harness):
    async with harness.simulator() as sim:
        call_sid, _ = await webhook(sim)
        reply = await sim.post_form(
            "/voice/webhook",
            sim.webhook_params(call_sid, status="in-progress"),
            query="step=after-stream",
        )
    assert reply.text == HANGUP


async def test_a_gather_result_for_an_unknown_call_hangs_up(harness):
    async with harness.simulator() as sim:
        form = sim.webhook_params(random_sid("CA"), extra={"SpeechResult": "hello"})
        reply = await sim.post_form("/voice/webhook", form, query="step=gather")
    assert reply.text == HANGUP


class Echo(RecordingHandler):
    """Greets, and answers each transcript or key with a sentence."""

    async def on_transcript(self, call, text):
        await super().on_transcript(call, text)
        await call.say(f"You said {text}.")

    async def on_dtmf(self, call, digit):
        await super().on_dtmf(call, digit)
        await call.hangup()


def said(update) -> tuple[str | None, list[str]]:
    """``(the <Say> text, the verbs)`` of a REST update's TwiML."""
    root = ET.fromstring(update[2])
    say = root.find("Say")
    return (say.text if say is not None else None), [c.tag for c in root]


async def test_a_stream_that_never_connected_goes_on_with_say_and_gather(make_server, rest_fake):
    rest = rest_fake()
    handler = Echo(greeting="Hello there.")
    h = await make_server(handler=handler, rest=rest)
    async with h.simulator() as sim:
        call_sid, _ = await webhook(sim)
        reply = await sim.post_form(
            "/voice/webhook",
            sim.webhook_params(call_sid, status="in-progress"),
            query="step=after-stream",
        )
        assert tags(reply.text) == ["Gather"]
        gather = ET.fromstring(reply.text).find("Gather")
        assert gather.get("input") == "speech dtmf"
        assert gather.get("action") == "https://voice.example.test/voice/webhook?step=gather"
        await handler.wait_for("start")
        h.server.calls[call_sid].playback.words_per_second = 1000.0
        await _until(lambda: rest.updates)
        assert said(rest.updates[0]) == ("Hello there.", ["Say", "Gather"])
        # the caller's words come back as a <Gather> result: a final transcript
        form = sim.webhook_params(
            call_sid, status="in-progress", extra={"SpeechResult": "opening hours"}
        )
        turn = await sim.post_form("/voice/webhook", form, query="step=gather")
        assert tags(turn.text) == ["Gather"]
        assert (await handler.wait_for("final"))[2] == "opening hours"
        await _until(lambda: len(rest.updates) > 1)
        assert said(rest.updates[1]) == ("You said opening hours.", ["Say", "Gather"])
        # keys: the handler hangs up, over REST (there is no stream to close)
        form = sim.webhook_params(call_sid, status="in-progress", extra={"Digits": "42#"})
        await sim.post_form("/voice/webhook", form, query="step=gather")
        assert (await handler.wait_for("dtmf"))[2] == "42#"
        assert (await handler.wait_for("end"))[2] == "bot-hangup"
    assert rest.hangups == [call_sid]
    assert [k for k, _ in handler.lifecycle(call_sid)] == ["ringing", "answered", "ended"]


async def test_when_the_tts_cannot_start_the_call_moves_to_say_and_gather(make_server, rest_fake):
    rest = rest_fake()
    handler = Echo(greeting="Welcome to the demo line.")
    h = await make_server(handler=handler, rest=rest, tts_config={"fail_after_chunks": 0})
    async with h.simulator() as sim:
        call = await sim.start_call()
        await _until(lambda: rest.updates)
        assert said(rest.updates[0]) == ("Welcome to the demo line.", ["Say", "Gather"])
        await call.stop()  # Twilio stops the stream when the TwiML is replaced
        await asyncio.sleep(0.05)
        assert call.call_sid in h.server.calls and "end" not in handler.names()
        form = sim.webhook_params(call.call_sid, status="in-progress", extra={"SpeechResult": "hi"})
        await sim.post_form("/voice/webhook", form, query="step=gather")
        assert (await handler.wait_for("final"))[2] == "hi"
        await sim.post_status(call.call_sid, "completed")
        assert (await handler.wait_for("end"))[2] == "caller-hangup"
    assert not h.server.calls


async def test_a_stream_less_call_nobody_asks_about_ends_as_idle(make_server, rest_fake):
    handler = RecordingHandler()
    h = await make_server(handler=handler, rest=rest_fake(), stream_idle_timeout_s=0.3)
    async with h.simulator() as sim:
        call_sid, _ = await webhook(sim)
        await sim.post_form(
            "/voice/webhook",
            sim.webhook_params(call_sid, status="in-progress"),
            query="step=after-stream",
        )
        assert (await handler.wait_for("end"))[2] == "idle"


async def test_status_callbacks_become_lifecycle_events(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    call_sid = random_sid("CA")
    async with h.simulator() as sim:
        for status in ("queued", "initiated", "ringing", "busy", "completed"):
            reply = await sim.post_status(call_sid, status, Direction="outbound-api")
            assert reply.status == 204
        await asyncio.sleep(0.05)
    assert handler.lifecycle(call_sid) == [("initiated", ""), ("ringing", ""), ("ended", "busy")]
    assert handler.call_events[-1].direction == "outbound-api"


async def _until(predicate, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async def wait() -> None:
        while not predicate():  # noqa: ASYNC110 - polling what a fake recorded
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


class SaysThreeSentences(RecordingHandler):
    """Greets with three replies queued at once, as the conversation queues sentences."""

    async def on_call_start(self, call):
        await super().on_call_start(call)
        replies = [call.say(text) for text in ("One two.", "Three four.", "Five six.")]
        statuses = []
        for reply in replies:
            try:
                statuses.append(str(await reply))
            except Exception as exc:  # the first one: the TTS failed
                statuses.append(type(exc).__name__)
        self._add("greeted", call.call_sid, statuses)


async def test_replies_queued_behind_a_failed_tts_are_said_in_order(
    make_server, rest_fake, monkeypatch
):
    monkeypatch.setattr("voicehost.server.call_control.WORDS_PER_SECOND", 1000.0)
    rest = rest_fake()
    handler = SaysThreeSentences()
    h = await make_server(handler=handler, rest=rest, tts_config={"fail_after_chunks": 0})
    async with h.simulator() as sim:
        call = await sim.start_call()
        greeted = await handler.wait_for("greeted")
        await call.stop()
    # the failed first reply is said by the fallback, the two queued behind it follow it
    assert [said(update)[0] for update in rest.updates] == ["One two.", "Three four.", "Five six."]
    assert greeted[2][1:] == ["ReplyStatus.PLAYED", "ReplyStatus.PLAYED"]
