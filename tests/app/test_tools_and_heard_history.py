"""Replies spoken sentence by sentence, history that holds what the caller heard, and tools.

* Through the real server and simulator (fake STT/TTS): the first sentence of a reply goes to
  TTS while the responder is still producing the rest; a barge-in closes the responder's
  stream and leaves only the sentences that played in the history and the record.
* Against a call whose playback the test drives by hand: at most two sentences wait behind
  the one playing; a barge-in keeps the sentences that played (none: no bot turn);
  :class:`~voicehost.ToolUse` items become ``tool_call``/``tool_result`` records and tool
  turns in the history, in stream order; records keep the order things happened in.
* The tool contract (:class:`~voicehost.Tool`), the ``register_tools`` hook as the plugin
  host collects it (duplicate names, objects that are not tools), ``list-plugins``, and
  ``create_handler`` handing the tools to the responder (``Responder.use_tools``).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

import voicehost
from voicehost.app.assembly import create_handler, load_app_config
from voicehost.cli.list_plugins import list_plugins
from voicehost.config import Settings
from voicehost.contracts import (
    HANG_UP,
    CallContext,
    ConversationTurn,
    Responder,
    ResponderProvider,
    Tool,
    ToolError,
    ToolUse,
    collect_reply,
)
from voicehost.conversation import ResponderCallHandler
from voicehost.conversation_speech import AHEAD
from voicehost.errors import PluginError, VoicehostError
from voicehost.hookspecs import hookimpl
from voicehost.plugins import PluginHost
from voicehost.records import TURN_KINDS, CallStore, read_call
from voicehost.records.cli import format_call
from voicehost.server import SERVER_KEY, Binding, ReplyStatus, ServerSettings
from voicehost.server import build_app as build_server_app
from voicehost.testing import TwilioSimulator
from voicehost.testing.conformance import ResponderConformance
from voicehost.testing.providers import (
    FakeProvidersPlugin,
    FakeSpeechProvider,
    FakeTranscriptionProvider,
)

HOURS = ToolUse("get_hours", '{"day": "monday"}', '{"open": "09:00"}', call_id="call_1")
FULL = ToolUse("book", "{}", '{"error": "fully booked"}', call_id="call_2", error=True)


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``check()`` holds (a bounded wait, not a timing assertion)."""

    async def poll() -> None:
        while True:
            if check():
                return
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout_s)


# --- through the real server -------------------------------------------------------------


