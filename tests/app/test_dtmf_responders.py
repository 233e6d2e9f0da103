"""DTMF in and call actions out: the action markers of the responder contract, key rules and
actions of the scripted responder, key presses and action answers of the webhook responder,
and the conversation handler running actions in order (against a fake call, and end to end
through the real server and simulator: tones decoded back from the outbound audio)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import voicehost
from voicehost.config_model import parse_table
from voicehost.contracts import (
    HANG_UP,
    Action,
    CallContext,
    ConversationTurn,
    HangUp,
    ReplyItem,
    Responder,
    SendDtmf,
    Transfer,
    collect_reply,
)
from voicehost.conversation import ResponderCallHandler
from voicehost.dtmf import check_dtmf_digits, detect_dtmf, dtmf_ulaw
from voicehost.errors import ConfigError, VoicehostError
from voicehost.records import CallStore, read_call
from voicehost.responders.scripted import ScriptedConfig, ScriptedResponderProvider
from voicehost.responders.webhook import WebhookConfig, WebhookResponderProvider
from voicehost.server import SERVER_KEY, Binding, PlaybackError, ReplyStatus, ServerSettings
from voicehost.server import build_app as build_server_app
from voicehost.server.events import CallEvent
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeSpeechProvider, FakeTranscriptionProvider

TARGET = "+15550003333"
ALL_KEYS = "0123456789*#ABCD"


def ctx(**extra) -> CallContext:
    return CallContext(call_sid="CA" + "0" * 32, stream_sid="MZ" + "0" * 32, **extra)


async def items_of(stream: AsyncIterator[ReplyItem]) -> list[ReplyItem]:
    return [item async for item in stream]


# --- the contract ------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [ALL_KEYS, "1", "1w2W#", "9" * 64, "w"])
def test_send_dtmf_takes_keys_and_pauses(digits):
    assert SendDtmf(digits).digits == digits


@pytest.mark.parametrize("digits", ["", "a", "1 2", "E", "12-3", "9" * 65, "１", 5, None])
def test_send_dtmf_refuses_anything_else_at_construction(digits):
    with pytest.raises(ValueError, match="DTMF digits must be 1 to 64"):
        SendDtmf(digits)


@pytest.mark.parametrize("digits", [ALL_KEYS, "1w2W#", "9" * 64, "", "a", "d", "9" * 65, "1 "])
def test_send_dtmf_agrees_with_the_tone_generator(digits):
    """The contract checks keys without numpy; it must accept exactly what voicehost.dtmf
    can play."""
    try:
        check_dtmf_digits(digits)
    except ValueError:
        with pytest.raises(ValueError):
            SendDtmf(digits)
    else:
        assert SendDtmf(digits).digits == digits


@pytest.mark.parametrize("to", [TARGET, "sip:alice@example.com", "sips:desk@pbx.example.com:5061"])
def test_transfer_takes_numbers_and_sip_uris(to):
    assert Transfer(to).to == to


@pytest.mark.parametrize("to", ["", "5550003333", "+0123", "tel:+15550003333", "sip:nohost", 7])
def test_transfer_refuses_anything_else_at_construction(to):
    with pytest.raises(ValueError, match=r"transfer target must be an E\.164 number"):
        Transfer(to)


def test_actions_are_frozen_values_exported_from_voicehost():
    assert HangUp().reason == HANG_UP.reason == "bot-hangup"
    assert SendDtmf("1") == SendDtmf("1") and Transfer(TARGET) == Transfer(TARGET)
    with pytest.raises(AttributeError):
        SendDtmf("1").digits = "2"  # type: ignore[misc]
    for item in (HANG_UP, SendDtmf("1"), Transfer(TARGET)):
        assert isinstance(item, Action) and isinstance(item, ReplyItem)
    assert isinstance("text", ReplyItem) and not isinstance("text", Action)
    assert voicehost.SendDtmf is SendDtmf and voicehost.Transfer is Transfer
    assert {"Action", "ReplyItem", "SendDtmf", "Transfer"} <= set(voicehost.__all__)


def test_key_press_turns_say_so_in_their_json():
    assert ConversationTurn("caller", "hi").to_json() == {"role": "caller", "text": "hi"}
    assert ConversationTurn("caller", "hi").kind == "speech"
    turn = ConversationTurn("caller", "5", kind="dtmf")
    assert turn.to_json() == {"role": "caller", "text": "5", "dtmf": True}
    call = ctx(history=[ConversationTurn("bot", "Press 5."), turn])
    assert call.history_json() == [{"role": "bot", "text": "Press 5."}, turn.to_json()]
    assert (call.direction, call.answered_by) == ("", "")


async def test_a_responder_ignores_keys_by_default_and_collect_reply_skips_actions():
    class Plain(Responder):
        async def reply(self, call, transcript):
            yield "Hi. "
            yield SendDtmf("1")
            yield "Bye."
            yield HANG_UP

    assert await items_of(Plain().dtmf(ctx(), "1")) == []
    assert await collect_reply(Plain().reply(ctx(), "x")) == ("Hi. Bye.", HANG_UP)


# --- the scripted responder --------------------------------------------------------------


def scripted(**config):
    table = parse_table(ScriptedConfig, config, table="responder.scripted")
    return ScriptedResponderProvider().create(table)


KEY_RULES = [
    {"dtmf": "1", "reply": "Sales.", "send_dtmf": "1w2#"},
    {"dtmf": "0", "reply": "Putting you through.", "transfer": TARGET},
    {"dtmf": "123#", "reply": "PIN accepted."},
    {"dtmf": "9", "hangup": True},
    {"match": r"\boperator\b", "dtmf": "*", "transfer": "sip:desk@pbx.example.com"},
    {"match": r"\bhours\b", "reply": "Nine to five."},
]


async def test_key_rules_answer_with_text_then_actions_in_order():
    bot = scripted(rules=KEY_RULES)
    assert await items_of(bot.dtmf(ctx(), "1")) == ["Sales.", SendDtmf("1w2#")]
    assert await items_of(bot.dtmf(ctx(), "0")) == ["Putting you through.", Transfer(TARGET)]
    assert await items_of(bot.dtmf(ctx(), "9")) == [HANG_UP]
    # A rule with both a match and a dtmf answers either.
    operator = [Transfer("sip:desk@pbx.example.com")]
    assert await items_of(bot.dtmf(ctx(), "*")) == operator
    assert await items_of(bot.reply(ctx(), "the operator please")) == operator


async def test_speech_rules_can_act_too_and_key_rules_never_match_speech():
    bot = scripted(
        rules=[
            {"dtmf": "1", "reply": "Key one."},
            {"match": "menu", "reply": "Navigating.", "send_dtmf": "3", "hangup": True},
        ],
        fallback="Pardon?",
    )
    assert await items_of(bot.reply(ctx(), "the menu")) == ["Navigating.", SendDtmf("3"), HANG_UP]
    assert await items_of(bot.reply(ctx(), "1")) == ["Pardon?"]


async def test_keys_are_collected_while_they_begin_a_rule():
    bot = scripted(rules=KEY_RULES, dtmf_fallback="Not a choice.")
    call = ctx()
    assert await items_of(bot.dtmf(call, "1")) == ["Sales.", SendDtmf("1w2#")]  # "1" first
    call = ctx()
    bot = scripted(rules=KEY_RULES[2:], dtmf_fallback="Not a choice.")
    for key in "123":
        assert await items_of(bot.dtmf(call, key)) == []  # waiting for "123#"
    assert await items_of(bot.dtmf(call, "#")) == ["PIN accepted."]
    # Collecting starts over after a match ...
    assert await items_of(bot.dtmf(call, "1")) == []
    assert await items_of(bot.dtmf(call, "5")) == ["Not a choice."]  # "15" begins no rule
    # ... and after a miss; the <Gather> fallback hands over several keys at once.
    assert await items_of(bot.dtmf(call, "123#")) == ["PIN accepted."]


async def test_speech_forgets_the_keys_pressed_before():
    bot = scripted(rules=KEY_RULES[2:], fallback="Pardon?", dtmf_fallback="Not a choice.")
    call = ctx()
    assert await items_of(bot.dtmf(call, "12")) == []
    assert await items_of(bot.reply(call, "what are your hours")) == ["Nine to five."]
    assert await items_of(bot.dtmf(call, "3#")) == ["Not a choice."]


async def test_unmatched_keys_say_the_dtmf_fallback_or_nothing():
    assert await items_of(scripted(rules=KEY_RULES, dtmf_fallback="No.").dtmf(ctx(), "7")) == [
        "No."
    ]
    # The default script has no key rules and no dtmf_fallback: keys are only recorded.
    default = ScriptedResponderProvider().create(ScriptedConfig())
    for key in ALL_KEYS:
        assert await items_of(default.dtmf(ctx(), key)) == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"dtmf": "x", "reply": "y"}, r"rules #1\.dtmf: must be 1 to 64 keys of 0-9, \*, #, A-D"),
        ({"dtmf": "", "reply": "y"}, r"rules #1\.dtmf: must be 1 to 64 keys"),
        ({"dtmf": "1w", "reply": "y"}, r"rules #1\.dtmf: must be 1 to 64 keys .*not '1w'"),
        ({"dtmf": 1, "reply": "y"}, r"rules #1\.dtmf: must be a valid string, not 1"),
        ({"dtmf": "1", "send_dtmf": "12x"}, r"rules #1\.send_dtmf: DTMF digits must be 1 to 64"),
        ({"dtmf": "1", "send_dtmf": 12}, r"rules #1\.send_dtmf: must be a valid string, not 12"),
        ({"dtmf": "1", "transfer": "555"}, r"rules #1\.transfer: transfer target must be an E"),
        (
            {"dtmf": "1", "transfer": TARGET, "hangup": True},
            r"rules #1: has both transfer and hangup = true",
        ),
        ({"dtmf": "1"}, r"rules #1: needs a reply, a send_dtmf, a transfer or hangup = true"),
        ({"reply": "x", "send_dtmf": "1"}, r"rules #1: needs a match .* or a dtmf"),
        ({"dtmf": "1", "reply": "x", "sendDtmf": "1"}, r"rules #1\.sendDtmf: unknown key"),
    ],
)
def test_bad_key_rules_are_clear_config_errors(rule, message):
    with pytest.raises(ConfigError, match=r"^plugins\.toml: \[responder\.scripted\] " + message):
        parse_table(ScriptedConfig, {"rules": [rule]}, table="responder.scripted")


# --- the webhook responder ---------------------------------------------------------------


class Bot:
    """A webhook endpoint answering with ``answer`` and recording what it received."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answer: object = {"say": "ok"}

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response(self.answer)


