"""Outbound calls end to end: ``POST /api/calls`` and ``voicehost call`` place calls through
the official Twilio SDK against the local fake REST API, which then plays Twilio's side of
each call against the running voicehost app (signed status callbacks, the voice webhook, the
Media Stream): a conversation call streams and hears the greeting; a notify call gets
``<Say>`` + ``<Hangup/>`` once; bad numbers, a missing caller ID and Twilio's refusals give a
clear message (exit 1 / a 4xx with Twilio's code)."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.cli import cli
from voicehost.config import Settings
from voicehost.plugins import PluginHost
from voicehost.records import read_call
from voicehost.server.dial_api import DIAL_REST_KEY
from voicehost.server.rest import TwilioRest
from voicehost.testing.providers import FakeProvidersPlugin
from voicehost.testing.twilio_rest import FakeTwilioRest

PUBLIC = "https://voice.example.test"
TO = "+15550001111"
FROM = "+15550002222"
GREETING = "Hello from voicehost."
MESSAGE = "Your table is ready"
ENV_VARS = (
    "VOICEHOST_CONFIG",
    "VOICEHOST_PUBLIC_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
)


class Rig:
    """The fake Twilio REST API, a voicehost app using it, and an HTTP session."""

    def __init__(self, fake: FakeTwilioRest, fakes: FakeProvidersPlugin, server: TestServer):
        self.fake = fake
        self.fakes = fakes
        self.server = server
        self.db = Path()
        self.session = aiohttp.ClientSession()

    @property
    def app(self):
        return self.server.app

    async def dial(self, body: object, **kwargs) -> tuple[int, dict]:
        """POST /api/calls with ``body`` as JSON (a str is sent as is, as JSON)."""
        if isinstance(body, str):
            return await self.post(body, content_type="application/json", **kwargs)
        async with self.session.post(
            self.server.make_url("/api/calls"), json=body, **kwargs
        ) as response:
            return response.status, await response.json()

    async def post(self, data: str, *, content_type: str, **kwargs) -> tuple[int, dict]:
        """POST /api/calls with ``data`` as the body of type ``content_type``."""
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
        async with self.session.post(
            self.server.make_url("/api/calls"), data=data, headers=headers, **kwargs
        ) as response:
            return response.status, await response.json()


def _document(fake: FakeTwilioRest, db: Path, **twilio: object) -> dict:
    return {
        "server": {"public_url": PUBLIC},
        "twilio": {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "api_base_url": fake.url,
            "from_number": FROM,
            **twilio,
        },
        "stt": {"provider": "fake"},
        "tts": {"provider": "fake", "fake": {"ms_per_char": 10}},
        "responder": {
            "provider": "scripted",
            "scripted": {
                "greeting": GREETING,
                "rules": [{"match": r"\bbye\b", "reply": "Goodbye.", "hangup": True}],
            },
        },
        "records": {"path": str(db)},
    }


@pytest.fixture
async def make_rig(tmp_path):
    """``await make_rig(**twilio_overrides)``: a running app wired to a running fake."""
    made: list[Rig] = []

    async def make(records: dict | None = None, **twilio: object) -> Rig:
        fake = await FakeTwilioRest().start()
        host = PluginHost()
        host.load_builtins()
        fakes = FakeProvidersPlugin()
        host.register(fakes, name="voicehost-fakes")
        db = tmp_path / f"calls-{len(made)}.db"
        document = _document(fake, db, **twilio)
        document["records"].update(records or {})
        settings = Settings.from_dict(document, environ={})
        app = build_serve_app(load_app_config(settings=settings, host=host))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        fake.connect_voicehost(str(server.make_url("")).rstrip("/"), public_url=PUBLIC)
        rig = Rig(fake, fakes, server)
        rig.db = db
        made.append(rig)
        return rig

    yield make
    for rig in made:
        await rig.session.close()
        await rig.server.close()
        await rig.fake.close()


@pytest.fixture
async def rig(make_rig) -> Rig:
    return await make_rig()


def _says(twiml: str) -> list[str]:
    return [say.text or "" for say in ET.fromstring(twiml).iter("Say")]


def _verbs(twiml: str) -> list[str]:
    return [child.tag for child in ET.fromstring(twiml)]


# --- conversation calls ------------------------------------------------------------------------


async def test_api_conversation_call_streams_once_answered_and_hears_the_greeting(rig):
    status, body = await rig.dial({"to": TO})
    assert status == 201
    assert body == {
        "call_sid": body["call_sid"],
        "status": "queued",
        "to": TO,
        "from": FROM,
        "mode": "conversation",
    }
    call = rig.fake.call(body["call_sid"])
    assert call.form["Url"] == [PUBLIC + "/voice/webhook"]
    assert call.form["StatusCallback"] == [PUBLIC + "/voice/status"]
    assert call.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert call.form["Timeout"] == ["30"]
    assert call.form["From"] == [FROM] and call.form["To"] == [TO]
    assert "MachineDetection" not in call.form

    await rig.fake.ring(call.sid)
    assert call.callbacks == [("initiated", 204), ("ringing", 204)]
    assert call.streams == []

    answered = await rig.fake.answer(call.sid)
    (url, params, reply) = call.webhooks[0]
    assert url == PUBLIC + "/voice/webhook"
    assert (params["Direction"], params["CallStatus"]) == ("outbound-api", "in-progress")
    assert (params["From"], params["To"]) == (FROM, TO)
    assert reply.status == 200 and "Connect" in _verbs(answered.twiml)
    stream = answered.stream
    assert stream is not None
    await stream.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    assert [s.text for s in rig.fakes.tts.syntheses] == [GREETING]
    assert len(stream.received_audio) > 0

    await rig.fake.finish(call.sid)  # the callee hangs up
    await rig.fake.settled()
    assert call.statuses_posted == ["initiated", "ringing", "in-progress", "completed"]
    assert all(status == 204 for _, status in call.callbacks)
    assert rig.fake.player.errors == []


async def test_bot_hangup_closes_the_stream_and_twilio_completes_the_call(rig):
    _, body = await rig.dial({"to": TO})
    answered = await rig.fake.answer(body["call_sid"])
    stream = answered.stream
    assert stream is not None
    stt = await rig.fakes.stt.wait_for_session()
    await stream.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    stt.final("ok bye")
    await stream.wait_closed(timeout=15)  # voicehost hung up after "Goodbye."
    await rig.fake.settled()
    call = rig.fake.call(stream.call_sid)
    # Twilio goes on after </Connect>: whatever voicehost answers then ends the call.
    assert len(call.webhooks) >= 1
    assert call.status == "completed"
    assert call.statuses_posted == ["initiated", "ringing", "in-progress", "completed"]
    assert [s.text for s in rig.fakes.tts.syntheses] == [GREETING, "Goodbye."]


async def test_gather_result_goes_to_the_gather_action(rig):
    _, body = await rig.dial({"to": TO})
    answered = await rig.fake.answer(body["call_sid"])
    assert answered.stream is not None
    action = PUBLIC + "/voice/webhook?step=gather"
    gather = f'<Response><Gather input="speech dtmf" action="{action}"/></Response>'
    await rig.app[DIAL_REST_KEY].update_call(answered.stream.call_sid, twiml=gather)
    await rig.fake.settled()
    call = rig.fake.call(answered.stream.call_sid)
    assert call.gather_action == action and call.status == "in-progress"
    await rig.fake.gather(call.sid, speech="what are your hours")
    url, params, _ = call.webhooks[-1]
    assert url == action
    assert params["SpeechResult"] == "what are your hours" and params["CallSid"] == call.sid
    await rig.fake.finish(call.sid)


async def test_machine_detection_is_asked_for_and_answered_by_reaches_the_webhook(rig):
    status, body = await rig.dial({"to": TO, "machine_detection": True})
    assert status == 201
    call = rig.fake.call(body["call_sid"])
    assert call.machine_detection == "DetectMessageEnd"
    answered = await rig.fake.answer(call.sid, answered_by="machine_end_beep")
    assert call.webhooks[0][1]["AnsweredBy"] == "machine_end_beep"
    assert answered.stream is not None
    await rig.fake.finish(call.sid)


async def test_a_busy_call_never_streams(rig):
    _, body = await rig.dial({"to": TO})
    call = await rig.fake.ring(body["call_sid"])
    await rig.fake.finish(call.sid, "busy")
    assert call.statuses_posted == ["initiated", "ringing", "busy"]
    assert call.callbacks[-1] == ("busy", 204)
    assert call.webhooks == [] and call.streams == []


async def test_rest_hangup_of_a_ringing_call_cancels_it(rig):
    _, body = await rig.dial({"to": TO})
    call = await rig.fake.ring(body["call_sid"])
    await rig.app[DIAL_REST_KEY].hangup(call.sid)
    await rig.fake.settled()
    assert call.status == "canceled"
    assert call.updates == [{"Status": "completed"}]
    assert call.statuses_posted == ["initiated", "ringing", "canceled"]
    assert call.webhooks == [] and call.streams == []


async def test_transfer_twiml_on_a_streaming_call_stops_the_stream(rig):
    _, body = await rig.dial({"to": TO})
    answered = await rig.fake.answer(body["call_sid"])
    stream = answered.stream
    assert stream is not None
    dial = "<Response><Say>Transferring.</Say><Dial>+15550003333</Dial></Response>"
    await rig.app[DIAL_REST_KEY].update_call(stream.call_sid, twiml=dial)
    await rig.fake.settled()
    call = rig.fake.call(stream.call_sid)
    assert stream.close_code is not None  # Twilio sent stop; voicehost closed the socket
    assert call.twimls[-1] == dial and call.status == "in-progress"  # bridged
    assert call.stream is None
    await rig.fake.finish(call.sid)
    assert call.statuses_posted[-1] == "completed"


# --- notify calls ------------------------------------------------------------------------------


async def test_api_notify_call_says_the_message_then_hangs_up_once(rig):
    status, body = await rig.dial({"to": TO, "mode": "notify", "message": MESSAGE})
    assert (status, body["mode"]) == (201, "notify")
    call = rig.fake.call(body["call_sid"])
    assert call.url == PUBLIC + "/voice/webhook?notify=Your+table+is+ready"
    answered = await rig.fake.answer(call.sid)
    assert answered.stream is None
    assert _verbs(answered.twiml) == ["Say", "Hangup"]  # needs the lead's notify webhook
    assert _says(answered.twiml) == [MESSAGE]
    await rig.fake.settled()
    assert call.status == "completed"
    assert call.statuses_posted == ["initiated", "ringing", "in-progress", "completed"]
    again = await rig.fake.request_twiml(call.sid)  # a follow-up webhook for the call
    assert again.status == 200 and _verbs(again.text) == [] and _says(again.text) == []
    assert rig.fakes.tts.syntheses == []  # nothing streamed, nothing synthesised


async def test_notify_message_with_markup_is_said_as_text(rig):
    message = 'Table <4> & "friends" ready'
    _, body = await rig.dial({"to": TO, "mode": "notify", "message": message})
    answered = await rig.fake.answer(body["call_sid"])
    assert _says(answered.twiml) == [message]


async def test_notify_call_is_recorded(rig):
    _, body = await rig.dial({"to": TO, "mode": "notify", "message": MESSAGE})
    await rig.fake.answer(body["call_sid"])
    await rig.fake.settled()

    async def recorded() -> dict | None:
        for _ in range(200):
            record = read_call(rig.db, body["call_sid"]) if rig.db.exists() else None
            if record is not None and record.get("ended_at"):
                return record
            await asyncio.sleep(0.02)
        return None

    record = await recorded()
    assert record is not None  # needs the records lifecycle events (status callbacks)
    assert record["end_reason"] == "completed"


# --- the API's refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"to": "555-0100"}, "to must be an E.164 number"),
        ({"to": TO, "from": "12"}, "from must be an E.164 number"),
        ({"to": TO, "mode": "notify"}, "notify mode needs a message"),
        ({"to": TO, "message": "hi"}, "only for notify mode"),
        ({"to": TO, "mode": "page"}, "mode must be"),
        ({"to": TO, "extra": 1}, "unknown field"),
        ("{", "not valid UTF-8 JSON"),
        ("[" * 10000, "not valid UTF-8 JSON"),
        ("null", "must be a JSON object"),
    ],
)
async def test_bad_requests_are_400_and_place_nothing(rig, body, error):
    status, answer = await rig.dial(body)
    assert status == 400
    assert error in answer["error"]
    assert rig.fake.requests == []


async def test_wrong_content_type_and_big_body(rig):
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        status, answer = await rig.post(json.dumps({"to": TO}), content_type=content_type)
        assert status == 415 and "application/json" in answer["error"]
    big = json.dumps({"to": TO, "message": "x" * 20000})
    status, answer = await rig.dial(big)
    assert status == 413
    assert rig.fake.requests == []


async def test_missing_caller_id_is_400(make_rig):
    rig = await make_rig(from_number="")
    status, answer = await rig.dial({"to": TO})
    assert status == 400 and "no caller ID" in answer["error"]
    status, answer = await rig.dial({"to": TO, "from": FROM})
    assert status == 201


async def test_twilio_21211_is_400_with_twilios_code(rig):
    rig.fake.fail_next("create", 21211, message=f"Invalid 'To' Phone Number: {TO}")
    status, answer = await rig.dial({"to": TO})
    assert status == 400
    assert answer == {
        "error": f"Twilio error 21211: Invalid 'To' Phone Number: {TO} (HTTP 400)",
        "twilio_code": 21211,
    }


async def test_twilio_down_or_refusing_our_credentials_is_502(make_rig):
    rig = await make_rig()
    rig.fake.fail_next("create", 20500, status=500, message="Internal Server Error")
    status, answer = await rig.dial({"to": TO})
    assert (status, answer["twilio_code"]) == (502, 20500)
    wrong = await make_rig(auth_token="not-the-token")
    status, answer = await wrong.dial({"to": TO})
    assert (status, answer["twilio_code"]) == (502, 20003)


async def test_without_rest_credentials_the_route_is_503(make_rig):
    rig = await make_rig(account_sid="")
    status, answer = await rig.dial({"to": TO})
    assert status == 503 and "account_sid" in answer["error"]


async def test_api_token_is_required_when_set(make_rig):
    rig = await make_rig(records={"api_token": "s3cret"})
    status, answer = await rig.dial({"to": TO})
    assert status == 401 and answer == {"error": "missing or wrong bearer token"}
    status, _ = await rig.dial({"to": TO}, headers={"Authorization": "Bearer nope"})
    assert status == 401
    status, _ = await rig.dial({"to": TO}, headers={"Authorization": "Bearer s3cret"})
    assert status == 201


async def test_the_rest_client_is_closed_on_app_cleanup(make_rig):
    rig = await make_rig()
    rest: TwilioRest = rig.app[DIAL_REST_KEY]
    assert (await rig.dial({"to": TO}))[0] == 201
    await rig.server.close()
    assert rest.closed


async def test_public_url_is_read_when_the_call_is_placed(rig):
    from voicehost.server import SERVER_KEY

    server = rig.app[SERVER_KEY]
    server.settings = server.settings.with_public_url("https://other.example.test")
    _, body = await rig.dial({"to": TO})
    assert rig.fake.call(body["call_sid"]).url == "https://other.example.test/voice/webhook"


# --- voicehost call ----------------------------------------------------------------------------


def _config(path: Path, fake: FakeTwilioRest, **twilio: str) -> Path:
    values = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "api_base_url": fake.url,
        "from_number": FROM,
        **twilio,
    }
    lines = [
        "[server]",
        f'public_url = "{PUBLIC}"',
        "",
        "[twilio]",
    ]
    lines += [f'{key} = "{value}"' for key, value in values.items() if value]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def run_cli(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)

    async def run(*args: str):
        # The command runs its own event loop: give it a thread, the fake stays on this one.
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args))

    return run


async def test_cli_notify_call_gets_say_and_hangup(rig, run_cli, tmp_path):
    config = _config(tmp_path / "plugins.toml", rig.fake)
    result = await run_cli("call", TO, "--notify", MESSAGE, "--config", str(config))
    assert result.exit_code == 0, result.output
    sid = result.stdout.strip()
    call = rig.fake.call(sid)
    assert f"placed notify call {sid} from {FROM} to {TO} (queued)" in result.stderr
    assert call.url == PUBLIC + "/voice/webhook?notify=Your+table+is+ready"
    answered = await rig.fake.answer(sid)
    assert _verbs(answered.twiml) == ["Say", "Hangup"]  # needs the lead's notify webhook
    assert _says(answered.twiml) == [MESSAGE]


async def test_cli_conversation_call_with_from_and_machine_detection(rig, run_cli, tmp_path):
    config = _config(tmp_path / "plugins.toml", rig.fake, from_number="")
    result = await run_cli(
        "call", TO, "--from", "+15550009999", "--machine-detection", "--config", str(config)
    )
    assert result.exit_code == 0, result.output
    call = rig.fake.call(result.stdout.strip())
    assert call.from_ == "+15550009999" and call.machine_detection == "DetectMessageEnd"
    assert call.url == PUBLIC + "/voice/webhook"
    answered = await rig.fake.answer(call.sid)
    assert answered.stream is not None
    await answered.stream.wait_for_event("mark")
    assert [s.text for s in rig.fakes.tts.syntheses] == [GREETING]
    await rig.fake.finish(call.sid)


async def test_cli_public_url_flag_wins(rig, run_cli, tmp_path):
    config = _config(tmp_path / "plugins.toml", rig.fake)
    result = await run_cli(
        "call", TO, "--public-url", "https://elsewhere.example.test/", "--config", str(config)
    )
    assert result.exit_code == 0, result.output
    call = rig.fake.call(result.stdout.strip())
    assert call.url == "https://elsewhere.example.test/voice/webhook"
    assert call.status_callback == "https://elsewhere.example.test/voice/status"


@pytest.mark.parametrize(
    ("args", "twilio", "error"),
    [
        (["555-0100"], {}, "Error: to must be an E.164 number"),
        ([TO, "--from", "0"], {}, "Error: from must be an E.164 number"),
        ([TO], {"from_number": ""}, "Error: no caller ID"),
        ([TO, "--notify", ""], {}, "Error: notify mode needs a message"),
        ([TO], {"account_sid": ""}, "Error: Twilio's REST API is not configured"),
        ([TO, "--public-url", "ftp://x"], {}, "Error: --public-url must be an http(s) URL"),
        ([TO], {"auth_token": "wrong"}, "Error: Twilio error 20003: Authenticate (HTTP 401)"),
    ],
)
async def test_cli_errors_are_one_line_and_exit_1(rig, run_cli, tmp_path, args, twilio, error):
    config = _config(tmp_path / "plugins.toml", rig.fake, **twilio)
    result = await run_cli("call", *args, "--config", str(config))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(error), result.stderr
    assert rig.fake.calls == {}


async def test_cli_reports_twilio_21211(rig, run_cli, tmp_path):
    config = _config(tmp_path / "plugins.toml", rig.fake)
    rig.fake.fail_next("create", 21211, message=f"Invalid 'To' Phone Number: {TO}")
    result = await run_cli("call", TO, "--config", str(config))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: Twilio error 21211: Invalid 'To' Phone Number: {TO} (HTTP 400)"
    )


async def test_cli_unreachable_api(run_cli, tmp_path):
    fake = FakeTwilioRest()
    fake.url = "http://127.0.0.1:9"  # nothing listens on the discard port
    config = _config(tmp_path / "plugins.toml", fake)
    result = await run_cli("call", TO, "--config", str(config))
    assert result.exit_code == 1
    assert "Error: cannot reach Twilio's REST API at http://127.0.0.1:9" in result.stderr
