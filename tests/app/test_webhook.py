"""The webhook responder against a local aiohttp server: the POSTed JSON, ``say``,
``hangup``, and the apology on HTTP errors, bad bodies, timeouts and refused connections."""

from __future__ import annotations

import asyncio
import logging
import math
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from voicehost.config_model import parse_table
from voicehost.contracts import HANG_UP, CallContext, ConversationTurn, collect_reply
from voicehost.errors import ConfigError
from voicehost.responders.webhook import WebhookConfig, WebhookResponderProvider

APOLOGY = "Sorry, say again?"


class Bot:
    """A scriptable webhook endpoint recording what it received."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.answer: web.StreamResponse | None = None
        self.delay_s = 0.0
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.delay_s:
            await self.release.wait()
        return self.answer or web.json_response({"say": "ok"})


@pytest.fixture
async def bot():
    bot = Bot()
    app = web.Application()
    app.router.add_post("/turn", bot.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    bot.url = str(server.make_url("/turn"))
    yield bot
    bot.release.set()
    await server.close()


def parse(config: dict) -> WebhookConfig:
    """``config`` parsed as the host parses a ``[responder.webhook]`` table."""
    return parse_table(WebhookConfig, config, table="responder.webhook")


def responder_for(url: str, **extra):
    return WebhookResponderProvider().create(parse({"url": url, "apology": APOLOGY, **extra}))


def call() -> CallContext:
    return CallContext(
        call_sid="CA" + "1" * 32,
        stream_sid="MZ" + "2" * 32,
        from_number="+15550001111",
        to_number="+15550002222",
        history=[ConversationTurn("bot", "Hello."), ConversationTurn("caller", "Hi.")],
    )


async def test_success_speaks_say_and_posts_the_documented_json(bot):
    bot.answer = web.json_response({"say": "We open at nine."})
    responder = responder_for(bot.url, headers={"Authorization": "Bearer s3cret"})
    try:
        assert await collect_reply(responder.reply(call(), "when do you open")) == (
            "We open at nine.",
            None,
        )
    finally:
        await responder.aclose()
    assert bot.received == [
        {
            "call_sid": "CA" + "1" * 32,
            "stream_sid": "MZ" + "2" * 32,
            "from": "+15550001111",
            "to": "+15550002222",
            "transcript": "when do you open",
            "history": [{"role": "bot", "text": "Hello."}, {"role": "caller", "text": "Hi."}],
        }
    ]
    assert bot.headers[0]["Authorization"] == "Bearer s3cret"


async def test_hangup_true_ends_after_say(bot):
    bot.answer = web.json_response({"say": "Bye now.", "hangup": True})
    responder = responder_for(bot.url)
    try:
        items = [item async for item in responder.reply(call(), "bye")]
    finally:
        await responder.aclose()
    assert items == ["Bye now.", HANG_UP]


async def test_history_limit_sends_only_the_last_turns(bot):
    responder = responder_for(bot.url, history_limit=1)
    try:
        await collect_reply(responder.reply(call(), "x"))
    finally:
        await responder.aclose()
    assert bot.received[0]["history"] == [{"role": "caller", "text": "Hi."}]


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (lambda: web.Response(status=500, text="boom"), "HTTP 500"),
        (lambda: web.Response(status=200, text="not json"), "not JSON"),
        (lambda: web.json_response(["say", "x"]), "not a JSON object"),
        (lambda: web.json_response({"say": 42}), "'say' that is not a string"),
        (lambda: web.json_response({"say": "x", "hangup": "yes"}), "'hangup' that is not"),
    ],
)
async def test_bad_answer_speaks_apology_logs_cause_and_call_goes_on(bot, caplog, answer, cause):
    responder = responder_for(bot.url)
    try:
        bot.answer = answer()
        with caplog.at_level(logging.WARNING, logger="voicehost.responders.webhook"):
            assert await collect_reply(responder.reply(call(), "hi")) == (APOLOGY, None)
        assert cause in caplog.text and "CA" + "1" * 32 in caplog.text
        # The next turn works again: the error did not break the responder.
        bot.answer = web.json_response({"say": "Back."})
        assert await collect_reply(responder.reply(call(), "hello?")) == ("Back.", None)
    finally:
        await responder.aclose()


async def test_timeout_speaks_apology_and_next_turn_works(bot, caplog):
    bot.delay_s = 10
    responder = responder_for(bot.url, timeout_s=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="voicehost.responders.webhook"):
            assert await collect_reply(responder.reply(call(), "hi")) == (APOLOGY, None)
        assert "did not answer within 0.2 s" in caplog.text
        bot.delay_s = 0
        assert await collect_reply(responder.reply(call(), "hi again")) == ("ok", None)
    finally:
        await responder.aclose()


async def test_refused_connection_speaks_apology(caplog):
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    responder = responder_for(f"http://127.0.0.1:{port}/turn")
    try:
        with caplog.at_level(logging.WARNING, logger="voicehost.responders.webhook"):
            assert await collect_reply(responder.reply(call(), "hi")) == (APOLOGY, None)
        assert "failed" in caplog.text
    finally:
        await responder.aclose()


async def test_greeting_is_configured_text():
    responder = responder_for("http://127.0.0.1:9/turn", greeting="Welcome.")
    assert [t async for t in responder.greeting(call())] == ["Welcome."]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"url: is required"),
        ({"url": ""}, r"url: must be an http\(s\):// URL, not ''"),
        ({"url": "example.com/turn"}, r"url: must be an http\(s\):// URL, not 'example.com/turn'"),
        ({"url": "ftp://example.com/x"}, r"url: must be an http\(s\):// URL, not 'ftp://"),
        ({"url": "http://x/t", "timeout_s": 0}, r"timeout_s: must be greater than 0, not 0"),
        ({"url": "http://x/t", "timeout_s": -1}, r"timeout_s: must be greater than 0, not -1"),
        # TOML's inf passed the range check, then every turn died in aiohttp (OverflowError)
        ({"url": "http://x/t", "timeout_s": math.inf}, r"timeout_s: must be a finite number"),
        ({"url": "http://x/t", "timeout_s": "5"}, r"timeout_s: must be a valid number, not '5'"),
        ({"url": "http://x/t", "headers": "x"}, r"headers: must be a valid dictionary, not 'x'"),
        ({"url": "http://x/t", "headers": {"X-Key": 5}}, r"headers\.X-Key: .*string, not 5"),
        ({"url": "http://x/t", "apology": None}, r"apology: must be a valid string, not None"),
        ({"url": "http://x/t", "history_limit": 1.5}, r"history_limit: .*integer, not 1.5"),
        ({"url": "http://x/t", "history_limit": -1}, r"history_limit: .*equal to 0, not -1"),
        (
            {"url": "http://x/t", "timeout": 5},
            r"timeout: unknown key \(did you mean 'timeout_s'\?\)",
        ),
    ],
)
def test_bad_config_is_a_clear_config_error(config, message):
    with pytest.raises(ConfigError, match=r"^plugins\.toml: \[responder\.webhook\] " + message):
        parse(config)
