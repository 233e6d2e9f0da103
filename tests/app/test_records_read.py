"""``voicehost calls list/show`` and ``GET /api/calls/{call_sid}`` return the same records."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from voicehost.records import read_call
from voicehost.records.api import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    add_call_routes,
    parse_limit,
)
from voicehost.records.cli import calls

SID = "CA" + "d" * 32  # the call in the recorded_db fixture (conftest.py)


def test_calls_show_json_is_the_stored_call(recorded_db):
    result = CliRunner().invoke(calls, ["show", SID, "--db", str(recorded_db), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown == read_call(recorded_db, SID)
    assert [t["text"] for t in shown["turns"]] == ["Hello.", "what are your hours", "Nine to five."]


def test_calls_show_text_lists_turns_with_times(recorded_db):
    result = CliRunner().invoke(calls, ["show", SID, "--db", str(recorded_db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        "2.10s" in line and "caller" in line and "what are your hours" in line for line in lines
    )
    assert "(stop)" in result.output


def test_calls_list_json_and_table(recorded_db):
    result = CliRunner().invoke(calls, ["list", "--db", str(recorded_db), "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["call_sid"] == SID and row["turn_count"] == 3 and row["end_reason"] == "stop"
    table = CliRunner().invoke(calls, ["list", "--db", str(recorded_db)])
    assert SID in table.output and "+15551 → +15552" in table.output


def test_calls_reads_records_path_from_config(recorded_db, tmp_path):
    config = tmp_path / "plugins.toml"
    config.write_text(f'[records]\npath = "{recorded_db}"\n')
    result = CliRunner().invoke(calls, ["list", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["call_sid"] == SID


def test_calls_show_unknown_sid_and_missing_db_exit_1(recorded_db, tmp_path):
    unknown = CliRunner().invoke(calls, ["show", "CA" + "0" * 32, "--db", str(recorded_db)])
    assert unknown.exit_code == 1 and "no call" in unknown.output
    missing = CliRunner().invoke(calls, ["list", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "no call records" in missing.output


async def _client(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_api_call_returns_same_json_as_cli(recorded_db):
    app = web.Application()
    add_call_routes(app, recorded_db)
    client = await _client(app)
    try:
        response = await client.get(f"/api/calls/{SID}")
        assert response.status == 200
        body = await response.json()
        cli = CliRunner().invoke(calls, ["show", SID, "--db", str(recorded_db), "--json"])
        assert body == json.loads(cli.output)
        missing = await client.get("/api/calls/CA" + "0" * 32)
        assert missing.status == 404 and "no call" in (await missing.json())["error"]
        listed = await client.get("/api/calls?limit=5")
        assert [c["call_sid"] for c in await listed.json()] == [SID]
        bad = await client.get("/api/calls?limit=zero")
        assert bad.status == 400
    finally:
        await client.close()


@pytest.mark.parametrize(
    "limit",
    [
        "99999999999999999999",  # overflowed SQLite's INTEGER: was a 500 with a traceback
        "9" * 5000,  # beyond int()'s digit limit
        str(MAX_LIST_LIMIT + 1),
        "0",
        "-1",
        "zero",
        "1.5",
        "",
        " 5",
        "+5",
        "1_0",
        "٣",  # a non-ASCII digit int() would accept
    ],
)
async def test_api_list_refuses_a_bad_limit_with_a_json_400(recorded_db, limit):
    app = web.Application()
    add_call_routes(app, recorded_db)
    client = await _client(app)
    try:
        response = await client.get("/api/calls", params={"limit": limit})
        assert response.status == 400
        assert response.content_type == "application/json"
        error = (await response.json())["error"]
        assert f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}" in error
        assert len(error) < 120  # a huge value is not echoed whole
    finally:
        await client.close()


@pytest.mark.parametrize("limit", ["1", "0001", str(MAX_LIST_LIMIT), None])
async def test_api_list_accepts_limits_up_to_the_maximum(recorded_db, limit):
    app = web.Application()
    add_call_routes(app, recorded_db)
    client = await _client(app)
    try:
        params = {} if limit is None else {"limit": limit}
        response = await client.get("/api/calls", params=params)
        assert response.status == 200
        assert [c["call_sid"] for c in await response.json()] == [SID]
    finally:
        await client.close()


def test_parse_limit_bounds():
    assert parse_limit(None) == DEFAULT_LIST_LIMIT == 20
    assert parse_limit("7") == 7 and parse_limit("007") == 7
    assert parse_limit("1000") == MAX_LIST_LIMIT == 1000
    assert parse_limit("1001") is None and parse_limit("00001001") is None
    assert parse_limit("0") is None and parse_limit("000") is None


async def test_api_requires_bearer_token_when_configured(recorded_db):
    app = web.Application()
    add_call_routes(app, recorded_db, api_token="t0ken")
    client = await _client(app)
    try:
        assert (await client.get(f"/api/calls/{SID}")).status == 401
        wrong = await client.get(f"/api/calls/{SID}", headers={"Authorization": "Bearer x"})
        assert wrong.status == 401
        ok = await client.get(f"/api/calls/{SID}", headers={"Authorization": "Bearer t0ken"})
        assert ok.status == 200 and (await ok.json())["call_sid"] == SID
    finally:
        await client.close()


async def test_api_before_any_call_is_404_not_error(tmp_path):
    app = web.Application()
    add_call_routes(app, tmp_path / "not-yet.db")
    client = await _client(app)
    try:
        assert (await client.get(f"/api/calls/{SID}")).status == 404
        assert await (await client.get("/api/calls")).json() == []
    finally:
        await client.close()


def test_without_token_only_loopback_clients_may_read_records():
    from voicehost.server.access import access_refusal as _refusal

    assert _refusal("127.0.0.1", "", "") is None
    assert _refusal("::1", "", "") is None
    for remote in ("203.0.113.9", "10.0.0.2", None, "not-an-ip"):
        refused = _refusal(remote, "", "")
        assert refused is not None and refused.status == 403
        assert "call records are served to loopback clients only" in refused.text
    assert _refusal("203.0.113.9", "Bearer tok", "tok") is None
    assert _refusal("127.0.0.1", "Bearer nope", "tok").status == 401
