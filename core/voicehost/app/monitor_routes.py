"""The live call monitor's routes: ``GET /monitor`` (the page), ``GET /monitor/events``
(server-sent events) and ``POST /api/calls/{call_sid}/hangup``.

Access is the rule of ``/api/calls`` (:func:`voicehost.server.access.api_refusal`): without
``[records] api_token`` loopback clients only (403 otherwise); with one, the token. A browser
cannot put a bearer header on an ``EventSource``, so the page works with a cookie:

* open ``/monitor?token=<api_token>`` once: the server answers 303 to ``/monitor`` (the token
  leaves the address bar and history) with the cookie :data:`COOKIE_NAME`, ``HttpOnly``,
  ``SameSite=Strict``, ``Path=/``, ``Secure`` over https, for the browser session. Its value
  is an HMAC of the token (not the token: it opens the monitor, not ``/api/calls``), so
  changing the token logs every browser out;
* the page's event stream and hang-up requests then carry the cookie; a hang-up by cookie
  must also carry the header ``X-Voicehost-Monitor: 1`` (the page sends it; a form on
  another site cannot), on top of ``SameSite=Strict``.

Other clients use ``Authorization: Bearer <api_token>`` on every route (``curl -N -H …
/monitor/events``), or ``?token=<api_token>`` on ``/monitor/events``.

``GET /monitor/events`` is ``text/event-stream``: ``retry: 3000``, then one ``data:`` line
of JSON per event (:mod:`voicehost.app.monitor`: a snapshot first, then changes), and a
``: ping`` comment after :data:`HEARTBEAT_S` seconds without one (keeps proxies from closing
it). A subscriber that falls behind is dropped (the stream ends; ``EventSource``
reconnects). Every stream ends at server shutdown.

``POST /api/calls/{call_sid}/hangup`` hangs up a call live on this server, or on another
instance sharing its ``[state]`` (forwarded there and answered once it hung up;
:meth:`voicehost.server.state.CallServer.hangup_call`, end reason ``bot-hangup``):
200 ``{"call_sid", "hung_up": true}``; 404 ``{"error"}`` for a call not live anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from importlib import resources

from aiohttp import web

from voicehost.app.monitor import MonitorHub
from voicehost.errors import VoicehostError
from voicehost.server.access import api_refusal, json_error
from voicehost.server.events import BOT_HANGUP
from voicehost.server.state import SERVER_KEY

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "HEARTBEAT_S",
    "MONITOR_HUB_KEY",
    "add_monitor_routes",
    "cookie_value",
]

#: ``app[MONITOR_HUB_KEY]``: the :class:`MonitorHub` the routes serve.
MONITOR_HUB_KEY = web.AppKey("voicehost.monitor_hub", MonitorHub)
#: The cookie that opens the monitor when ``api_token`` is set.
COOKIE_NAME = "voicehost_monitor"
#: The header a hang-up authorised by the cookie must carry (value ``1``).
CSRF_HEADER = "X-Voicehost-Monitor"
#: Seconds without an event after which the event stream sends a ``: ping`` comment.
HEARTBEAT_S = 15.0

_WHAT = "the monitor is served"
_PAGE = resources.files("voicehost.app").joinpath("monitor_page.html").read_text("utf-8")
_CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def cookie_value(api_token: str) -> str:
    """The monitor cookie's value for ``api_token``: HMAC-SHA256 of a fixed label, hex."""
    return hmac.new(api_token.encode(), b"voicehost monitor", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def monitor_refusal(
    request: web.Request, api_token: str, *, query_token: bool = False, csrf: bool = False
) -> web.Response | None:
    """None when ``request`` may use the monitor, else the 401/403 JSON answer.

    Args:
        api_token: ``[records] api_token``; ``""``: loopback clients only.
        query_token: accept ``?token=<api_token>`` too.
        csrf: a request authorised by the cookie alone must carry :data:`CSRF_HEADER`.
    """
    if api_token:
        cookie = request.cookies.get(COOKIE_NAME, "")
        if cookie and _same(cookie, cookie_value(api_token)):
            if csrf and request.headers.get(CSRF_HEADER) != "1":
                return json_error(403, f"a hang-up from the page must carry {CSRF_HEADER}: 1")
            return None
        token = request.query.get("token", "")
        if query_token and token and _same(token, api_token):
            return None
    return api_refusal(request, api_token, what=_WHAT)


def add_monitor_routes(
    app: web.Application,
    hub: MonitorHub,
    *,
    api_token: str = "",
    heartbeat_s: float = HEARTBEAT_S,
) -> None:
    """Add ``/monitor``, ``/monitor/events`` and ``POST /api/calls/{call_sid}/hangup`` to
    ``app`` (a :func:`voicehost.server.build_app` app; call before it starts), and end the
    event streams on app shutdown.

    Args:
        hub: what the page shows (fed by a
            :class:`~voicehost.app.monitor_handler.MonitoringHandler`).
        api_token: ``[records] api_token``; ``""``: loopback clients only.
        heartbeat_s: seconds without an event before a ``: ping`` comment.
    """
    app[MONITOR_HUB_KEY] = hub

    async def page(request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        if api_token and token and _same(token, api_token):
            # Relative, so it stays right behind a proxy that adds a path prefix.
            response = web.Response(status=303, headers={"Location": "monitor"})
            response.set_cookie(
                COOKIE_NAME,
                cookie_value(api_token),
                path="/",
                httponly=True,
                samesite="Strict",
                secure=request.scheme == "https",
            )
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response
        if denied := monitor_refusal(request, api_token):
            return denied
        nonce = secrets.token_urlsafe(16)
        return web.Response(
            text=_PAGE.replace("{{nonce}}", nonce),
            content_type="text/html",
            headers={
                "Content-Security-Policy": _CSP.format(nonce=nonce),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def events(request: web.Request) -> web.StreamResponse:
        if denied := monitor_refusal(request, api_token, query_token=True):
            return denied
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        subscriber = hub.subscribe()
        try:
            await response.write(b"retry: 3000\n\n")
            while not subscriber.finished:
                item = await subscriber.get(heartbeat_s)
                if item is not None:
                    await response.write(item)
                elif not subscriber.finished:
                    await response.write(b": ping\n\n")
        except ConnectionError:  # the browser went away
            pass
        finally:
            hub.unsubscribe(subscriber)
        return response

    async def hangup(request: web.Request) -> web.Response:
        if denied := monitor_refusal(request, api_token, csrf=True):
            return denied
        call_sid = request.match_info["call_sid"]
        server = request.app[SERVER_KEY]
        # a call live on another instance of the deployment is hung up there
        if call_sid not in server.calls and not await server.live.is_live(call_sid):
            return json_error(404, f"no live call {call_sid[:40]!r} on this server")
        try:
            await server.hangup_call(call_sid, BOT_HANGUP)
        except VoicehostError as exc:
            return json_error(502, str(exc), call_sid=call_sid)
        return web.json_response({"call_sid": call_sid, "hung_up": True})

    async def close_streams(_app: web.Application) -> None:
        hub.close()

    app.router.add_get("/monitor", page)
    app.router.add_get("/monitor/events", events)
    app.router.add_post("/api/calls/{call_sid}/hangup", hangup)
    app.on_shutdown.append(close_streams)
