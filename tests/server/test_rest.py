"""Twilio's REST API through the official SDK (:class:`voicehost.server.rest.TwilioRest`)
against the local fake (:class:`voicehost.testing.twilio_rest.FakeTwilioRest`): what goes on
the wire (auth, form fields), what comes back, and every error as one clear line."""

from __future__ import annotations

import base64

import aiohttp
import pytest
from aiohttp import web

from voicehost.server import TwilioSettings
from voicehost.server.rest import RestCall, TwilioRest, TwilioRestError
from voicehost.testing.twilio_rest import FakeTwilioRest

TO = "+15550001111"
FROM = "+15550002222"
URL = "https://voice.example.test/voice/webhook"
STATUS = "https://voice.example.test/voice/status"


@pytest.fixture
async def fake():
    async with FakeTwilioRest() as server:
        yield server


@pytest.fixture
async def rest(fake):
    async with TwilioRest(fake.account_sid, fake.auth_token, api_base_url=fake.url) as client:
        yield client


async def test_create_call_sends_twilios_form_with_basic_auth(fake, rest):
    call = await rest.create_call(
        to=TO, from_=FROM, url=URL, status_callback=STATUS, machine_detection="DetectMessageEnd"
    )
    assert call == RestCall(
        sid=call.sid, status="queued", direction="outbound-api", to=TO, from_=FROM
    )
    assert call.sid.startswith("CA") and len(call.sid) == 34
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{fake.account_sid}/Calls.json"
    assert request.auth == (fake.account_sid, fake.auth_token)
    assert request.headers["User-Agent"].startswith("twilio-python/")
    assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    form = request.form
    assert (form["To"], form["From"], form["Url"]) == (TO, FROM, URL)
    assert form["StatusCallback"] == STATUS
    # repeated keys, one per event
    assert form.getall("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
    assert form["Timeout"] == "30"
    assert form["MachineDetection"] == "DetectMessageEnd"
    assert "Twiml" not in form and "ApplicationSid" not in form
    assert fake.call(call.sid).status_callback_events == (
        "initiated",
        "ringing",
        "answered",
        "completed",
    )


async def test_create_call_without_callback_or_detection_sends_neither(fake, rest):
    await rest.create_call(to="sip:alice@example.com", from_="client:bot", url=URL, timeout_s=15)
    form = fake.requests[-1].form
    assert form["To"] == "sip:alice@example.com" and form["From"] == "client:bot"
    assert form["Timeout"] == "15"
    for key in ("StatusCallback", "StatusCallbackEvent", "MachineDetection"):
        assert key not in form


async def test_wrong_token_is_twilio_20003_http_401(fake):
    async with TwilioRest(fake.account_sid, "wrong", api_base_url=fake.url) as rest:
        with pytest.raises(TwilioRestError) as caught:
            await rest.create_call(to=TO, from_=FROM, url=URL)
    error = caught.value
    assert (error.status, error.code, error.message) == (401, 20003, "Authenticate")
    assert str(error) == "Twilio error 20003: Authenticate (HTTP 401)"
    assert fake.calls == {}
    assert fake.requests[-1].auth == (fake.account_sid, "wrong")


async def test_another_account_sid_is_refused(fake):
    async with TwilioRest("AC" + "0" * 32, fake.auth_token, api_base_url=fake.url) as rest:
        with pytest.raises(TwilioRestError) as caught:
            await rest.create_call(to=TO, from_=FROM, url=URL)
    assert caught.value.status == 401 and fake.calls == {}


async def test_bad_to_is_21211_with_twilios_message(rest):
    with pytest.raises(TwilioRestError) as caught:
        await rest.create_call(to="+1555abc", from_=FROM, url=URL)
    assert str(caught.value) == "Twilio error 21211: Invalid 'To' Phone Number: +1555abc (HTTP 400)"
    assert (caught.value.status, caught.value.code) == (400, 21211)


async def test_injected_failures_keep_code_and_status(fake, rest):
    fake.fail_next("create", 21215, message="Account not authorized to call +15550001111")
    with pytest.raises(TwilioRestError) as caught:
        await rest.create_call(to=TO, from_=FROM, url=URL)
    assert caught.value.code == 21215
    assert "Account not authorized to call +15550001111" in str(caught.value)
    fake.fail_next("create", 20500, status=500, message="Internal Server Error")
    with pytest.raises(TwilioRestError) as caught:
        await rest.create_call(to=TO, from_=FROM, url=URL)
    assert (caught.value.status, caught.value.code) == (500, 20500)
    created = await rest.create_call(to=TO, from_=FROM, url=URL)  # one failure each
    assert created.status == "queued"


async def test_update_records_twiml_and_status(fake, rest):
    call = await rest.create_call(to=TO, from_=FROM, url=URL)
    twiml = "<Response><Dial>+15550003333</Dial></Response>"
    updated = await rest.update_call(call.sid, twiml=twiml)
    assert updated.sid == call.sid
    request = fake.requests[-1]
    assert request.path.endswith(f"/Calls/{call.sid}.json")
    assert request.form["Twiml"] == twiml
    assert fake.call(call.sid).twiml == twiml  # not answered yet: kept for the answer
    ended = await rest.update_call(call.sid, status="canceled")
    assert ended.status == "canceled"
    assert (await rest.fetch_call(call.sid)).status == "canceled"


async def test_update_needs_something_to_update(rest):
    with pytest.raises(ValueError, match="status, twiml or url"):
        await rest.update_call("CA" + "1" * 32)


async def test_update_of_unknown_call_is_20404(rest):
    with pytest.raises(TwilioRestError) as caught:
        await rest.update_call("CA" + "1" * 32, twiml="<Response/>")
    assert (caught.value.status, caught.value.code) == (404, 20404)


async def test_hangup_of_an_ended_or_unknown_call_is_not_an_error(fake, rest):
    call = await rest.create_call(to=TO, from_=FROM, url=URL)
    await rest.hangup(call.sid)
    assert fake.call(call.sid).status == "canceled"  # it was still queued
    assert fake.requests[-1].form["Status"] == "completed"
    await rest.hangup(call.sid)  # 21220: not in progress
    assert fake.requests[-1].status == 400
    await rest.hangup("CA" + "2" * 32)  # 20404
    assert fake.requests[-1].status == 404


async def test_hangup_reports_other_refusals(fake, rest):
    call = await rest.create_call(to=TO, from_=FROM, url=URL)
    fake.fail_next("update", 20429, status=429, message="Too many requests")
    with pytest.raises(TwilioRestError) as caught:
        await rest.hangup(call.sid)
    assert caught.value.status == 429


async def test_unreachable_api_is_one_clear_line():
    server = web.Server(lambda request: web.Response())
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await runner.cleanup()  # nothing listens there any more
    async with TwilioRest(
        "AC" + "1" * 32, "token", api_base_url=f"http://127.0.0.1:{port}"
    ) as rest:
        with pytest.raises(TwilioRestError) as caught:
            await rest.create_call(to=TO, from_=FROM, url=URL)
    error = caught.value
    assert error.status is None and error.code is None and not error.reached
    assert str(error).startswith(
        f"cannot reach Twilio's REST API at http://127.0.0.1:{port} to create a call: "
    )
    assert "\n" not in str(error)


async def test_a_proxy_error_page_has_no_twilio_code():
    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bad_gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with TwilioRest("AC" + "1" * 32, "token", api_base_url=base) as rest:
            with pytest.raises(TwilioRestError) as caught:
                await rest.create_call(to=TO, from_=FROM, url=URL)
    finally:
        await runner.cleanup()
    assert (caught.value.status, caught.value.code) == (502, None)
    assert str(caught.value) == "Twilio error: request refused (HTTP 502)"


async def test_closed_client_refuses_and_closing_twice_is_fine(fake):
    rest = TwilioRest(fake.account_sid, fake.auth_token, api_base_url=fake.url)
    await rest.create_call(to=TO, from_=FROM, url=URL)
    await rest.aclose()
    await rest.aclose()
    assert rest.closed
    with pytest.raises(TwilioRestError, match="closed"):
        await rest.create_call(to=TO, from_=FROM, url=URL)


def test_from_settings_needs_both_credentials():
    assert TwilioRest.from_settings(TwilioSettings()) is None
    assert TwilioRest.from_settings(TwilioSettings(account_sid="AC1")) is None
    assert TwilioRest.from_settings(TwilioSettings(auth_token="t")) is None
    rest = TwilioRest.from_settings(
        TwilioSettings(account_sid="AC1", auth_token="t", api_base_url="http://127.0.0.1:1/")
    )
    assert rest is not None
    assert (rest.account_sid, rest.api_base_url) == ("AC1", "http://127.0.0.1:1")
    assert "t" not in repr(rest).replace("TwilioRest", "").replace("http", "")


def test_constructor_checks():
    with pytest.raises(ValueError):
        TwilioRest("", "token")
    with pytest.raises(ValueError):
        TwilioRest("AC1", "token", timeout_s=0)


# --- the fake's own checks, on the wire -------------------------------------------------------


async def _post(fake: FakeTwilioRest, path: str, form: dict | list, *, auth: bool = True):
    headers = {}
    if auth:
        token = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    url = f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, headers=headers) as response,
    ):
        return response.status, await response.json()


