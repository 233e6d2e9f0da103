"""HTTP read access to call records: ``GET /api/calls`` and ``GET /api/calls/{call_sid}``.

``GET /api/calls/{call_sid}`` answers exactly what ``voicehost calls show CALL_SID --json``
prints (see :func:`voicehost.records.read_call`), or 404 ``{"error": ...}`` for an unknown
call SID. ``GET /api/calls?limit=N`` lists the latest ``N`` calls as ``calls list --json``
does: ``N`` is a whole number from 1 to :data:`MAX_LIST_LIMIT` (1000), 20 when left out;
anything else (``zero``, ``-1``, ``1.5``, ``99999999999999999999``) is a 400 ``{"error": ...}``.

Transcripts are personal data: when ``[records] api_token`` is set the routes require
``Authorization: Bearer <api_token>`` (401 otherwise); without one they answer loopback
clients only (403 otherwise), so a server reachable by Twilio does not publish its calls
(:func:`voicehost.server.access.api_refusal`, the rule ``POST /api/calls`` follows too).
Behind a reverse proxy on the same host every client looks local: set ``api_token`` there.
The database (the SQLite file, or PostgreSQL with ``[records] url``: every instance of a
deployment then reads the same calls) is read on a worker thread, never on the event loop.
No database file yet reads as no calls; a file that is not a call record database, or a
Postgres that cannot be reached, is a 500.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from voicehost.records.source import RecordSource, is_postgres_url
from voicehost.records.store import MAX_LIST_LIMIT, read_call, read_calls
from voicehost.server.access import api_refusal, json_error

#: ``app[RECORDS_PATH_KEY]``: the SQLite file the routes read (absent with Postgres records).
RECORDS_PATH_KEY = web.AppKey("voicehost.records_path", Path)
#: ``app[RECORDS_SOURCE_KEY]``: what the routes read, the SQLite file or a Postgres URL.
RECORDS_SOURCE_KEY = web.AppKey("voicehost.records_source", object)

#: The most calls one ``GET /api/calls`` lists (``?limit=``), and the number without one.
DEFAULT_LIST_LIMIT = 20


def add_call_routes(app: web.Application, path: RecordSource, *, api_token: str = "") -> None:
    """Add the call-record routes to ``app`` (call before the app starts).

    Args:
        app: the server's application (:func:`voicehost.server.build_app`).
        path: the records database: ``[records] path``, or the ``[records] url`` of
            PostgreSQL.
        api_token: when non-empty, the bearer token the routes require.
    """
    source: RecordSource = str(path) if is_postgres_url(str(path)) else Path(path)
    app[RECORDS_SOURCE_KEY] = source
    if isinstance(source, Path):
        app[RECORDS_PATH_KEY] = source

    def present(db: RecordSource) -> bool:
        return not isinstance(db, Path) or db.exists()

    async def get_call(request: web.Request) -> web.Response:
        if denied := api_refusal(request, api_token):
            return denied
        call_sid = request.match_info["call_sid"]
        db = request.app[RECORDS_SOURCE_KEY]
        assert isinstance(db, str | Path)
        call = await asyncio.to_thread(read_call, db, call_sid) if present(db) else None
        if call is None:
            return json_error(404, f"no call {call_sid!r}")
        return web.json_response(call)

    async def list_calls(request: web.Request) -> web.Response:
        if denied := api_refusal(request, api_token):
            return denied
        limit = parse_limit(request.query.get("limit"))
        if limit is None:
            shown = request.query["limit"]
            shown = shown if len(shown) <= 24 else shown[:24] + "…"
            return json_error(
                400, f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}, not {shown!r}"
            )
        db = request.app[RECORDS_SOURCE_KEY]
        assert isinstance(db, str | Path)
        calls = await asyncio.to_thread(read_calls, db, limit) if present(db) else []
        return web.json_response(calls)

    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_sid}", get_call)


def parse_limit(text: str | None) -> int | None:
    """The ``?limit=`` of ``GET /api/calls`` as a number, or None when it is not a whole
    number from 1 to :data:`MAX_LIST_LIMIT` written in ASCII digits (no sign, no spaces, no
    ``_``; leading zeros are fine). No ``limit`` at all is :data:`DEFAULT_LIST_LIMIT`.

    Checked as text before any conversion, so a 20-digit or 5,000-digit value is refused
    like any other out-of-range one rather than overflowing SQLite or ``int()``.
    """
    if text is None:
        return DEFAULT_LIST_LIMIT
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    if not digits or len(digits) > len(str(MAX_LIST_LIMIT)) or int(digits) > MAX_LIST_LIMIT:
        return None
    return int(digits)
