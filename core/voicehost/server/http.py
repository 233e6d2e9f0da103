"""HTTP hardening of the call server: bounded head and body read times, and one log line,
not a traceback, for a client's malformed request.

aiohttp alone holds a connection whose request head never completes until its keep-alive
timer fires (an hour by default), reads a body under a huge ``Content-Length`` for as long
as the client trickles it, and logs every unparsable request line as an ERROR with a
traceback. Here:

* **head**: :func:`make_runner` gives an :class:`aiohttp.web.AppRunner` whose connections
  close when a request head is not complete ``request_header_timeout_s`` after the connection
  opened, or after the first byte of a later head on a kept-alive connection
  (:class:`GuardedRequestHandler`). ``voicehost serve`` and the tests run the app with it.
  Without it (a plain ``web.AppRunner``, ``aiohttp.test_utils.TestServer``) the head is
  still bounded by ``keepalive_timeout_s``, which :func:`http_app_options` sets.
* **body**: :func:`body_guard` (a middleware, so every runner gets it) reads each request
  body in full before the handler runs: ``Content-Length`` over the app's
  ``client_max_size`` (:data:`MAX_BODY_BYTES`) is answered 413 without reading, a body not
  complete within ``request_body_timeout_s`` gets 408, a body that breaks off or is not
  valid HTTP gets 400, and the connection is then closed after aiohttp's lingering read
  (:data:`LINGERING_S`).
* **log**: :class:`ClientErrorLogger` turns aiohttp's "Error handling request" ERROR (or
  DEBUG, for a first request with an invalid method) with a traceback for a request it could
  not parse (an ``HttpProcessingError``: a garbage request line, a bad header; a body that
  is not valid HTTP framing or encoding) into one WARNING line naming the peer. Errors of our
  own handlers keep their traceback.

The server's own :class:`~aiohttp.web.RequestHandler` internals used here (``_loop``,
``_kwargs`` of :class:`aiohttp.web.Server`, ``_request_count``, ``_upgraded`` and
``_request_in_progress`` of the handler) are checked by the test suite against the pinned
aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from voicehost.server.protocol import sanitize_log_text
from voicehost.server.settings import ServerSettings
from voicehost.server.state import SERVER_KEY

log = logging.getLogger(__name__)

__all__ = [
    "LINGERING_S",
    "MAX_BODY_BYTES",
    "ClientErrorLogger",
    "GuardedAppRunner",
    "GuardedRequestHandler",
    "GuardedServer",
    "body_guard",
    "http_app_options",
    "make_runner",
]

#: Largest request body accepted, bytes (aiohttp's default ``client_max_size``; a Twilio
#: webhook is a few hundred bytes).
MAX_BODY_BYTES = 1024 * 1024
#: After answering a request whose body was not read to the end (408, 413), aiohttp reads and
#: drops the rest for at most this long before it closes the connection, s.
LINGERING_S = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What aiohttp raises for bytes a client sent that are not valid HTTP.
_CLIENT_ERRORS = (HttpProcessingError, web.RequestPayloadError)


class ClientErrorLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger (``aiohttp.server``) with a client's malformed request logged
    as one WARNING line (peer address and parser message, sanitised) instead of a record
    with a traceback. Anything else passes through unchanged."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger("aiohttp.server"), {})

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, _CLIENT_ERRORS):
            try:
                where = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                where = str(msg)
            detail = getattr(exc, "message", "") or str(exc)
            self.logger.warning(
                "%s: malformed HTTP request (%s): %s",
                where,
                type(exc).__name__,
                sanitize_log_text(str(detail), 120),
            )
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs


def body_guard(timeout_s: float) -> Any:
    """A middleware reading every request body in full (at most ``client_max_size`` bytes,
    within ``timeout_s`` seconds of the head) before the handler runs; the handler then reads
    it from memory (``request.read()`` / ``request.post()`` return the cached body).

    Answers: 413 (``Content-Length`` over the limit, or more bytes than it), 408 (not
    complete in time), 400 (the body broke off or its framing is invalid).
    """

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            limit = request.client_max_size
            length = request.content_length
            if limit and length is not None and length > limit:
                log.warning(
                    "%s %s from %s: Content-Length %d over %d bytes: 413",
                    request.method,
                    request.rel_url.path,
                    request.remote,
                    length,
                    limit,
                )
                raise _closing(web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length))
            try:
                await asyncio.wait_for(request.read(), timeout_s)
            except TimeoutError:
                log.warning(
                    "%s %s from %s: body not complete within %g s: 408",
                    request.method,
                    request.rel_url.path,
                    request.remote,
                    timeout_s,
                )
                raise _closing(
                    web.HTTPRequestTimeout(text="Request body not received in time\n")
                ) from None
            except (ConnectionError, HttpProcessingError, web.RequestPayloadError) as exc:
                log.info(
                    "%s %s from %s: body unreadable (%s): 400",
                    request.method,
                    request.rel_url.path,
                    request.remote,
                    sanitize_log_text(str(exc) or type(exc).__name__, 120),
                )
                raise _closing(web.HTTPBadRequest(text="Malformed request body\n")) from None
        return await handler(request)

    return guard


def _closing(exc: web.HTTPException) -> web.HTTPException:
    """``exc`` answered with ``Connection: close`` (the rest of its body is not read)."""
    exc.force_close()
    return exc


def http_app_options(settings: ServerSettings) -> dict[str, Any]:
    """Keyword arguments for :class:`aiohttp.web.Application` that harden any runner: the
    body guard, the body size limit, and (``handler_args``) the client-error logger, the
    keep-alive timeout and the lingering time."""
    return {
        "client_max_size": MAX_BODY_BYTES,
        "middlewares": [body_guard(settings.request_body_timeout_s)],
        "handler_args": {
            "logger": ClientErrorLogger(),
            "keepalive_timeout": settings.keepalive_timeout_s,
            "lingering_time": LINGERING_S,
        },
    }


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's per-connection protocol with a request-head watchdog.

    The watchdog runs from the moment the connection opens, and on a kept-alive connection
    from the first byte of each later request head, until that head is complete; if it
    fires first, the connection is closed (one WARNING line). It never runs while a request
    is being handled, nor on an upgraded (WebSocket) connection, so a slow handler or a long
    call is never cut; idle kept-alive connections are left to ``keepalive_timeout``.

    Args:
        header_timeout_s: seconds a request head may take.
        kwargs: :class:`aiohttp.web.RequestHandler`'s own.
    """

    def __init__(self, manager: web.Server, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._upgraded or self._force_close or self._close:
            self._cancel_head_timer()
        elif self._request_count != heads:  # the head being timed is complete
            self._cancel_head_timer()
        elif data and self._head_timer is None and not self._busy():
            self._arm_head_timer()  # the first bytes of a new head on a kept-alive connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _busy(self) -> bool:
        return bool(getattr(self, "_request_in_progress", False)) or bool(self._messages)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = asyncio.get_running_loop().call_later(
            self.header_timeout_s, self._head_timed_out
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is None or self._upgraded or self._force_close or self._busy():
            return
        peer = self.transport.get_extra_info("peername")
        log.warning(
            "closing HTTP connection from %s: no complete request head within %g s",
            peer[0] if isinstance(peer, tuple) and peer else peer,
            self.header_timeout_s,
        )
        self.force_close()


class GuardedServer(web.Server):
    """:class:`aiohttp.web.Server` making :class:`GuardedRequestHandler` connections."""

    def __init__(self, handler: Any, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.header_timeout_s = header_timeout_s

    def __call__(self) -> web.RequestHandler:
        return GuardedRequestHandler(
            self, loop=self._loop, header_timeout_s=self.header_timeout_s, **self._kwargs
        )


class GuardedAppRunner(web.AppRunner):
    """:class:`aiohttp.web.AppRunner` whose server is a :class:`GuardedServer`, with the
    head timeout from the app's ``[server] request_header_timeout_s`` (the default for an
    app not made by :func:`~voicehost.server.build_app`)."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        server = self.app.get(SERVER_KEY)
        settings = server.settings if server is not None else ServerSettings()
        timeout = settings.request_header_timeout_s
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            header_timeout_s=timeout,
            **plain._kwargs,
        )


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner to serve a :func:`~voicehost.server.build_app` app with: request heads
    bounded by ``request_header_timeout_s``. ``kwargs`` go to :class:`aiohttp.web.AppRunner`
    (``handle_signals``, ``shutdown_timeout``, ``access_log``…).

    Example::

        runner = make_runner(app, shutdown_timeout=5.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
    """
    return GuardedAppRunner(app, **kwargs)
