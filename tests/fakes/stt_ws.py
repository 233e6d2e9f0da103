"""The WebSocket server under the STT vendor fakes (OpenAI Realtime, Deepgram live).

A fake is a ``websockets`` server on ``127.0.0.1`` port 0. Before the upgrade it checks the
path and the auth header (a wrong key gets an HTTP 401, as the vendors answer) and can be
scripted to refuse upgrades with other statuses; after the upgrade a vendor subclass speaks the
protocol in :meth:`FakeSTTServer.serve`. Every connection is recorded (:class:`Connection`):
its request, every audio byte in order, every client message, how it ended. Tests wait on
conditions with :meth:`FakeSTTServer.wait_for` (woken on every received message), never sleeps.

Nothing here imports voicehost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
from fakes.stt_audio import Recogniser, Utterances
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


@attrs.define(eq=False)
class Connection:
    """One accepted WebSocket connection, as the fake saw it.

    Attributes:
        path: request path without the query.
        query: parsed query (``parse_qs``: every value a list).
        headers: request headers, lower-cased names.
        audio: every audio byte received on it, in order.
        messages: every client message: ``("text", parsed JSON or raw str)`` /
            ``("binary", byte count)``, in order.
        violations: protocol mistakes the fake noticed (wrong frame type, bad JSON …).
        close_code: the close code once closed (1006 for an abrupt end).
        dropped: the fake cut it abruptly (:meth:`FakeSTTServer.drop`).
        extra: per-connection protocol state of the vendor fake.
    """

    ws: ServerConnection
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    recogniser: Recogniser
    audio: bytearray = attrs.Factory(bytearray)
    messages: list[tuple[str, Any]] = attrs.Factory(list)
    violations: list[str] = attrs.Factory(list)
    close_code: int | None = None
    dropped: bool = False
    extra: dict[str, Any] = attrs.Factory(dict)

    @property
    def open(self) -> bool:
        """True until the connection ends."""
        return self.close_code is None

    def texts(self, type_: str | None = None) -> list[Any]:
        """Parsed text messages received, optionally only those with ``type == type_``."""
        found = [m for kind, m in self.messages if kind == "text"]
        if type_ is None:
            return found
        return [m for m in found if isinstance(m, dict) and m.get("type") == type_]

    async def send_json(self, message: dict[str, Any]) -> None:
        """Send one JSON text frame to the client (ignored once closed)."""
        if self.open:
            try:
                await self.ws.send(json.dumps(message))
            except Exception:  # the client went away: recorded by the handler
                pass


class FakeSTTServer:
    """Base of the STT fakes.

    Args:
        api_key: the only key accepted.
        auth_scheme: ``"Bearer"`` (OpenAI) or ``"Token"`` (Deepgram).
        path: the endpoint path (``/v1/realtime``, ``/v1/listen``).

    Attributes:
        utterances: clips the fake recognises (:class:`~fakes.stt_audio.Utterances`).
        connections: every accepted connection, in order.
        upgrades: every upgrade request (accepted or not): ``(path_with_query, headers)``.
        refusals: statuses answered instead of upgrading, in order.
        refuse_next: statuses to answer the next upgrades with, consumed one per request.
        refuse_all: when set, every upgrade gets this status.
        drop_after_bytes: cut a connection abruptly once it has received this many audio
            bytes (applies to the first connection only; then reset to None).
        finals_sent: ``(time.monotonic(), text)`` for every final transcript sent.
    """

    def __init__(self, api_key: str, *, auth_scheme: str, path: str) -> None:
        self.api_key = api_key
        self.auth_scheme = auth_scheme
        self.path = path
        self.utterances = Utterances()
        self.connections: list[Connection] = []
        self.upgrades: list[tuple[str, dict[str, str]]] = []
        self.refusals: list[int] = []
        self.refuse_next: list[int] = []
        self.refuse_all: int | None = None
        self.drop_after_bytes: int | None = None
        self.finals_sent: list[tuple[float, str]] = []
        self._changed = asyncio.Condition()
        self._server: Server | None = None
        self._port = 0

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> FakeSTTServer:
        """Listen on 127.0.0.1, a free port."""
        self._server = await serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request, max_size=None
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeSTTServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._port}"

    # --- what tests read -------------------------------------------------------------------

    @property
    def audio(self) -> bytes:
        """Every audio byte received, over all connections, in order."""
        return b"".join(bytes(c.audio) for c in self.connections)

    @property
    def current(self) -> Connection:
        """The latest connection."""
        return self.connections[-1]

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``condition()`` is true (checked on every change the fake sees).

        Raises:
            TimeoutError: not true within ``within`` seconds.
        """
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(condition)

    async def notify(self) -> None:
        """Wake :meth:`wait_for` waiters (called on every received message)."""
        async with self._changed:
            self._changed.notify_all()

    def drop(self, conn: Connection | None = None) -> None:
        """Cut ``conn`` (default: the latest) abruptly: no close frame, TCP aborted."""
        conn = conn or self.current
        conn.dropped = True
        transport = conn.ws.transport
        if transport is not None:
            transport.abort()

    def record_final(self, text: str) -> None:
        """Note the send time of a final transcript (for the latency benchmark)."""
        self.finals_sent.append((time.monotonic(), text))

    # --- protocol --------------------------------------------------------------------------

    def check_request(self, conn_path: str, query: dict[str, list[str]]) -> str | None:
        """Vendor checks of the upgrade request; an error message means HTTP 400."""
        return None

    def make_recogniser(self, query: dict[str, list[str]]) -> Recogniser:
        """The recogniser of a new connection (vendors read endpointing from the request)."""
        return Recogniser(self.utterances)

    async def serve(self, conn: Connection) -> None:
        """Speak the vendor protocol on an accepted connection (subclasses)."""
        raise NotImplementedError

    async def received_audio(self, conn: Connection, audio: bytes) -> None:
        """Record audio and apply :attr:`drop_after_bytes`."""
        conn.audio += audio
        limit = self.drop_after_bytes
        if limit is not None and len(conn.audio) >= limit:
            self.drop_after_bytes = None
            self.drop(conn)
        await self.notify()

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        self.upgrades.append((request.path, headers))
        parts = urlsplit(request.path)
        status: int | None = None
        body = ""
        if self.refuse_all is not None:
            status = self.refuse_all
        elif self.refuse_next:
            status = self.refuse_next.pop(0)
        elif parts.path != self.path:
            status, body = 404, f"no such endpoint {parts.path}"
        elif headers.get("authorization") != f"{self.auth_scheme} {self.api_key}":
            status = 401
        else:
            problem = self.check_request(parts.path, parse_qs(parts.query))
            if problem:
                status, body = 400, problem
        if status is None:
            return None
        self.refusals.append(status)
        if status == 401 and not body:
            body = json.dumps({"error": {"code": "invalid_api_key", "message": "bad key"}})
        return ws.respond(HTTPStatus(status), body or HTTPStatus(status).phrase)

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query)
        conn = Connection(
            ws=ws,
            path=parts.path,
            query=query,
            headers={k.lower(): v for k, v in ws.request.headers.raw_items()},
            recogniser=self.make_recogniser(query),
        )
        self.connections.append(conn)
        await self.notify()
        try:
            await self.serve(conn)
        except Exception:  # the client or the fake cut the socket
            pass
        finally:
            conn.close_code = 1006 if conn.dropped else (ws.close_code or 1006)
            await self.notify()