@pytest.fixture
async def bot():
    bot = Bot()
    app = web.Application()
    app.router.add_post("/turn", bot.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    responder = WebhookResponderProvider().create(
        WebhookConfig(url=str(server.make_url("/turn")), apology="Sorry.")
    )
    bot.responder = responder
    yield bot
    await responder.aclose()
    await server.close()


async def test_a_key_press_is_posted_with_the_key_and_an_empty_transcript(bot):
    call = CallContext(
        call_sid="CA" + "1" * 32,
        stream_sid="MZ" + "2" * 32,
        from_number="+15550001111",
        to_number="+15550002222",
        history=[ConversationTurn("bot", "Press 1."), ConversationTurn("caller", "4", "dtmf")],
    )
    assert await items_of(bot.responder.dtmf(call, "1")) == ["ok"]
    assert bot.received == [
        {
            "call_sid": "CA" + "1" * 32,
            "stream_sid": "MZ" + "2" * 32,
            "from": "+15550001111",
            "to": "+15550002222",
            "transcript": "",
            "dtmf": "1",
            "history": [
                {"role": "bot", "text": "Press 1."},
                {"role": "caller", "text": "4", "dtmf": True},
            ],
        }
    ]
    await items_of(bot.responder.reply(call, "hello"))
    assert "dtmf" not in bot.received[1] and bot.received[1]["transcript"] == "hello"


@pytest.mark.parametrize(
    ("answer", "items"),
    [
        ({"say": "Pressing.", "send_dtmf": "1w2#"}, ["Pressing.", SendDtmf("1w2#")]),
        ({"say": "Connecting.", "transfer": TARGET}, ["Connecting.", Transfer(TARGET)]),
        (
            {"send_dtmf": "9", "transfer": "sip:desk@pbx.example.com"},
            [SendDtmf("9"), Transfer("sip:desk@pbx.example.com")],
        ),
        ({"say": "Bye.", "send_dtmf": "#", "hangup": True}, ["Bye.", SendDtmf("#"), HANG_UP]),
        ({"say": None, "send_dtmf": None, "transfer": None, "hangup": None}, []),
        ({"say": "", "send_dtmf": "", "transfer": ""}, []),
    ],
)
async def test_answers_may_press_keys_transfer_or_hang_up(bot, answer, items):
    bot.answer = answer
    assert await items_of(bot.responder.dtmf(ctx(), "1")) == items
    assert await items_of(bot.responder.reply(ctx(), "hi")) == items


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        ({"say": "x", "send_dtmf": "12x"}, "unusable action: DTMF digits must be 1 to 64"),
        ({"send_dtmf": 12}, "'send_dtmf' that is not a string: 12"),
        ({"transfer": "555"}, "unusable action: transfer target must be an E.164 number"),
        ({"transfer": ["+15550003333"]}, "'transfer' that is not a string"),
        ({"transfer": TARGET, "hangup": True}, "both 'transfer' and 'hangup'"),
    ],
)
async def test_bad_actions_speak_the_apology(bot, caplog, answer, cause):
    bot.answer = answer
    with caplog.at_level(logging.WARNING, logger="voicehost.responders.webhook"):
        assert await items_of(bot.responder.dtmf(ctx(), "1")) == ["Sorry."]
    assert cause in caplog.text
    bot.answer = {"say": "Back."}  # the next turn works
    assert await items_of(bot.responder.dtmf(ctx(), "2")) == ["Back."]


