"""The conversation handler's edge cases, through the real server and simulator: responder
failures, bare hang-ups, silence, no TTS, history, a hang-up cut off by barge-in, the webhook
responder end to end, and the ``serve`` wiring (``create_handler``, ``[records]``)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from voicehost.app.assembly import AppConfig, create_handler, load_app_config
from voicehost.config import Settings
from voicehost.config_model import parse_table
from voicehost.contracts import HANG_UP, CallContext, HangUp, Responder
from voicehost.conversation import ResponderCallHandler
from voicehost.errors import ConfigError
from voicehost.hookspecs import hookimpl
from voicehost.plugins import PluginHost
from voicehost.records import CallStore, read_call
from voicehost.records.settings import RecordsSettings
from voicehost.responders.webhook import WebhookConfig, WebhookResponderProvider
from voicehost.server import SERVER_KEY, Binding, CallHandler, GreetingHandler, ServerSettings
from voicehost.server import build_app as build_server_app
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeSpeechProvider, FakeTranscriptionProvider


class Scripted(Responder):
    """A responder whose replies a test scripts: transcript → list of items (or an error)."""

    def __init__(self, greeting: str = "", replies: dict | None = None) -> None:
        self._greeting = greeting
        self.replies = replies or {}
        self.seen: list[tuple[str, list[tuple[str, str]]]] = []

    async def greeting(self, call: CallContext) -> AsyncIterator[str]:
        if self._greeting:
            yield self._greeting

    async def reply(self, call: CallContext, transcript: str) -> AsyncIterator[str | HangUp]:
        self.seen.append((transcript, [(t.role, t.text) for t in call.history]))
        for item in self.replies.get(transcript, []):
            if isinstance(item, Exception):
                raise item
            yield item


class Rig:
    def __init__(self, handler, stt, tts, server, sim, db):
        self.handler, self.stt, self.tts = handler, stt, tts
        self.server, self.sim, self.db = server, sim, db

    async def call(self):
        call = await self.sim.start_call()
        session = await self.stt.wait_for_session(len(self.stt.sessions) + 1)
        return call, session

    async def record(self, call_sid: str) -> dict:
        live = self.server.app[SERVER_KEY].calls.get(call_sid)
        if live is not None:
            await live.wait_ended()
        await self.handler.store.flush()
        return read_call(self.db, call_sid)


@pytest.fixture
async def make_rig(tmp_path):
    servers: list[TestServer] = []
    sims: list[TwilioSimulator] = []

    async def make(responder: Responder, *, tts: bool = True, ms_per_char: int = 5) -> Rig:
        stt, speech = FakeTranscriptionProvider(), FakeSpeechProvider()
        db = tmp_path / f"calls{len(servers)}.db"
        handler = ResponderCallHandler(responder, CallStore(db))
        tts_binding = Binding(speech, {"ms_per_char": ms_per_char}) if tts else None
        app = build_server_app(
            ServerSettings(), stt=Binding(stt, {}), tts=tts_binding, handler=handler
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        sim = TwilioSimulator(str(server.make_url("")), speed=math.inf)
        await sim.__aenter__()
        sims.append(sim)
        return Rig(handler, stt, speech, server, sim, db)

    yield make
    for sim in sims:
        await sim.__aexit__(None, None, None)
    for server in servers:
        await server.close()


def turns(record: dict) -> list[tuple[str, str, str]]:
    return [(t["role"], t["kind"], t["text"]) for t in record["turns"]]


async def test_responder_error_mid_reply_speaks_what_it_had_and_the_call_goes_on(make_rig):
    responder = Scripted(
        replies={"a": ["First part. ", RuntimeError("LLM fell over")], "b": ["Still here."]}
    )
    rig = await make_rig(responder)
    call, stt = await rig.call()
    stt.final("a")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    stt.final("b")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    assert [s.text for s in rig.tts.syntheses] == ["First part.", "Still here."]
    await call.stop()
    assert turns(await rig.record(call.call_sid)) == [
        ("caller", "final", "a"),
        ("bot", "reply", "First part."),
        ("caller", "final", "b"),
        ("bot", "reply", "Still here."),
    ]


async def test_bare_hangup_ends_the_call_without_speaking(make_rig):
    rig = await make_rig(Scripted(replies={"stop": [HANG_UP]}))
    call, stt = await rig.call()
    stt.final("stop")
    assert await call.wait_closed(timeout=10) == 1000
    assert rig.tts.syntheses == []
    record = await rig.record(call.call_sid)
    assert record["end_reason"] == "bot-hangup"
    assert turns(record) == [("caller", "final", "stop")]


async def test_custom_hangup_reason_is_the_recorded_end_reason(make_rig):
    # A responder that hands the call over says so in its HangUp; the record keeps the reason.
    rig = await make_rig(
        Scripted(replies={"agent please": ["Putting you through.", HangUp("transferred")]})
    )
    call, stt = await rig.call()
    stt.final("agent please")
    assert await call.wait_closed(timeout=10) == 1000
    assert [s.text for s in rig.tts.syntheses] == ["Putting you through."]
    record = await rig.record(call.call_sid)
    assert record["end_reason"] == "transferred"
    assert turns(record) == [
        ("caller", "final", "agent please"),
        ("bot", "reply", "Putting you through."),
    ]


async def test_empty_reply_says_nothing_and_records_only_the_caller(make_rig):
    rig = await make_rig(Scripted(replies={"hm": ["", ""]}))
    call, stt = await rig.call()
    stt.final("hm")
    stt.final("   ")  # a blank final is ignored altogether
    await call.dtmf("1")  # a marker that the turns before it were handled
    await call.stop()
    record = await rig.record(call.call_sid)
    assert turns(record) == [("caller", "final", "hm"), ("event", "dtmf", "1")]
    assert call.events_of("media") == []


async def test_without_tts_text_is_recorded_and_hangup_still_happens(make_rig):
    rig = await make_rig(Scripted(greeting="Hi.", replies={"bye": ["Bye.", HANG_UP]}), tts=False)
    call, stt = await rig.call()
    stt.final("bye")
    assert await call.wait_closed(timeout=10) == 1000
    record = await rig.record(call.call_sid)
    assert turns(record) == [
        ("bot", "greeting", "Hi."),
        ("caller", "final", "bye"),
        ("bot", "reply", "Bye."),
    ]
    assert record["end_reason"] == "bot-hangup"


async def test_responder_sees_the_history_before_each_transcript(make_rig):
    responder = Scripted(greeting="Hello.", replies={"one": ["Reply one."], "two": ["Two."]})
    rig = await make_rig(responder)
    call, stt = await rig.call()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    stt.final("one")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    stt.final("two")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-3")
    assert responder.seen == [
        ("one", [("bot", "Hello.")]),
        ("two", [("bot", "Hello."), ("caller", "one"), ("bot", "Reply one.")]),
    ]
    await call.stop()


async def test_barge_in_cancels_a_pending_hangup(make_rig):
    # 200 ms a character: "Goodbye." plays 1.6 s; its text stream (and the HangUp after it)
    # is fully read before it has played, so the hang-up is pending when the caller speaks.
    rig = await make_rig(
        Scripted(replies={"bye": ["Goodbye.", HANG_UP], "wait": ["Yes?"]}), ms_per_char=200
    )
    call, stt = await rig.call()
    stt.final("bye")
    await call.wait_for_audio(1600, timeout=10)
    stt.speech_start()  # "wait, one more thing"
    await call.wait_for_event("clear", timeout=10)
    stt.final("wait")
    await call.wait_for(lambda: any(s.text == "Yes?" for s in rig.tts.syntheses), timeout=10)
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    assert call.close_code is None  # still connected: the hang-up was dropped
    await call.stop()
    record = await rig.record(call.call_sid)
    # "Goodbye." was cut off before it played to its end: the caller did not hear it, so no
    # bot turn is kept for it.
    assert [k for _, k, _ in turns(record)] == ["final", "barge_in", "final", "reply"]
    assert record["end_reason"] == "caller-hangup"


async def test_webhook_responder_end_to_end(make_rig):
    posted: list[dict] = []

    async def bot(request: web.Request) -> web.Response:
        body = await request.json()
        posted.append(body)
        if body["transcript"] == "bye":
            return web.json_response({"say": "Bye from the webhook.", "hangup": True})
        if body["transcript"] == "boom":
            return web.Response(status=502)
        return web.json_response({"say": f"You said {body['transcript']}."})

    app = web.Application()
    app.router.add_post("/turn", bot)
    webhook_server = TestServer(app, host="127.0.0.1")
    await webhook_server.start_server()
    provider = WebhookResponderProvider()
    responder = provider.create(
        WebhookConfig(
            url=str(webhook_server.make_url("/turn")),
            apology="Sorry.",
            greeting="Webhook bot here.",
        )
    )
    try:
        rig = await make_rig(responder)
        call, stt = await rig.call()
        await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
        stt.final("hello")
        await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
        stt.final("boom")
        await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-3")
        stt.final("bye")
        assert await call.wait_closed(timeout=10) == 1000
        assert [s.text for s in rig.tts.syntheses] == [
            "Webhook bot here.",
            "You said hello.",
            "Sorry.",
            "Bye from the webhook.",
        ]
        assert posted[0]["call_sid"] == call.call_sid
        assert posted[0]["stream_sid"] == call.stream_sid
        assert posted[0]["from"] == "+15005550006" and posted[0]["to"] == "+15005550001"
        assert posted[0]["history"] == [{"role": "bot", "text": "Webhook bot here."}]
        assert posted[2]["history"][-2:] == [
            {"role": "caller", "text": "boom"},
            {"role": "bot", "text": "Sorry."},
        ]
        assert (await rig.record(call.call_sid))["end_reason"] == "bot-hangup"
    finally:
        await responder.aclose()
        await webhook_server.close()


def _app_config(document: dict) -> AppConfig:
    host = PluginHost()
    host.load_builtins()
    host.register(_NoProviders(), name="voicehost-none")
    document = {"stt": {"provider": "none"}, "tts": {"provider": "none"}, **document}
    return load_app_config(settings=Settings.from_dict(document, environ={}), host=host)


class _NoProviders:
    """Registers an STT and a TTS provider that are never used (create_handler needs neither)."""

    @staticmethod
    @hookimpl
    def register_transcription_providers(register):
        stt = FakeTranscriptionProvider()
        stt.id = "none"
        register(stt)

    @staticmethod
    @hookimpl
    def register_speech_providers(register):
        tts = FakeSpeechProvider()
        tts.id = "none"
        register(tts)


def test_create_handler_uses_the_responder_and_records_settings(tmp_path):
    config = _app_config(
        {"responder": {"provider": "scripted"}, "records": {"path": str(tmp_path / "r.db")}}
    )
    handler = create_handler(config)
    assert isinstance(handler, ResponderCallHandler)
    assert handler.store is not None and handler.store.path == tmp_path / "r.db"
    handler.store.close()
    handler = create_handler(_app_config({"records": {"enabled": False}}))
    assert isinstance(handler, ResponderCallHandler) and handler.store is None


def test_create_handler_without_responder_falls_back_to_server_greeting():
    config = _app_config({"server": {"greeting": "Hi"}})
    no_responder = attrs.evolve(
        config,
        checked=attrs.evolve(config.checked, runtime=attrs.evolve(config.runtime, responder=None)),
    )
    greeter = create_handler(no_responder)
    assert isinstance(greeter, GreetingHandler) and greeter.greeting == "Hi"
    silent = no_responder.with_server(ServerSettings())
    assert type(create_handler(silent)) is CallHandler


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"enabled": "yes"}, r"\[records\] enabled: must be a valid boolean, not 'yes'"),
        ({"path": ""}, r"\[records\] path: .*at least 1 character"),
        ({"api_token": 5}, r"\[records\] api_token: must be a valid string, not 5"),
        ({"pth": "x.db"}, r"\[records\] pth: unknown key \(did you mean 'path'\?\)"),
    ],
)
def test_bad_records_table_is_a_config_error(table, message):
    with pytest.raises(ConfigError, match=message):
        parse_table(RecordsSettings, table, table="records")
