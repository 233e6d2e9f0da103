"""The ``openai`` responder end to end: the app ``voicehost serve`` runs (fake STT/TTS
providers, records), the Twilio simulator on the line, the fake Chat Completions server as
the model, the fake Twilio REST API for transfers (:mod:`openai_call_rig`).

* Streaming into speech: the first sentence reaches the TTS while the model's HTTP response
  is still open; a barge-in closes it (the fake sees the client go away) and the history the
  next request carries, like the record, holds only the sentences the caller heard; a key
  press reaches the model as ``[pressed 1]``.
* Each built-in tool: ``hangup`` ends the call once the reply has played (end reason
  ``bot-hangup``); ``send_dtmf`` keys decode back from the audio sent to Twilio;
  ``transfer`` reaches Twilio's REST API as ``<Dial>`` TwiML (only to a configured target).
* A Python tool a plugin registers (``register_tools``) and a webhook tool (a local aiohttp
  endpoint), their calls and results in the record and in the next request's history.
* Errors heard through the call: a refused key (apology, ``auth_failures``, one ERROR log),
  a 500 retried once (then the apology), a time-out, a stream broken mid-reply (its text
  kept, no apology).
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_chat import ChatPlan, FakeOpenAIChat, ToolCallPlan
from openai_call_rig import BOT_NUMBER, CALLEE, MS_PER_CHAR, Line, start_line, stop_line, until

from voicehost import CallContext, Tool, hookimpl
from voicehost.dtmf import detect_dtmf
from voicehost.testing.twilio import SimulatedCall

APOLOGY = "Sorry, I cannot answer that right now."  # one sentence: one reply
TARGETS = {"sales": "+15550003333"}

MakeLine = Callable[..., Any]


@pytest.fixture
async def make_line(chat_fake: FakeOpenAIChat, tmp_path) -> AsyncIterator[MakeLine]:
    """``await make_line(plugins=(), **[responder.openai] keys)`` → a running :class:`Line`."""
    made: list[Line] = []

    async def make(**keys: Any) -> Line:
        line = await start_line(chat_fake, tmp_path / f"calls{len(made)}.db", **keys)
        made.append(line)
        return line

    yield make
    for line in made:
        await stop_line(line)


def reply_mark(number: int) -> Callable[[dict[str, Any]], bool]:
    """Matches the ``mark`` event of reply ``number`` (1-based, per call)."""
    return lambda event: event["mark"]["name"] == f"reply-{number}"


def messages_of(chat: FakeOpenAIChat, request: int) -> list[dict[str, Any]]:
    """The ``messages`` of the ``request``-th request (0-based), the system prompt left out."""
    return chat.requests[request].body["messages"][1:]


async def hang_up(call: SimulatedCall) -> None:
    """The caller hangs up (if the bot has not)."""
    if call.close_code is None:
        await call.stop()


# --- streaming into speech -------------------------------------------------------------------


async def test_the_first_sentence_is_at_the_tts_while_the_completion_is_open(make_line):
    line = await make_line(greeting="Hello, how can I help?")
    chat = line.chat
    call, stt = await line.inbound()
    await call.wait_for_event("mark", where=reply_mark(1))
    chat.push(ChatPlan(text=("We open at nine. ", "We close at five."), hold_after_chunks=2))
    stt.final("when are you open")
    await until(lambda: len(line.said()) == 2)
    await call.wait_for_audio(len(call.received_audio) + 160)  # its audio is on the line
    request = chat.requests[0]
    assert line.said() == ["Hello, how can I help?", "We open at nine."]
    assert request.chunks_sent == 2  # the model has said no more than the first sentence
    assert not request.completed and not request.disconnected
    chat.release()
    await call.wait_for_event("mark", where=reply_mark(3))
    assert line.said()[2:] == ["We close at five."]
    assert request.completed
    # What the model was asked: the call, the greeting heard, the caller's words.
    system = request.body["messages"][0]["content"]
    assert "This is an inbound phone call from +15005550006 to +15005550001." in system
    assert messages_of(chat, 0) == [
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "when are you open"},
    ]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("bot", "greeting", "Hello, how can I help?"),
        ("caller", "final", "when are you open"),
        ("bot", "reply", "We open at nine. We close at five."),
    ]


async def test_barge_in_closes_the_http_stream_and_keeps_only_what_was_heard(make_line):
    line = await make_line()
    chat = line.chat
    long_one = "Three is a long sentence that goes on and on " * 6 + "to the end. "
    chat.push(
        ChatPlan(text=("One. ", "Two. ", long_one, "Four."), hold_after_chunks=4),
        ChatPlan(text=("Okay.",)),
    )
    call, stt = await line.inbound()
    stt.final("tell me a story")
    await until(lambda: len(line.said()) == 3)
    await call.wait_for(lambda: {"reply-1", "reply-2"} <= set(call.echoed_marks))
    heard = len(call.received_audio)
    await call.wait_for_audio(heard + 8 * 300)  # 300 ms of the long sentence played
    assert not chat.requests[0].completed  # the model is still "writing"
    stt.speech_start()  # the caller talks over the bot
    await call.wait_for_event("clear")
    cut = await chat.wait_disconnect()
    assert cut is chat.requests[0] and not cut.completed
    stt.final("what")
    await call.wait_for_event("mark", where=reply_mark(4))  # reply-3 was cut off: no mark
    assert line.said() == ["One.", "Two.", long_one.strip(), "Okay."]
    # The next request carries the reply as the caller heard it.
    assert messages_of(chat, 1) == [
        {"role": "user", "content": "tell me a story"},
        {"role": "assistant", "content": "One. Two."},
        {"role": "user", "content": "what"},
    ]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("caller", "final", "tell me a story"),
        ("bot", "reply", "One. Two."),
        ("event", "barge_in", "reply cut off"),
        ("caller", "final", "what"),
        ("bot", "reply", "Okay."),
    ]


async def test_a_key_press_is_answered_and_kept_in_the_history(make_line):
    line = await make_line()
    chat = line.chat
    chat.push(ChatPlan(text=("You chose sales.",)), ChatPlan(text=("Sales is open now.",)))
    call, stt = await line.inbound()
    await call.dtmf("1")
    await call.wait_for_event("mark", where=reply_mark(1))
    assert messages_of(chat, 0) == [{"role": "user", "content": "[pressed 1]"}]
    stt.final("is it open")
    await call.wait_for_event("mark", where=reply_mark(2))
    assert messages_of(chat, 1) == [
        {"role": "user", "content": "[pressed 1]"},
        {"role": "assistant", "content": "You chose sales."},
        {"role": "user", "content": "is it open"},
    ]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("event", "dtmf", "1"),
        ("bot", "reply", "You chose sales."),
        ("caller", "final", "is it open"),
        ("bot", "reply", "Sales is open now."),
    ]


# --- built-in tools ----------------------------------------------------------------------------


async def test_hangup_ends_the_call_after_the_goodbye_has_played(make_line):
    line = await make_line()
    goodbye = "Thanks for calling, goodbye."
    line.chat.push(
        ChatPlan(text=(goodbye,), tool_calls=(ToolCallPlan("hangup", '{"reason": "goodbye"}'),))
    )
    call, stt = await line.inbound()
    stt.final("that is all, bye")
    await call.wait_closed(timeout=15)
    # Every frame of the goodbye went out and Twilio played it (mark echoed) first.
    audio = line.fakes.tts.audio_for(goodbye, line.fakes.tts.config_class(ms_per_char=MS_PER_CHAR))
    assert len(call.received_audio) == -(-len(audio) // 160) * 160
    assert call.echoed_marks == ["reply-1"]
    record = await line.record(call.call_sid)
    assert record["end_reason"] == "bot-hangup"
    assert [(t["role"], t["kind"], t["text"]) for t in record["turns"]] == [
        ("caller", "final", "that is all, bye"),
        ("bot", "reply", goodbye),
        ("event", "tool_call", 'hangup({"reason": "goodbye"})'),
        ("event", "tool_result", '{"ok": true}'),
    ]
    assert len(line.chat.requests) == 1  # nothing is asked after a hang-up


async def test_send_dtmf_keys_decode_back_from_the_audio_sent_to_twilio(make_line):
    line = await make_line(tools=["hangup", "send_dtmf"])
    chat = line.chat
    chat.push(
        ChatPlan(
            text=("One moment.",), tool_calls=(ToolCallPlan("send_dtmf", '{"digits": "1234#"}'),)
        ),
        ChatPlan(text=("I pressed the keys.",)),
    )
    call, stt = await line.inbound()
    stt.final("press one two three four pound")
    await call.wait_for_event("mark", where=reply_mark(3))  # speech, keys, speech
    assert detect_dtmf(bytes(call.received_audio)) == "1234#"
    assert line.said() == ["One moment.", "I pressed the keys."]
    assert "send_dtmf" in chat.requests[0].body["messages"][0]["content"]  # the IVR guidance
    assert messages_of(chat, 1)[-2:] == [
        {
            "role": "assistant",
            "content": "One moment.",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "send_dtmf", "arguments": '{"digits": "1234#"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '{"sent": "1234#"}'},
    ]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("caller", "final", "press one two three four pound"),
        ("bot", "reply", "One moment."),
        ("event", "send_dtmf", "1234#"),
        ("event", "tool_call", 'send_dtmf({"digits": "1234#"})'),
        ("event", "tool_result", '{"sent": "1234#"}'),
        ("bot", "reply", "I pressed the keys."),
    ]


async def test_transfer_dials_a_configured_target_through_twilios_rest_api(make_line):
    line = await make_line(tools=["hangup", "transfer"], transfer_targets=TARGETS)
    chat = line.chat
    chat.push(
        ChatPlan(tool_calls=(ToolCallPlan("transfer", '{"to": "billing"}'),), text=()),
        ChatPlan(
            tool_calls=(ToolCallPlan("transfer", '{"to": "sales"}', id="call_s"),),
            text=("Let me put you through to sales.",),
        ),
    )
    call, stt = await line.outbound()
    stt.final("can I talk to someone in billing or sales")
    await call.wait_closed(timeout=15)
    await line.rest.settled()
    placed = line.rest.call(call.call_sid)
    dial = ET.fromstring(placed.twimls[-1])
    assert [child.tag for child in dial] == ["Dial"]
    assert dial.findtext("Dial/Number") == TARGETS["sales"]
    assert placed.updates[-1]["Twiml"] == placed.twimls[-1]
    system = chat.requests[0].body["messages"][0]["content"]
    assert f"an outbound phone call that you placed from {BOT_NUMBER} to {CALLEE}" in system
    # "billing" is no target: the model is told so and tries again.
    refused = json.loads(messages_of(chat, 1)[-1]["content"])
    assert "'billing' is not a transfer target" in refused["error"]
    assert line.said() == [
        "Let me put you through to sales.",
        "Please hold while I transfer your call.",
    ]
    record = await line.record(call.call_sid)
    assert record["end_reason"] == "transferred"
    turns = [(t["role"], t["kind"], t["text"]) for t in record["turns"]]
    assert turns == [
        ("caller", "final", "can I talk to someone in billing or sales"),
        ("event", "tool_call", 'transfer({"to": "billing"})'),
        ("event", "tool_result", "error: " + messages_of(chat, 1)[-1]["content"]),
        ("bot", "reply", "Let me put you through to sales."),
        ("event", "tool_call", 'transfer({"to": "sales"})'),
        ("event", "tool_result", '{"transferring_to": "sales"}'),
        ("event", "transfer", TARGETS["sales"]),
    ]


# --- plugin and webhook tools ------------------------------------------------------------------


class HoursPlugin:
    """A plugin registering the ``get_hours`` tool; notes each call it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[CallContext, dict[str, Any]]] = []

    @hookimpl
    def register_tools(self, register: Callable[[Tool], None]) -> None:
        async def get_hours(call: CallContext, arguments: dict[str, Any]) -> Any:
            self.seen.append((call, arguments))
            return {"day": arguments.get("day"), "open": "09:00", "close": "17:00"}

        schema = {"type": "object", "properties": {"day": {"type": "string"}}}
        register(Tool("get_hours", "Opening hours on a day.", schema, get_hours))