GOOD = {"To": TO, "From": FROM, "Url": URL}


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": FROM, "Url": URL}, 21201),
        ({**GOOD, "To": "555-0100"}, 21211),
        ({"To": TO, "Url": URL}, 21603),
        ({**GOOD, "From": "sip:bot@example.com"}, 21212),
        ({"To": TO, "From": FROM}, 21205),
        ({**GOOD, "Twiml": "<Response/>"}, 21205),
        ({**GOOD, "Url": "ftp://example.com/x"}, 21205),
        ({**GOOD, "StatusCallback": "not a url"}, 21609),
        ({**GOOD, "StatusCallbackEvent": "hungup"}, 21626),
        ({**GOOD, "Timeout": "thirty"}, 20001),
        ({**GOOD, "Timeout": "601"}, 20001),
        ({**GOOD, "MachineDetection": "Yes"}, 20001),
        ({**GOOD, "Method": "PUT"}, 20001),
        ({"To": TO, "From": FROM, "Twiml": "<Response><Say>hi</Response>"}, 12100),
    ],
)
async def test_fake_checks_create_fields(fake, form, code):
    status, body = await _post(fake, "/Calls.json", form)
    assert (status, body["code"]) == (400, code)
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["status"] == 400 and body["more_info"].endswith(str(code))
    assert fake.calls == {}


