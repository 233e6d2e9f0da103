"""A running voicehost app whose responder is the ``openai`` plugin on the fake Chat
Completions server, for the end-to-end tests of ``test_openai_calls.py``.

The app is what ``voicehost serve`` runs (:func:`voicehost.app.assembly.build_serve_app`),
built from a plugin host holding the fake STT/TTS providers
(:class:`~voicehost.testing.providers.FakeProvidersPlugin`), the ``openai`` responder plugin
and any plugin a test adds (``register_tools``). Its ``[twilio]`` table points at a
:class:`~voicehost.testing.twilio_rest.FakeTwilioRest`, which also plays Twilio's side of
calls: inbound calls through its simulator (signed webhooks), outbound ones placed with
``POST /api/calls`` then answered (the only calls Twilio's REST API can later transfer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from fakes.openai_chat import FakeOpenAIChat

import voicehost_openai_responder
from voicehost.app.assembly import AppConfig, build_serve_app, create_handler, load_app_config
from voicehost.config import Settings
from voicehost.conversation import ResponderCallHandler
from voicehost.plugins import PluginHost
from voicehost.records import read_call
from voicehost.server import SERVER_KEY, Call, CallHandler
from voicehost.testing.providers import FakeProvidersPlugin, FakeTranscriptionSession
from voicehost.testing.twilio import SimulatedCall, TwilioSimulator
from voicehost.testing.twilio_rest import FakeTwilioRest
from voicehost_openai_responder import OpenAIResponder

PUBLIC = "https://voice.example.test"
#: The bot's number (outbound calls come from it) and the number it calls.
BOT_NUMBER = "+15550002222"
CALLEE = "+15550001111"
#: The fake TTS: ms of audio per character of text.
MS_PER_CHAR = 10


class Line:
    """The app, its fakes and the records of one test.

    Attributes:
        chat: the fake Chat Completions server.
        rest: the fake Twilio REST API (and Twilio's side of calls).
        sim: the simulator inbound calls come from (signed with the fake's auth token).
        fakes: the fake STT/TTS providers the app uses.
        handler: the conversation handler (the responder, the record store).
        server: the running app.
    """

    def __init__(
        self,
        chat: FakeOpenAIChat,
        rest: FakeTwilioRest,
        fakes: FakeProvidersPlugin,
        handler: ResponderCallHandler,
        server: TestServer,
    ) -> None:
        self.chat = chat
        self.rest = rest
        self.fakes = fakes
        self.handler = handler
        self.server = server
        self.sim: TwilioSimulator = rest.connect_voicehost(
            str(server.make_url("")).rstrip("/"), public_url=PUBLIC
        )
        self._sessions = 0

    @property
    def responder(self) -> OpenAIResponder:
        responder = self.handler.responder
        assert isinstance(responder, OpenAIResponder)
        return responder

    @property
    def db(self) -> Path:
        assert self.handler.store is not None
        return self.handler.store.path

    def said(self) -> list[str]:
        """Every text the fake TTS was asked to speak, in order."""
        return [synthesis.text for synthesis in self.fakes.tts.syntheses]

    async def _session(self) -> FakeTranscriptionSession:
        self._sessions += 1
        return await self.fakes.stt.wait_for_session(self._sessions)

    async def inbound(self) -> tuple[SimulatedCall, FakeTranscriptionSession]:
        """A caller rings the bot (from ``+15005550006`` to ``+15005550001``); the stream
        and its STT session."""
        call = await self.sim.start_call()
        return call, await self._session()

    async def outbound(self) -> tuple[SimulatedCall, FakeTranscriptionSession]:
        """The bot calls :data:`CALLEE` (``POST /api/calls``) and the callee answers."""
        async with aiohttp.ClientSession() as session:
            url = self.server.make_url("/api/calls")
            async with session.post(url, json={"to": CALLEE}) as response:
                assert response.status == 201, await response.text()
                sid = (await response.json())["call_sid"]
        answered = await self.rest.answer(sid)
        assert answered.stream is not None, answered.twiml
        return answered.stream, await self._session()

    def live(self, call_sid: str) -> Call | None:
        """The server's call object, while the call lasts."""
        return self.server.app[SERVER_KEY].calls.get(call_sid)

    async def record(self, call_sid: str) -> dict[str, Any]:
        """The call's record (``read_call``) once the call has ended."""
        live = self.live(call_sid)
        if live is not None:
            await asyncio.wait_for(live.wait_ended(), 15)
        assert self.handler.store is not None
        await self.handler.store.flush()
        record = read_call(self.db, call_sid)
        assert record is not None
        return record

    async def turns(self, call_sid: str) -> list[tuple[str, str, str]]:
        """``(role, kind, text)`` of every recorded turn, once the call has ended."""
        record = await self.record(call_sid)
        return [(t["role"], t["kind"], t["text"]) for t in record["turns"]]


def _document(chat: FakeOpenAIChat, rest: FakeTwilioRest, db: Path, keys: dict) -> dict:
    return {
        "server": {"public_url": PUBLIC},
        "twilio": {
            "account_sid": rest.account_sid,
            "auth_token": rest.auth_token,
            "api_base_url": rest.url,
            "from_number": BOT_NUMBER,
        },
        "stt": {"provider": "fake"},
        "tts": {"provider": "fake", "fake": {"ms_per_char": MS_PER_CHAR}},
        "responder": {
            "provider": "openai",
            "openai": {"api_key": "sk-test", "base_url": chat.base_url, **keys},
        },
        "records": {"path": str(db)},
    }


async def start_line(
    chat: FakeOpenAIChat, db: Path, *, plugins: Sequence[object] = (), **keys: Any
) -> Line:
    """Start the app (``[responder.openai]`` keys ``keys`` on top of the fake's URL and key;
    ``plugins`` registered into its plugin host) and the fake Twilio REST API. The responder
    retries after 0 – 10 ms instead of 0.2 – 0.6 s. Close with :func:`stop_line`."""
    rest = await FakeTwilioRest().start()
    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    host.register(voicehost_openai_responder, name="voicehost-openai-responder")
    for number, plugin in enumerate(plugins):
        record = host.register(plugin, name=f"test-plugin-{number}")
        assert record.status != "failed", record
    settings = Settings.from_dict(_document(chat, rest, db, keys), environ={})
    made: list[ResponderCallHandler] = []

    def factory(config: AppConfig) -> CallHandler:
        handler = create_handler(config)
        assert isinstance(handler, ResponderCallHandler)
        made.append(handler)
        return handler

    app = build_serve_app(load_app_config(settings=settings, host=host), handler_factory=factory)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    line = Line(chat, rest, fakes, made[0], server)
    line.responder.retry_backoff_s = (0.0, 0.01)  # type: ignore[misc]
    return line


async def stop_line(line: Line) -> None:
    """Close the app (its responder and records) and the fake Twilio REST API."""
    await line.rest.close()
    await line.server.close()


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait until ``check()`` holds (a bounded wait, not a timing assertion)."""

    async def poll() -> None:
        while True:
            if check():
                return
            await asyncio.sleep(0.002)

    await asyncio.wait_for(poll(), timeout_s)