async def test_a_tool_registered_by_a_plugin_runs_and_is_recorded(make_line):
    plugin = HoursPlugin()
    line = await make_line(plugins=(plugin,), tools=["hangup", "get_hours"])
    chat = line.chat
    result = '{"day": "monday", "open": "09:00", "close": "17:00"}'
    chat.push(
        ChatPlan(
            tool_calls=(ToolCallPlan("get_hours", '{"day": "monday"}', id="call_h"),), text=()
        ),
        ChatPlan(text=("On Monday we open at nine.",)),
        ChatPlan(text=("You are welcome.",)),
    )
    call, stt = await line.inbound()
    stt.final("are you open on monday")
    await call.wait_for_event("mark", where=reply_mark(1))
    [(context, arguments)] = plugin.seen
    assert arguments == {"day": "monday"}
    assert (context.call_sid, context.from_number, context.direction) == (
        call.call_sid,
        "+15005550006",
        "inbound",
    )
    offered = [tool["function"]["name"] for tool in chat.requests[0].body["tools"]]
    assert offered == ["hangup", "get_hours"]
    stt.final("thanks")
    await call.wait_for_event("mark", where=reply_mark(2))
    # The call's history, sent with the next turn, holds the tool call and its result.
    tool_call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_h",
                "type": "function",
                "function": {"name": "get_hours", "arguments": '{"day": "monday"}'},
            }
        ],
    }
    assert messages_of(chat, 2) == [
        {"role": "user", "content": "are you open on monday"},
        tool_call,
        {"role": "tool", "tool_call_id": "call_h", "content": result},
        {"role": "assistant", "content": "On Monday we open at nine."},
        {"role": "user", "content": "thanks"},
    ]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("caller", "final", "are you open on monday"),
        ("event", "tool_call", 'get_hours({"day": "monday"})'),
        ("event", "tool_result", result),
        ("bot", "reply", "On Monday we open at nine."),
        ("caller", "final", "thanks"),
        ("bot", "reply", "You are welcome."),
    ]