class Storyteller(Responder):
    """``"go"``: a reply whose second half waits for :attr:`gate`; ``"story"``: two short
    sentences, a long one, then nothing until the stream is closed; else ``"Okay."``."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.seen: list[tuple[str, list[tuple[str, str]]]] = []
        self.closed: list[str] = []

    async def reply(self, call: CallContext, transcript: str):
        self.seen.append((transcript, [(t.role, t.text) for t in call.history]))
        try:
            if transcript == "go":
                yield "The first sentence is ready. The second "
                await self.gate.wait()
                yield "one came later."
            elif transcript == "story":
                yield "One. Two. "
                yield "Three is a very long sentence that goes on and on " * 12 + "to the end. "
                await asyncio.Event().wait()  # a model that never finishes
            else:
                yield "Okay."
        finally:
            self.closed.append(transcript)


@pytest.fixture
async def line(tmp_path):
    """A running server with the fake providers (10 ms of audio a character) and records;
    yields (responder, stt provider, tts provider, simulator, server, store)."""
    bot, stt, tts = Storyteller(), FakeTranscriptionProvider(), FakeSpeechProvider()
    store = CallStore(tmp_path / "calls.db")
    handler = ResponderCallHandler(bot, store)
    app = build_server_app(
        ServerSettings(),
        stt=Binding(stt, {}),
        tts=Binding(tts, {"ms_per_char": 10}),
        handler=handler,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
        yield bot, stt, tts, sim, server, store
    await server.close()


async def record_of(server: TestServer, store: CallStore, call_sid: str) -> list[tuple]:
    live = server.app[SERVER_KEY].calls.get(call_sid)
    if live is not None:
        await live.wait_ended()
    await store.flush()
    return [(t["role"], t["kind"], t["text"]) for t in read_call(store.path, call_sid)["turns"]]


async def test_the_first_sentence_is_spoken_before_the_responder_finishes(line):
    bot, stt, tts, sim, server, store = line
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.final("go")
    await call.wait_for(lambda: len(tts.syntheses) == 1, timeout=10)
    # The responder is still waiting to produce the rest; the first sentence is at the TTS.
    assert [s.text for s in tts.syntheses] == ["The first sentence is ready."]
    assert bot.closed == [] and not bot.gate.is_set()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    bot.gate.set()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    # Each sentence is its own TTS request and its own reply (mark).
    assert [s.text for s in tts.syntheses] == [
        "The first sentence is ready.",
        "The second one came later.",
    ]
    await call.stop()
    assert await record_of(server, store, call.call_sid) == [
        ("caller", "final", "go"),
        ("bot", "reply", "The first sentence is ready. The second one came later."),
    ]


async def test_barge_in_closes_the_responder_and_keeps_what_was_heard(line):
    bot, stt, tts, sim, server, store = line
    call = await sim.start_call()
    session = await stt.wait_for_session()
    session.final("story")
    await call.wait_for(lambda: len(tts.syntheses) == 3, timeout=10)
    # "One." and "Two." (40 ms each) have played; half a second of the long one is out.
    await call.wait_for_audio(640 + 4000, timeout=10)
    session.speech_start()  # the caller talks over the bot
    await call.wait_for_event("clear", timeout=10)
    await call.wait_for(lambda: bot.closed == ["story"], timeout=10)  # the stream closed
    long_one = tts.syntheses[2]
    await call.wait_for(lambda: long_one.closed_at is not None, timeout=10)
    # (synthesised ahead while "Two." played, it may have completed; most of it never played)
    assert len(call.received_audio) < 640 + long_one.bytes // 2
    session.final("what")
    await call.wait_for(lambda: any(s.text == "Okay." for s in tts.syntheses), timeout=10)
    # The next turn sees the reply as the caller heard it.
    assert bot.seen[-1] == ("what", [("caller", "story"), ("bot", "One. Two.")])
    await call.stop()
    turns = await record_of(server, store, call.call_sid)
    assert turns[:4] == [
        ("caller", "final", "story"),
        ("bot", "reply", "One. Two."),
        ("event", "barge_in", "reply cut off"),
        ("caller", "final", "what"),
    ]


# --- against a call whose playback the test drives ---------------------------------------


class HandReply:
    """A reply that plays when the test says so."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.status = ReplyStatus.PENDING
        self._done = asyncio.get_running_loop().create_future()

    def resolve(self, status: ReplyStatus) -> None:
        if not self._done.done():
            self.status = status
            self._done.set_result(status)

    def __await__(self):
        return asyncio.shield(self._done).__await__()


class HandCall:
    """The part of ``voicehost.server.Call`` the conversation uses; ``play()`` finishes the
    oldest reply, ``barge_in()`` cancels every unfinished one (as the server's barge-in)."""

    def __init__(self) -> None:
        self.call_sid, self.stream_sid = "CA" + "7" * 32, "MZ" + "7" * 32
        self.from_, self.to, self.direction, self.answered_by = "+15550001", "+15550002", "", ""
        self.state: dict = {}
        self.end_reason: str | None = None
        self.said: list[HandReply] = []

    def say(self, text: str) -> HandReply:
        self.said.append(HandReply(text))
        return self.said[-1]

    def unfinished(self) -> list[HandReply]:
        return [r for r in self.said if r.status is ReplyStatus.PENDING]

    def play(self, count: int = 1) -> None:
        for reply in self.unfinished()[:count]:
            reply.resolve(ReplyStatus.PLAYED)

    def barge_in(self) -> None:
        for reply in self.unfinished():
            reply.resolve(ReplyStatus.CANCELLED)

    async def hangup(self, reason: str = "bot-hangup") -> None:
        self.end_reason = self.end_reason or reason