# --- the conversation handler against a fake call ----------------------------------------


class FakeReply:
    """What ``say``/``send_dtmf`` return: awaitable, resolved when the fake has 'played' it."""

    def __init__(self, reply_id: int, text: str = "") -> None:
        self.id, self.text = reply_id, text
        self.status = ReplyStatus.PENDING
        self._done = asyncio.get_running_loop().create_future()

    def resolve(self, status: ReplyStatus) -> None:
        if not self._done.done():
            self.status = status
            self._done.set_result(status)

    def __await__(self):
        return self._done.__await__()


class FakeCall:
    """The part of ``voicehost.server.Call`` the conversation uses. ``log`` lists what the
    caller got, in order: each spoken sentence once it has played (one at a time, first in
    first out, like the server's playback), keys and transfers when asked. A reply numbered
    in ``cut`` is cut off by the caller as it plays: it and every reply queued behind it are
    cancelled, as the server's barge-in does."""

    def __init__(self, *, cut=(), transfer_error=None, dtmf_error=None) -> None:
        self.call_sid, self.stream_sid = "CA" + "f" * 32, "MZ" + "f" * 32
        self.from_, self.to = "+15550001111", "+15550002222"
        self.direction, self.answered_by = "outbound-api", "human"
        self.state: dict = {}
        self.end_reason: str | None = None
        self.log: list[tuple[str, str]] = []
        self.cut, self.transfer_error, self.dtmf_error = set(cut), transfer_error, dtmf_error
        self.replies: list[FakeReply] = []
        self._queue: list[FakeReply] = []
        self._player: asyncio.Task | None = None

    def _reply(self, text: str = "") -> FakeReply:
        reply = FakeReply(len(self.replies) + 1, text)
        self.replies.append(reply)
        return reply

    def say(self, text: str) -> FakeReply:
        assert isinstance(text, str), "the conversation says one sentence at a time"
        reply = self._reply(text)
        self._queue.append(reply)
        if self._player is None or self._player.done():
            self._player = asyncio.get_running_loop().create_task(self._play())
        return reply

    async def _play(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # playing takes a moment: more may be queued meanwhile
            reply = self._queue.pop(0)
            if reply.id in self.cut:  # the caller talks over it: a barge-in
                self.log.append(("cut", reply.text))
                for cancelled in [reply, *self._queue]:
                    cancelled.resolve(ReplyStatus.CANCELLED)
                self._queue.clear()
                return
            self.log.append(("say", reply.text))
            reply.resolve(ReplyStatus.PLAYED)

    def send_dtmf(self, digits: str) -> FakeReply:
        if self.dtmf_error is not None:
            raise self.dtmf_error
        reply = self._reply()
        self.log.append(("keys", digits))
        reply.resolve(ReplyStatus.CANCELLED if reply.id in self.cut else ReplyStatus.PLAYED)
        return reply

    async def transfer(self, to: str) -> None:
        self.log.append(("transfer", to))
        if self.transfer_error is not None:
            raise self.transfer_error
        await self.hangup("transferred")

    async def hangup(self, reason: str = "bot-hangup") -> None:
        self.log.append(("hangup", reason))
        if self.end_reason is None:
            self.end_reason = reason


class FakeStore:
    """The part of ``CallStore`` the conversation uses."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, str, str]] = []
        self.events: list[tuple] = []

    def start_call(self, call_sid, **numbers) -> None:
        self.started = (call_sid, numbers)

    def add_turn(self, call_sid, role, kind, text, at_ms, timings=None) -> None:
        self.turns.append((role, kind, text))

    def end_call(self, call_sid, reason) -> None:
        self.ended = reason

    def record_event(self, call_sid, event, **fields) -> None:
        if event == "ended" and not fields.get("reason"):
            raise ValueError("an 'ended' call event needs a reason")
        self.events.append((call_sid, event, fields))


class Script(Responder):
    """Replies and key answers scripted per input; records what it saw."""

    def __init__(self, replies=None, keys=None) -> None:
        self.replies, self.keys = replies or {}, keys or {}
        self.seen: list[tuple[str, str, list]] = []
        self.closed: list[str] = []

    async def _items(self, what: str, text: str, call: CallContext, items: list):
        self.seen.append((what, text, list(call.history)))
        try:
            for item in items:
                yield item
        finally:
            self.closed.append(text)

    def reply(self, call, transcript):
        return self._items("reply", transcript, call, self.replies.get(transcript, []))

    def dtmf(self, call, digits):
        return self._items("dtmf", digits, call, self.keys.get(digits, []))


async def started(responder: Responder, **fake) -> tuple[ResponderCallHandler, FakeCall]:
    handler = ResponderCallHandler(responder, FakeStore())
    call = FakeCall(**fake)
    await handler.on_call_start(call)  # type: ignore[arg-type]
    return handler, call


async def test_actions_run_in_order_each_after_the_text_before_it_played():
    script = Script(
        replies={"go": ["Pressing one. ", SendDtmf("1"), "Now two. ", SendDtmf("2w#"), "Done."]}
    )
    handler, call = await started(script)
    await handler.on_transcript(call, "go")
    assert call.log == [
        ("say", "Pressing one."),
        ("keys", "1"),
        ("say", "Now two."),
        ("keys", "2w#"),
        ("say", "Done."),
    ]
    assert handler.store.turns == [
        ("caller", "final", "go"),
        ("bot", "reply", "Pressing one."),
        ("event", "send_dtmf", "1"),
        ("bot", "reply", "Now two."),
        ("event", "send_dtmf", "2w#"),
        ("bot", "reply", "Done."),
    ]
    history = call.state["voicehost.conversation"].context.history
    assert history[-3:] == [
        ConversationTurn("bot", "Now two."),
        ConversationTurn("bot", "2w#", kind="dtmf"),
        ConversationTurn("bot", "Done."),
    ]


async def test_transfer_and_hang_up_end_the_reply():
    script = Script(
        replies={
            "agent": ["Connecting. ", Transfer(TARGET), "never said", SendDtmf("1")],
            "bye": ["Bye. ", HANG_UP, "never said"],
        }
    )
    handler, call = await started(script)
    await handler.on_transcript(call, "agent")
    assert call.log == [("say", "Connecting."), ("transfer", TARGET), ("hangup", "transferred")]
    assert handler.store.turns[-2:] == [
        ("bot", "reply", "Connecting."),
        ("event", "transfer", TARGET),
    ]
    assert script.closed == ["agent"]  # the responder's stream was closed after the Transfer

    handler, call = await started(script)
    await handler.on_transcript(call, "bye")
    assert call.log == [("say", "Bye."), ("hangup", "bot-hangup")]


async def test_a_key_press_is_recorded_and_answered_by_responder_dtmf():
    script = Script(
        replies={"hi": ["Hello."]}, keys={"5": ["Five. ", SendDtmf("5"), HangUp("done")]}
    )
    handler, call = await started(script)
    await handler.on_transcript(call, "hi")
    await handler.on_dtmf(call, "5")
    # The responder saw the history without the key being answered ...
    assert script.seen[-1] == (
        "dtmf",
        "5",
        [ConversationTurn("caller", "hi"), ConversationTurn("bot", "Hello.")],
    )
    assert call.log == [("say", "Hello."), ("say", "Five."), ("keys", "5"), ("hangup", "done")]
    # ... which is in it afterwards, as a key-press turn of the caller.
    history = call.state["voicehost.conversation"].context.history
    assert history[2:] == [
        ConversationTurn("caller", "5", kind="dtmf"),
        ConversationTurn("bot", "Five."),
        ConversationTurn("bot", "5", kind="dtmf"),
    ]
    assert handler.store.turns[2:] == [
        ("event", "dtmf", "5"),
        ("bot", "reply", "Five."),
        ("event", "send_dtmf", "5"),
    ]


async def test_keys_a_responder_ignores_are_only_recorded():
    class Quiet(Responder):
        async def reply(self, call, transcript):
            yield "unused"

    handler, call = await started(Quiet())
    await handler.on_dtmf(call, "#")
    assert call.log == [] and handler.store.turns == [("event", "dtmf", "#")]


async def test_barge_in_during_text_drops_the_rest_of_the_reply():
    script = Script(replies={"go": ["First. ", "more. ", SendDtmf("1"), "Second.", HANG_UP]})
    handler, call = await started(script, cut={2})  # cut off during its second sentence
    await handler.on_transcript(call, "go")
    assert call.log == [("say", "First."), ("cut", "more.")]  # no keys, no more text, no hang-up
    assert call.end_reason is None
    # The bot turn holds what the caller heard: the first sentence.
    assert handler.store.turns == [
        ("caller", "final", "go"),
        ("bot", "reply", "First."),
        ("event", "barge_in", "reply cut off"),
    ]
    history = call.state["voicehost.conversation"].context.history
    assert history[-1] == ConversationTurn("bot", "First.")
    assert script.closed == ["go"]


async def test_barge_in_during_tones_drops_the_rest_of_the_reply():
    script = Script(replies={"go": ["Pressing. ", SendDtmf("123"), "Pressed.", HANG_UP]})
    handler, call = await started(script, cut={2})
    await handler.on_transcript(call, "go")
    assert call.log == [("say", "Pressing."), ("keys", "123")]
    assert call.end_reason is None
    assert handler.store.turns[-2:] == [
        ("event", "send_dtmf", "123"),
        ("event", "barge_in", "send_dtmf cut off"),
    ]


async def test_a_failed_transfer_is_logged_and_recorded_and_the_call_goes_on(caplog):
    script = Script(replies={"agent": [Transfer(TARGET)], "hi": ["Still here."]})
    error = VoicehostError("REST is not configured ([twilio] account_sid / auth_token)")
    handler, call = await started(script, transfer_error=error)
    with caplog.at_level(logging.WARNING, logger="voicehost.conversation"):
        await handler.on_transcript(call, "agent")
    assert "transfer to +15550003333 failed: REST is not configured" in caplog.text
    await handler.on_transcript(call, "hi")
    assert call.log == [("transfer", TARGET), ("say", "Still here.")]
    assert call.end_reason is None
    assert handler.store.turns[1:3] == [
        ("event", "transfer", TARGET),
        ("event", "transfer", f"failed: {error}"),
    ]


async def test_keys_that_cannot_be_played_are_skipped_and_the_reply_goes_on(caplog):
    script = Script(replies={"go": ["One. ", SendDtmf("1"), "Two."]})
    handler, call = await started(script, dtmf_error=PlaybackError("the call has ended"))
    with caplog.at_level(logging.WARNING, logger="voicehost.conversation"):
        await handler.on_transcript(call, "go")
    assert "cannot press 1 (the call has ended)" in caplog.text
    assert call.log == [("say", "One."), ("say", "Two.")]
    assert ("event", "send_dtmf", "1") not in handler.store.turns


async def test_the_responder_sees_direction_and_answered_by():
    script = Script(replies={"hi": []})
    handler, call = await started(script)
    await handler.on_transcript(call, "hi")
    context = call.state["voicehost.conversation"].context
    assert (context.direction, context.answered_by) == ("outbound-api", "human")


async def test_call_events_go_to_the_record_store(caplog):
    handler = ResponderCallHandler(Script(), FakeStore())
    answered = CallEvent(
        "CA" + "a" * 32, "answered", answered_by="machine_end_beep", direction="outbound-api",
        from_="+15550001111", to="+15550002222", at=1_700_000_000.5,
    )  # fmt: skip
    await handler.on_call_event(answered)
    assert handler.store.events == [
        (
            "CA" + "a" * 32,
            "answered",
            {
                "reason": "",
                "answered_by": "machine_end_beep",
                "direction": "outbound-api",
                "from_number": "+15550001111",
                "to_number": "+15550002222",
                "at": 1_700_000_000.5,
            },
        )
    ]
    with caplog.at_level(logging.WARNING, logger="voicehost.conversation"):
        await handler.on_call_event(CallEvent("CA" + "a" * 32, "ended"))  # no reason
    assert "not recorded: an 'ended' call event needs a reason" in caplog.text
    assert len(handler.store.events) == 1
    await ResponderCallHandler(Script()).on_call_event(answered)  # no store: nothing to do


async def test_call_events_are_stored_with_the_call_record(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    handler = ResponderCallHandler(Script(), store)
    sid = "CA" + "b" * 32
    await handler.on_call_event(CallEvent(sid, "ringing", direction="outbound-api", at=100.0))
    await handler.on_call_event(CallEvent(sid, "ended", reason="no-answer", at=130.0))
    await store.flush()
    record = read_call(store.path, sid)
    store.close()
    assert record["end_reason"] == "no-answer" and record["direction"] == "outbound-api"
    assert [(e["event"], e["reason"]) for e in record["events"]] == [
        ("ringing", ""),
        ("ended", "no-answer"),
    ]


# --- end to end: the real server and simulator -------------------------------------------


@pytest.fixture
async def serve(tmp_path):
    """``serve(responder)`` → (simulator, server, store): a running call server."""
    running: list = []

    async def start(responder: Responder):
        store = CallStore(tmp_path / f"calls{len(running)}.db")
        handler = ResponderCallHandler(responder, store)
        app = build_server_app(
            ServerSettings(),
            stt=Binding(FakeTranscriptionProvider(), {}),
            tts=Binding(FakeSpeechProvider(), {"ms_per_char": 5}),
            handler=handler,
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        sim = TwilioSimulator(str(server.make_url("")), speed=math.inf)
        await sim.__aenter__()
        running.append((sim, server))
        return sim, server, store

    yield start
    for sim, server in running:
        await sim.__aexit__(None, None, None)
        await server.close()


async def record_of(server: TestServer, store: CallStore, call_sid: str) -> dict:
    live = server.app[SERVER_KEY].calls.get(call_sid)
    if live is not None:
        await live.wait_ended()
    await store.flush()
    return read_call(store.path, call_sid)


async def recorded(store: CallStore, call_sid: str, role_kind: tuple, *, timeout_s: float) -> None:
    """Wait until the record of ``call_sid`` has two turns of ``role_kind`` (a bounded wait,
    not a timing assertion)."""

    async def poll() -> None:
        while True:
            await store.flush()
            turns = (read_call(store.path, call_sid) or {}).get("turns", [])
            if sum((t["role"], t["kind"]) == role_kind for t in turns) >= 2:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout_s)


async def test_a_scripted_key_rule_presses_keys_heard_as_exactly_those_digits(serve):
    bot = scripted(greeting="", rules=[{"dtmf": "5", "send_dtmf": ALL_KEYS}])
    sim, server, store = await serve(bot)
    call = await sim.start_call()
    await call.dtmf("5")
    await call.wait_for_audio(len(dtmf_ulaw(ALL_KEYS)), timeout=15)
    await call.wait_for_event("mark", timeout=15)
    assert detect_dtmf(bytes(call.received_audio)) == ALL_KEYS
    await call.stop()
    record = await record_of(server, store, call.call_sid)
    turns = [(t["role"], t["kind"], t["text"]) for t in record["turns"]]
    assert turns == [("event", "dtmf", "5"), ("event", "send_dtmf", ALL_KEYS)]


async def test_a_scripted_key_rule_answers_and_a_transfer_without_rest_goes_on(serve):
    bot = scripted(
        greeting="",
        rules=[
            {"dtmf": "1", "reply": "Sales."},
            {"dtmf": "0", "reply": "Transferring.", "transfer": TARGET},
        ],
    )
    sim, server, store = await serve(bot)
    call = await sim.start_call()
    await call.dtmf("1")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    await call.dtmf("0")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    # No REST credentials: the transfer fails (and is recorded so) and the call goes on.
    await recorded(store, call.call_sid, ("event", "transfer"), timeout_s=10)
    await call.dtmf("1")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-3")
    assert call.close_code is None
    await call.stop()
    record = await record_of(server, store, call.call_sid)
    turns = [(t["role"], t["kind"], t["text"]) for t in record["turns"]]
    assert turns[:5] == [
        ("event", "dtmf", "1"),
        ("bot", "reply", "Sales."),
        ("event", "dtmf", "0"),
        ("bot", "reply", "Transferring."),
        ("event", "transfer", TARGET),
    ]
    assert turns[5][:2] == ("event", "transfer") and turns[5][2].startswith("failed: ")
    assert turns[6:] == [("event", "dtmf", "1"), ("bot", "reply", "Sales.")]