@pytest.fixture
async def booking_service() -> AsyncIterator[tuple[str, list[tuple[dict, Any]]]]:
    """A webhook tool's service on 127.0.0.1: ``(url, [(headers, body) of each POST])``."""
    posts: list[tuple[dict, Any]] = []

    async def book(request: web.Request) -> web.Response:
        posts.append((dict(request.headers), await request.json()))
        return web.json_response({"booked": True, "slot": "Tuesday 10:00"})

    app = web.Application()
    app.router.add_post("/tools/book", book)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/tools/book")), posts
    await server.close()


async def test_a_webhook_tool_posts_the_call_and_its_answer_goes_to_the_model(
    make_line, booking_service
):
    url, posts = booking_service
    schema = {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}
    hook = {
        "name": "book",
        "description": "Book an appointment.",
        "parameters": schema,
        "url": url,
        "headers": {"Authorization": "Bearer hook-secret"},
    }
    line = await make_line(webhook_tools=[hook])
    chat = line.chat
    chat.push(
        ChatPlan(
            text=("Let me book that. ",), tool_calls=(ToolCallPlan("book", '{"day": "tuesday"}'),)
        ),
        ChatPlan(text=("You are booked for Tuesday at ten.",)),
    )
    call, stt = await line.inbound()
    stt.final("book me on tuesday")
    await call.wait_for_event("mark", where=reply_mark(2))
    [(headers, body)] = posts
    assert headers["Authorization"] == "Bearer hook-secret"
    assert body == {
        "tool": "book",
        "arguments": {"day": "tuesday"},
        "call": {
            "call_sid": call.call_sid,
            "from": "+15005550006",
            "to": "+15005550001",
            "direction": "inbound",
        },
    }
    answer = '{"booked": true, "slot": "Tuesday 10:00"}'
    assert messages_of(chat, 1)[-1] == {"role": "tool", "tool_call_id": "call_0", "content": answer}
    assert chat.requests[0].body["tools"][-1]["function"] == {
        "name": "book",
        "description": "Book an appointment.",
        "parameters": schema,
    }
    assert line.said() == ["Let me book that.", "You are booked for Tuesday at ten."]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("caller", "final", "book me on tuesday"),
        ("bot", "reply", "Let me book that."),
        ("event", "tool_call", 'book({"day": "tuesday"})'),
        ("event", "tool_result", answer),
        ("bot", "reply", "You are booked for Tuesday at ten."),
    ]


