"""The aiohttp application of the call server (its state is :mod:`voicehost.server.state`).

Routes (paths from :class:`~voicehost.server.settings.ServerSettings`):

========================  =====================================================================
``POST webhook_path``     Twilio voice webhook → TwiML ``<Connect><Stream>`` (signed)
``POST status_path``      Twilio call status callback (signed) → 204
``GET stream_path``       Twilio Media Streams WebSocket
``GET /healthz``          ``{"status": "ok", "active_calls": n, …}``; 503 while draining
``GET /metrics``          Prometheus metrics (loopback or API token; ``[observability] metrics``)
========================  =====================================================================

Serve it with :func:`make_runner` (request heads bounded by ``request_header_timeout_s``);
body size and time limits, the keep-alive timeout and the one-line logging of malformed
requests are part of the app itself, whatever runs it (:mod:`voicehost.server.http`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from voicehost import metrics
from voicehost.server.call_control import CallRest
from voicehost.server.handler import CallHandler
from voicehost.server.http import http_app_options, make_runner
from voicehost.server.live_state import LiveCallState, LiveStateUnavailable
from voicehost.server.media_stream import handle_media_stream
from voicehost.server.metrics_route import add_metrics_route
from voicehost.server.settings import ObservabilitySettings, ServerSettings, TwilioSettings
from voicehost.server.state import SERVER_KEY, CallServer, ProviderBinding
from voicehost.server.webhook import handle_status_callback, handle_voice_webhook

log = logging.getLogger(__name__)

__all__ = ["build_app", "make_runner"]


@web.middleware
async def state_unavailable_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A request that needs the shared live state while it is unreachable gets 503 (one log
    line, logged by the store when it went down; no traceback)."""
    try:
        return await handler(request)
    except LiveStateUnavailable:
        return web.Response(status=503, text="Call state store unavailable; try again\n")


async def handle_healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 with the live call count; 503 while draining."""
    server = request.app[SERVER_KEY]
    return web.json_response(server.health(), status=503 if server.draining else 200)


def build_app(
    settings: ServerSettings | None = None,
    *,
    twilio: TwilioSettings | None = None,
    stt: ProviderBinding | None = None,
    tts: ProviderBinding | None = None,
    handler: CallHandler | None = None,
    live: LiveCallState | None = None,
    rest: CallRest | None = None,
    turn: ProviderBinding | None = None,
    observability: ObservabilitySettings | None = None,
    api_token: str = "",
) -> web.Application:
    """The aiohttp application answering Twilio.

    Args:
        settings: the ``[server]`` settings (default: all defaults).
        twilio: the ``[twilio]`` settings (default: no account SID, no auth token: webhook
            signatures are not checked).
        stt: the STT provider and its parsed config (None: calls run without transcription).
        tts: the TTS provider and its parsed config (None: ``call.say`` raises
            PlaybackError).
        turn: the end-of-turn detector and its parsed config
            (:mod:`voicehost.server.turn_taking`; None: each final ends the caller's turn).
        handler: the app's :class:`CallHandler` (default: greets with ``[server] greeting``
            when set, else does nothing).
        live: where stream tokens, webhook call data and the live-call registry are kept
            (default: a :class:`~voicehost.server.live_state.MemoryLiveState`; a shared
            store lets several instances serve one number).
        rest: Twilio's REST API (``voicehost.server.rest.TwilioRest``) for hang-ups without
            a stream, transfers and the ``<Say>``/``<Gather>`` fallback; None without
            credentials (those actions then raise ``CallControlError``).
        observability: the ``[observability]`` settings (default: metrics on). They switch
            :mod:`voicehost.metrics` on or off for the whole process
            (:func:`voicehost.metrics.set_enabled`), so the last app built decides.
        api_token: bearer token of voicehost's own HTTP API (``[records] api_token``) that
            ``GET /metrics`` asks for; ``""``: loopback clients only.

    The :class:`CallServer` is at ``app[SERVER_KEY]``. On aiohttp shutdown every call ends
    (reason ``"shutdown"``).
    """
    settings = settings or ServerSettings()
    twilio = twilio or TwilioSettings()
    observability = observability or ObservabilitySettings()
    metrics.set_enabled(observability.metrics)
    server = CallServer(
        settings,
        twilio=twilio,
        stt=stt,
        tts=tts,
        handler=handler,
        live=live,
        rest=rest,
        turn=turn,
    )
    if twilio.skip_signature_verification:
        log.warning(
            "skip_signature_verification = true: Twilio webhook signatures are NOT checked; "
            "for local development only"
        )
    app = web.Application(**http_app_options(settings))
    app.middlewares.append(state_unavailable_middleware)
    app[SERVER_KEY] = server
    app.router.add_post(settings.webhook_path, handle_voice_webhook)
    app.router.add_post(settings.status_path, handle_status_callback)
    app.router.add_get(settings.stream_path, handle_media_stream)
    app.router.add_get("/healthz", handle_healthz)
    if observability.metrics:
        add_metrics_route(app, api_token=api_token)

    async def on_shutdown(_app: web.Application) -> None:
        await server.close_all()

    app.on_shutdown.append(on_shutdown)
    return app
