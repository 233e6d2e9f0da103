"""The conformance kit against the built-in ``webhook`` responder, answering through a local
aiohttp service on 127.0.0.1 that hangs up when the caller says goodbye."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from voicehost.responders.webhook import WebhookConfig, WebhookResponderProvider
from voicehost.testing.conformance import ResponderConformance, config_from_table


async def turn(request: web.Request) -> web.Response:
    """The bot's side of a turn: ``{"say", "hangup"}`` for the posted transcript; a key
    press is answered by pressing keys back, ``0`` by a transfer."""
    body = await request.json()
    if body.get("dtmf") == "0":
        return web.json_response({"say": "Connecting you.", "transfer": "+15550003333"})
    if body.get("dtmf"):
        return web.json_response({"say": f"You pressed {body['dtmf']}.", "send_dtmf": "1#"})
    transcript = body["transcript"].lower()
    if "goodbye" in transcript:
        return web.json_response({"say": "Goodbye!", "hangup": True})
    return web.json_response({"say": f"You said: {body['transcript']}.", "hangup": False})


@pytest.fixture
async def bot_service() -> AsyncIterator[str]:
    """The webhook's URL on a running local service."""
    app = web.Application()
    app.router.add_post("/turn", turn)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/turn"))
    finally:
        await server.close()


class TestWebhookResponder(ResponderConformance):
    transcript = "what are your opening hours"
    hangup_transcript = "ok, goodbye"
    dtmf_keys = "10"

    @pytest.fixture
    def provider(self) -> WebhookResponderProvider:
        return WebhookResponderProvider()

    @pytest.fixture
    def config(self, provider: WebhookResponderProvider, bot_service: str) -> WebhookConfig:
        return config_from_table(provider, {"url": bot_service, "greeting": "Hello!"})


class TestWebhookResponderUnreachable(TestWebhookResponder):
    """The service refuses connections: each turn is answered with the apology (text), so
    the text contract holds; there is no hang-up to check."""

    hangup_transcript = None
    dtmf_keys = "1"  # answered with the apology

    @pytest.fixture
    def config(self, provider: WebhookResponderProvider, refusing_url: str) -> WebhookConfig:
        return config_from_table(provider, {"url": f"{refusing_url}/turn", "timeout_s": 5})