# --- errors, heard through the call --------------------------------------------------------------


async def test_a_refused_key_is_apologised_for_counted_and_logged_once(make_line, caplog):
    line = await make_line(api_key="sk-wrong", apology=APOLOGY)
    call, stt = await line.inbound()
    with caplog.at_level(logging.ERROR, logger="voicehost_openai_responder"):
        stt.final("hello")
        await call.wait_for_event("mark", where=reply_mark(1))
        stt.final("hello again")
        await call.wait_for_event("mark", where=reply_mark(2))
    assert line.said() == [APOLOGY, APOLOGY]
    assert line.responder.auth_failures == 2
    assert [r.rejected for r in line.chat.requests] == [
        "401: Incorrect API key provided."
    ] * 2  # never retried
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("voicehost_openai_responder")
    ]
    assert len(errors) == 1
    assert "[responder.openai] api_key" in errors[0] and line.chat.base_url in errors[0]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("caller", "final", "hello"),
        ("bot", "reply", APOLOGY),
        ("caller", "final", "hello again"),
        ("bot", "reply", APOLOGY),
    ]


@pytest.mark.parametrize("status", [429, 500])
async def test_a_server_error_is_retried_once(make_line, status):
    line = await make_line()
    line.chat.push(ChatPlan(status=status), ChatPlan(text=("Here I am.",)))
    call, stt = await line.inbound()
    stt.final("hello")
    await call.wait_for_event("mark", where=reply_mark(1))
    assert line.said() == ["Here I am."]
    assert [r.rejected for r in line.chat.requests] == [f"scripted {status}", None]
    await hang_up(call)