class TurnStore:
    """The part of ``CallStore`` the conversation uses."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, str, str]] = []
        self.ended: str | None = None

    def start_call(self, call_sid, **numbers) -> None:
        pass

    def add_turn(self, call_sid, role, kind, text, at_ms, timings=None) -> None:
        self.turns.append((role, kind, text))

    def end_call(self, call_sid, reason) -> None:
        self.ended = reason


class Listed(Responder):
    """Answers each transcript with its list of items; notes when a stream is closed."""

    def __init__(self, replies: dict[str, list]) -> None:
        self.replies = replies
        self.closed: list[str] = []

    async def reply(self, call, transcript):
        try:
            for item in self.replies.get(transcript, []):
                yield item
        finally:
            self.closed.append(transcript)


async def answering(replies: dict[str, list], transcript: str = "go"):
    """(handler, call, store, responder, the task answering ``transcript``)."""
    responder, store, call = Listed(replies), TurnStore(), HandCall()
    handler = ResponderCallHandler(responder, store)  # type: ignore[arg-type]
    await handler.on_call_start(call)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(handler.on_transcript(call, transcript))
    return handler, call, store, responder, task


def history(call: HandCall) -> list[ConversationTurn]:
    return call.state["voicehost.conversation"].context.history


async def test_at_most_two_sentences_wait_behind_the_one_playing():
    sentences = [f"Sentence {n}. " for n in range(1, 7)]
    _, call, store, responder, task = await answering({"go": sentences})
    await until(lambda: responder.closed == ["go"])  # the responder is read to its end ...
    await asyncio.sleep(0.01)
    assert len(call.said) == 1 + AHEAD == 3  # ... but only three sentences are queued
    for played in range(1, 4):
        call.play()
        await until(lambda n=played: len(call.said) == min(6, 3 + n))
        assert len(call.unfinished()) == 3
    call.play(3)
    await asyncio.wait_for(task, 5)
    assert [r.text for r in call.said] == [s.strip() for s in sentences]
    assert store.turns == [
        ("caller", "final", "go"),
        ("bot", "reply", " ".join(s.strip() for s in sentences)),
    ]


async def test_barge_in_keeps_only_the_sentences_that_played():
    sentences = ["First. Second. ", "Third. ", "Fourth. Fifth. Sixth."]
    handler, call, store, responder, task = await answering({"go": sentences})
    await until(lambda: len(call.said) == 3)
    # Until it has played, the history holds the reply as produced so far.
    everything = "First. Second. Third. Fourth. Fifth. Sixth."
    assert history(call)[-1] == ConversationTurn("bot", everything)
    assert store.turns == [("caller", "final", "go")]  # its record waits for what played
    call.play(2)
    await until(lambda: len(call.said) == 5)
    call.barge_in()  # during "Third."
    await handler.on_speech_start(call)  # type: ignore[arg-type]
    await asyncio.wait_for(task, 5)
    assert responder.closed == ["go"]
    assert call.said[-1].text == "Fifth."  # "Sixth." was never said
    assert store.turns == [
        ("caller", "final", "go"),
        ("bot", "reply", "First. Second."),
        ("event", "barge_in", "reply cut off"),
    ]
    heard = [ConversationTurn("caller", "go"), ConversationTurn("bot", "First. Second.")]
    assert history(call) == heard


async def test_a_reply_cut_off_before_a_sentence_played_leaves_no_bot_turn():
    handler, call, store, _, task = await answering({"go": ["Hello there. ", "How are you?"]})
    await until(lambda: len(call.said) == 2)
    call.barge_in()
    await asyncio.wait_for(task, 5)  # the reply's own task notices the cut too
    await handler.on_speech_start(call)  # type: ignore[arg-type]  # nothing more to record
    assert store.turns == [("caller", "final", "go"), ("event", "barge_in", "reply cut off")]
    assert history(call) == [ConversationTurn("caller", "go")]


class Pausing(Responder):
    """Says one sentence, then waits for :attr:`gate` (a slow model, a tool running)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.closed = False

    async def reply(self, call, transcript):
        try:
            yield "First. "
            await self.gate.wait()
            yield "Second."
        finally:
            self.closed = True