async def test_fake_answers_twilios_error_json_without_auth(fake):
    status, body = await _post(fake, "/Calls.json", GOOD, auth=False)
    assert status == 401
    assert body == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert fake.requests[-1].auth is None and fake.requests[-1].status == 401


async def test_fake_create_answer_has_twilios_call_shape(fake):
    status, body = await _post(fake, "/Calls.json", GOOD)
    assert status == 201
    for key in ("sid", "account_sid", "to", "from", "status", "direction", "uri", "date_created"):
        assert key in body
    assert body["account_sid"] == fake.account_sid and body["status"] == "queued"


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({}, 20001),
        ({"Status": "busy"}, 20001),
        ({"Twiml": "<Hangup/>"}, 12100),
        ({"Url": "javascript:alert(1)"}, 21205),
    ],
)
async def test_fake_checks_update_fields(fake, form, code):
    _, created = await _post(fake, "/Calls.json", GOOD)
    status, body = await _post(fake, f"/Calls/{created['sid']}.json", form)
    assert (status, body["code"]) == (400, code)
    assert fake.call(created["sid"]).updates == []


async def test_edge_and_region_variables_do_not_rewrite_a_custom_base_url(fake, monkeypatch):
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    async with TwilioRest(fake.account_sid, fake.auth_token, api_base_url=fake.url) as rest:
        call = await rest.create_call(to=TO, from_=FROM, url=URL)
    assert call.sid in fake.calls