async def test_a_server_error_twice_is_apologised_for_and_the_call_goes_on(make_line):
    line = await make_line(apology=APOLOGY)
    line.chat.push(ChatPlan(status=500), ChatPlan(status=500), ChatPlan(text=("Back again.",)))
    call, stt = await line.inbound()
    stt.final("hello")
    await call.wait_for_event("mark", where=reply_mark(1))
    assert line.said() == [APOLOGY]
    assert len(line.chat.requests) == 2  # one retry, no more
    stt.final("are you there")
    await call.wait_for_event("mark", where=reply_mark(2))
    assert line.said() == [APOLOGY, "Back again."]
    assert call.close_code is None
    await hang_up(call)


async def test_a_model_that_never_answers_times_out_is_retried_then_apologised_for(make_line):
    # 1 s, not less: the timeout also bounds the retry's connect and send, and a loaded CI
    # machine once took over 0.3 s to get the second request to the fake.
    line = await make_line(timeout_s=1.0, apology=APOLOGY)
    line.chat.push(ChatPlan(stall=True), ChatPlan(stall=True))
    call, stt = await line.inbound()
    stt.final("hello")
    await call.wait_for_event("mark", where=reply_mark(1))
    assert line.said() == [APOLOGY]
    assert len(line.chat.requests) == 2
    await until(lambda: all(r.disconnected for r in line.chat.requests))
    await hang_up(call)


async def test_a_stream_broken_mid_reply_keeps_what_was_said_without_apology(make_line):
    line = await make_line()
    line.chat.push(
        ChatPlan(text=("This part is kept. ", "This part never"), drop_after_chunks=2),
        ChatPlan(text=("Still here.",)),
    )
    call, stt = await line.inbound()
    stt.final("hello")
    await call.wait_for_event("mark", where=reply_mark(1))
    stt.final("and now")
    await call.wait_for_event("mark", where=reply_mark(2))
    assert line.said() == ["This part is kept.", "Still here."]
    assert len(line.chat.requests) == 2  # not retried: text had been said
    assert messages_of(line.chat, 1)[-2:] == [
        {"role": "assistant", "content": "This part is kept."},
        {"role": "user", "content": "and now"},
    ]
    await hang_up(call)
    assert await line.turns(call.call_sid) == [
        ("caller", "final", "hello"),
        ("bot", "reply", "This part is kept."),
        ("caller", "final", "and now"),
        ("bot", "reply", "Still here."),
    ]