@pytest.mark.parametrize("barge_in", [True, False])
async def test_speech_between_two_sentences_cuts_the_reply_off_when_barge_in_is_on(barge_in):
    responder, store, call = Pausing(), TurnStore(), HandCall()
    call.barge_in_enabled = barge_in  # type: ignore[attr-defined]
    handler = ResponderCallHandler(responder, store)  # type: ignore[arg-type]
    await handler.on_call_start(call)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(handler.on_transcript(call, "go"))
    await until(lambda: len(call.said) == 1)
    call.play()
    await asyncio.sleep(0.01)
    await handler.on_speech_start(call)  # type: ignore[arg-type]  # nothing was playing
    if barge_in:  # the responder's stream is closed; the turn keeps what played
        await asyncio.wait_for(task, 5)
        assert responder.closed and [r.text for r in call.said] == ["First."]
        assert store.turns == [
            ("caller", "final", "go"),
            ("bot", "reply", "First."),
            ("event", "barge_in", "reply cut off"),
        ]
    else:  # the reply goes on
        assert not task.done() and not responder.closed
        responder.gate.set()
        await until(lambda: len(call.said) == 2)
        call.play()
        await asyncio.wait_for(task, 5)
        assert store.turns == [("caller", "final", "go"), ("bot", "reply", "First. Second.")]


async def test_tool_uses_are_recorded_and_kept_in_the_history_in_stream_order():
    reply = ["Let me check. ", HOURS, "We open at nine. ", FULL, "Sorry."]
    _, call, store, _, task = await answering({"go": reply})
    await until(lambda: len(history(call)) == 6)
    # The tool turns are in the history already; their records wait for the text before.
    assert store.turns == [("caller", "final", "go")]
    call.play(3)
    await until(lambda: len(call.said) == 3)
    call.play(3)
    await asyncio.wait_for(task, 5)
    assert [r.text for r in call.said] == ["Let me check.", "We open at nine.", "Sorry."]
    assert store.turns == [
        ("caller", "final", "go"),
        ("bot", "reply", "Let me check."),
        ("event", "tool_call", 'get_hours({"day": "monday"})'),
        ("event", "tool_result", '{"open": "09:00"}'),
        ("bot", "reply", "We open at nine."),
        ("event", "tool_call", "book({})"),
        ("event", "tool_result", 'error: {"error": "fully booked"}'),
        ("bot", "reply", "Sorry."),
    ]
    assert history(call) == [
        ConversationTurn("caller", "go"),
        ConversationTurn("bot", "Let me check."),
        ConversationTurn("bot", "", kind="tool", tool=HOURS),
        ConversationTurn("bot", "We open at nine."),
        ConversationTurn.for_tool(FULL),
        ConversationTurn("bot", "Sorry."),
    ]
    assert call.state["voicehost.conversation"].context.history_json()[2] == {
        "role": "bot",
        "text": "",
        "tool": {
            "name": "get_hours",
            "arguments": '{"day": "monday"}',
            "result": '{"open": "09:00"}',
            "error": False,
        },
    }


async def test_a_tool_use_made_before_a_barge_in_stays_recorded():
    reply = ["First. ", "Second. ", HOURS, "Third. ", "Fourth."]
    handler, call, store, _, task = await answering({"go": reply})
    await until(lambda: len(call.said) == 3)
    call.play(1)
    await asyncio.sleep(0.01)
    call.barge_in()  # during "Second."
    await handler.on_speech_start(call)  # type: ignore[arg-type]
    await asyncio.wait_for(task, 5)
    assert store.turns == [
        ("caller", "final", "go"),
        ("bot", "reply", "First."),
        ("event", "tool_call", 'get_hours({"day": "monday"})'),
        ("event", "tool_result", '{"open": "09:00"}'),
        ("event", "barge_in", "reply cut off"),
    ]
    assert history(call)[1:] == [
        ConversationTurn("bot", "First."),
        ConversationTurn.for_tool(HOURS),
    ]


