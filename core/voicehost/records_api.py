"""HTTP read access to call records: ``GET /api/calls`` and ``GET /api/calls/{call_sid}``.

``GET /api/calls/{call_sid}`` answers exactly what ``voicehost calls show CALL_SID --json``
prints (see :func:`voicehost.records.read_call`), or 404 ``{"error": ...}`` for an unknown
call SID. ``GET /api/calls?limit=N`` lists the latest calls as ``calls list --json`` does.

Transcripts are personal data: when ``[records] api_token`` is set the routes require
``Authorization: Bearer <api_token>`` (401 otherwise); without one they answer loopback
clients only (403 otherwise), so a server reachable by Twilio does not publish its calls.
Behind a reverse proxy on the same host every client looks local: set ``api_token`` there.
The database is read on a worker thread, never on the event loop. No database file yet
reads as no calls; a file that is not a call record database is a 500.
"""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from typing import Any

from aiohttp import web

from voicehost.records import read_call, read_calls
from voicehost.server.settings import is_loopback

#: ``app[RECORDS_PATH_KEY]``: the SQLite file the routes read.
RECORDS_PATH_KEY = web.AppKey("voicehost.records_path", Path)


def add_call_routes(app: web.Application, path: str | Path, *, api_token: str = "") -> None:
    """Add the call-record routes to ``app`` (call before the app starts).

    Args:
        app: the server's application (``voicehost.server`` ``build_app``).
        path: the records database (``[records] path``).
        api_token: when non-empty, the bearer token the routes require.
    """
    app[RECORDS_PATH_KEY] = Path(path)

    async def get_call(request: web.Request) -> web.Response:
        if denied := refusal(request, api_token):
            return denied
        call_sid = request.match_info["call_sid"]
        db = request.app[RECORDS_PATH_KEY]
        call = await asyncio.to_thread(read_call, db, call_sid) if db.exists() else None
        if call is None:
            return _error(404, f"no call {call_sid!r}")
        return web.json_response(call)

    async def list_calls(request: web.Request) -> web.Response:
        if denied := refusal(request, api_token):
            return denied
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return _error(400, "limit must be an integer")
        if limit < 1:
            return _error(400, "limit must be >= 1")
        db = request.app[RECORDS_PATH_KEY]
        calls = await asyncio.to_thread(read_calls, db, limit) if db.exists() else []
        return web.json_response(calls)

    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_sid}", get_call)


def refusal(request: web.Request, api_token: str) -> web.Response | None:
    """None when ``request`` may read call records, else the 401/403 answer to send."""
    return _refusal(request.remote, request.headers.get("Authorization", ""), api_token)


def _refusal(remote: str | None, authorization: str, api_token: str) -> web.Response | None:
    if api_token:
        expected = f"Bearer {api_token}".encode()
        if hmac.compare_digest(authorization.encode(), expected):
            return None
        return _error(401, "missing or wrong bearer token")
    if is_loopback(remote):
        return None
    return _error(403, "call records are served to loopback clients only; set [records] api_token")


def _error(status: int, message: str) -> web.Response:
    body: dict[str, Any] = {"error": message}
    return web.json_response(body, status=status)