async def test_turns_during_a_reply_are_recorded_after_it():
    handler, call, store, _, task = await answering({"go": ["One. Two."]})
    await until(lambda: len(call.said) == 2)
    await handler.on_dtmf(call, "5")  # type: ignore[arg-type]  # the responder ignores keys
    assert store.turns == [("caller", "final", "go")]  # waits behind the reply still playing
    call.play(2)
    await asyncio.wait_for(task, 5)
    assert store.turns == [
        ("caller", "final", "go"),
        ("bot", "reply", "One. Two."),
        ("event", "dtmf", "5"),
    ]
    assert history(call)[1:] == [
        ConversationTurn("bot", "One. Two."),
        ConversationTurn("caller", "5", kind="dtmf"),
    ]


async def test_a_call_that_ends_mid_reply_records_what_played_and_no_barge_in():
    handler, call, store, _, task = await answering({"go": ["One. Two. Three.", HANG_UP]})
    await until(lambda: len(call.said) == 3)
    call.play(1)
    await asyncio.sleep(0.01)
    call.end_reason = "caller-hangup"  # as Call.end: the reason, playback closed, tasks ended
    call.barge_in()
    task.cancel()
    await asyncio.wait([task])
    await handler.on_call_end(call, "caller-hangup")  # type: ignore[arg-type]
    assert store.turns == [("caller", "final", "go"), ("bot", "reply", "One.")]
    assert store.ended == "caller-hangup"


# --- the tool contract -------------------------------------------------------------------


async def hours(call: CallContext, arguments: dict) -> dict:
    if arguments.get("day") == "sunday":
        raise ToolError("closed on Sundays")
    return {"day": arguments.get("day"), "open": "09:00"}


def test_a_tool_is_a_frozen_value_exported_from_voicehost():
    schema = {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}
    tool = Tool("get_hours", "Opening hours of a day.", schema, hours)
    assert (tool.name, tool.parameters, tool.handler) == ("get_hours", schema, hours)
    assert Tool("x-Y_9" * 12 + "abcd", "", {}, hours).name.endswith("abcd")  # 64 characters
    with pytest.raises(AttributeError):
        tool.name = "other"  # type: ignore[misc]
    assert issubclass(ToolError, VoicehostError)
    for name in ("Tool", "ToolError", "ToolHandler", "ToolUse"):
        assert getattr(voicehost, name) is getattr(voicehost.contracts, name)
        assert name in voicehost.__all__


async def test_a_tool_handler_gets_the_call_and_its_arguments():
    tool = Tool("get_hours", "Opening hours.", {"type": "object"}, hours)
    call = CallContext(call_sid="CA" + "1" * 32)
    assert await tool.handler(call, {"day": "monday"}) == {"day": "monday", "open": "09:00"}
    with pytest.raises(ToolError, match="closed on Sundays"):
        await tool.handler(call, {"day": "sunday"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "a tool name must be 1 to 64 of A-Z"),
        ({"name": "get hours"}, "not 'get hours'"),
        ({"name": "a" * 65}, "a tool name must be"),
        ({"name": "heure_d'été"}, "a tool name must be"),
        ({"name": 7}, "a tool name must be"),
        ({"description": None}, "a tool description must be a string"),
        ({"parameters": []}, r"tool parameters must be a JSON schema \(a mapping\)"),
        (
            {"parameters": {"type": "string"}},
            "must be an \"object\" JSON schema, not type 'string'",
        ),
        ({"handler": "hours"}, "a tool handler must be an async callable"),
    ],
)
def test_a_bad_tool_is_refused_at_construction(fields, message):
    good = {"name": "get_hours", "description": "d", "parameters": {}, "handler": hours}
    with pytest.raises(ValueError, match=message):
        Tool(**{**good, **fields})


async def test_a_tool_use_is_a_reply_item_never_spoken_by_collect_reply():
    assert isinstance(HOURS, voicehost.ReplyItem)
    assert ToolUse("t", "{}", "1") == ToolUse("t", "{}", "1", call_id="", error=False)

    class WithTool(Responder):
        async def reply(self, call, transcript):
            yield "Checking. "
            yield HOURS
            yield "Done."

    call = CallContext(call_sid="CA" + "2" * 32)
    assert await collect_reply(WithTool().reply(call, "x")) == ("Checking. Done.", None)
    # The conformance kit takes tool uses as reply items; not a ToolUse with a non-str field.
    ResponderConformance._check_items(["Checking. ", HOURS, "Done.", HANG_UP], "reply()")
    with pytest.raises(AssertionError, match="must be str"):
        ResponderConformance._check_items([ToolUse("t", "{}", {"a": 1})], "reply()")  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="only str pieces, actions"):
        ResponderConformance._check_items([{"tool": "t"}], "reply()")


def test_tool_turns_are_recorded_and_shown(tmp_path):
    assert {"tool_call", "tool_result"} <= TURN_KINDS
    store = CallStore(tmp_path / "calls.db")
    sid = "CA" + "3" * 32
    store.start_call(sid, stream_sid="MZ" + "3" * 32, from_number="+15551", to_number="+15552")
    store.add_turn(sid, "caller", "final", "hours on monday?", 100)
    store.add_turn(sid, "event", "tool_call", 'get_hours({"day": "monday"})', 900)
    store.add_turn(sid, "event", "tool_result", '{"open": "09:00"}', 900)
    store.add_turn(sid, "event", "tool_call", "lookup({})", 950)
    store.add_turn(sid, "event", "tool_result", "error: " + json.dumps({"x": "y" * 300}), 950)
    store.end_call(sid, "caller-hangup")
    store.close()
    shown = format_call(read_call(store.path, sid)).splitlines()
    assert shown[-4].endswith('·  [tool] get_hours({"day": "monday"})')
    assert shown[-3].endswith('·  [tool] → {"open": "09:00"}')
    assert shown[-1].endswith("…") and "[tool] → error: " in shown[-1]
    assert len(shown[-1]) < 240  # a long result is cut (--json has it whole)


# --- register_tools and use_tools ---------------------------------------------------------


def tool_named(name: str) -> Tool:
    return Tool(name, f"The {name} tool.", {"type": "object", "properties": {}}, hours)


class ToolsPlugin:
    """A plugin registering what it is given through ``register_tools``."""

    def __init__(self, *items: object) -> None:
        self.items = items

    @hookimpl
    def register_tools(self, register):
        for item in self.items:
            register(item)


class BothPlugin(ToolsPlugin):
    """Also registers a TTS provider (dropped with its tools when the plugin fails)."""

    @hookimpl
    def register_speech_providers(self, register):
        tts = FakeSpeechProvider()
        tts.id = "both-tts"
        register(tts)


def test_register_tools_collects_tools_by_name():
    host = PluginHost()
    record = host.register(ToolsPlugin(tool_named("b_tool"), tool_named("a_tool")), "vh-tools")
    assert record.status == "loaded" and record.tools == ["a_tool", "b_tool"]
    assert record.hooks == ["register_tools"]
    assert set(host.tools) == {"a_tool", "b_tool"} and host.tools["a_tool"].name == "a_tool"
    assert host.owner("tool", "b_tool") == "vh-tools"
    assert record.as_json()["tools"] == ["a_tool", "b_tool"]
    other = host.register(ToolsPlugin(tool_named("c_tool")), "vh-more")
    assert other.tools == ["c_tool"] and len(host.tools) == 3


def test_a_duplicate_tool_name_fails_the_second_plugin(capsys):
    host = PluginHost()
    host.register(ToolsPlugin(tool_named("lookup")), "vh-first")
    second = host.register(BothPlugin(tool_named("mine"), tool_named("lookup")), "vh-second")
    assert second.status == "failed"
    assert "tool name 'lookup' is registered by both vh-first and vh-second" in second.error
    # The first keeps its tool; none of the second's tools or providers stay registered.
    assert set(host.tools) == {"lookup"} and host.owner("tool", "lookup") == "vh-first"
    assert "both-tts" not in host.speech_providers
    assert second.tools == [] and second.providers["tts"] == []
    assert "voicehost: plugin vh-second failed and was skipped" in capsys.readouterr().err
    # The same name twice in one plugin fails it too; strict mode raises.
    twice = PluginHost().register(ToolsPlugin(tool_named("x"), tool_named("x")), "vh-twice")
    assert twice.status == "failed" and "'x' is registered by both vh-twice and vh-twice" in (
        twice.error or ""
    )
    with pytest.raises(PluginError, match=r"vh-twice failed: .*'x'"):
        PluginHost(strict=True).register(ToolsPlugin(tool_named("x"), tool_named("x")), "vh-twice")


@pytest.mark.parametrize(
    "item",
    [{"name": "get_hours"}, "get_hours", FakeSpeechProvider(), None],
    ids=["dict", "str", "provider", "none"],
)
def test_registering_something_that_is_not_a_tool_fails_the_plugin(item):
    host = PluginHost(report=lambda line: None)
    record = host.register(BothPlugin(tool_named("fine"), item), "vh-bad")
    assert record.status == "failed"
    assert (
        record.error
        == f"PluginError: register_tools takes a voicehost.Tool, not {type(item).__name__}"
    )
    assert host.tools == {} and host.speech_providers == {}


def test_list_plugins_shows_each_plugins_tools(monkeypatch):
    host = PluginHost()
    host.register(ToolsPlugin(tool_named("get_hours"), tool_named("book")), "vh-tools")
    host.register(FakeProvidersPlugin(), "vh-fakes")
    monkeypatch.setattr("voicehost.cli.list_plugins.load_host", lambda config_path: host)
    table = CliRunner().invoke(list_plugins, []).stdout.splitlines()
    assert table[0].split() == [
        "PLUGIN", "VERSION", "STATUS", "STT", "TTS", "RESPONDERS", "CONVERSATION", "TURN",
        "TOOLS", "ERROR",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["vh-tools"][8] == "book,get_hours"
    assert rows["vh-fakes"][6] == "fake" and rows["vh-fakes"][8] == "-"
    entries = json.loads(CliRunner().invoke(list_plugins, ["--json"]).stdout)
    assert {e["name"]: e["tools"] for e in entries} == {
        "vh-fakes": [],
        "vh-tools": ["book", "get_hours"],
    }


class ToolBot(Responder):
    def __init__(self) -> None:
        self.given: list[dict[str, Tool]] = []

    def use_tools(self, tools):
        self.given.append(dict(tools))

    async def reply(self, call, transcript):
        yield "ok"


class ToolBotProvider(ResponderProvider):
    id = "toolbot"

    def __init__(self) -> None:
        self.made: list[ToolBot] = []

    def create(self, config):
        self.made.append(ToolBot())
        return self.made[-1]


class ToolBotPlugin:
    def __init__(self) -> None:
        self.provider = ToolBotProvider()

    @hookimpl
    def register_responders(self, register):
        register(self.provider)


def app_config(responder: str, *plugins: object):
    host = PluginHost()
    host.load_builtins()
    host.register(FakeProvidersPlugin(), "vh-fakes")
    for n, plugin in enumerate(plugins):
        host.register(plugin, f"vh-plugin-{n}")
    document = {
        "stt": {"provider": "fake"},
        "tts": {"provider": "fake"},
        "responder": {"provider": responder},
        "records": {"enabled": False},
    }
    return load_app_config(settings=Settings.from_dict(document, environ={}), host=host)


def test_create_handler_hands_the_registered_tools_to_the_responder():
    bot = ToolBotPlugin()
    tools = ToolsPlugin(tool_named("get_hours"), tool_named("book"))
    handler = create_handler(app_config("toolbot", bot, tools, ToolsPlugin(tool_named("x"))))
    assert isinstance(handler, ResponderCallHandler)
    # one made by load_app_config (its checks, as config check runs them), one to serve
    checked, made = bot.provider.made
    assert handler.responder is made and checked.given == made.given
    (given,) = made.given
    assert given == {"get_hours": tools.items[0], "book": tools.items[1], "x": given["x"]}
    assert given["x"].name == "x"
    # No tool registered: the responder is told so (an empty mapping), once.
    bot = ToolBotPlugin()
    create_handler(app_config("toolbot", bot))
    assert bot.provider.made[0].given == [{}]


def test_responders_ignore_tools_by_default():
    handler = create_handler(app_config("scripted", ToolsPlugin(tool_named("get_hours"))))
    assert isinstance(handler, ResponderCallHandler)
    handler.responder.use_tools({"t": tool_named("t")})  # the default: a no-op
