"""``GET /metrics``: the Prometheus metrics of :mod:`voicehost.metrics`.

The body is the Prometheus text format (``text/plain; version=0.0.4``), or OpenMetrics when
the scraper asks for it in ``Accept`` (:func:`prometheus_client.exposition.choose_encoder`).
Who may read it is the rule of voicehost's own HTTP API (:mod:`voicehost.server.access`):
loopback clients only, or anyone with ``Authorization: Bearer <[records] api_token>`` when a
token is set (401 without it, 403 for a non-loopback client without a token). With
``[observability] metrics = false`` the route is not added (404).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from voicehost import metrics
from voicehost.server.access import api_refusal

__all__ = ["METRICS_PATH", "add_metrics_route"]

METRICS_PATH = "/metrics"

_TOKEN_KEY = web.AppKey("voicehost_metrics_api_token", str)


def add_metrics_route(app: web.Application, *, api_token: str = "") -> None:
    """Serve ``GET /metrics`` on ``app``.

    Args:
        api_token: the bearer token required (``[records] api_token``); ``""``: loopback
            clients only.
    """
    app[_TOKEN_KEY] = api_token
    app.router.add_get(METRICS_PATH, handle_metrics)


async def handle_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: 200 with the metrics; 401/403 by the API access rule; 404 while
    metrics are off (``voicehost.metrics.set_enabled(False)`` after the app was built)."""
    refused = api_refusal(request, request.app[_TOKEN_KEY], what="metrics are served")
    if refused is not None:
        return refused
    if not metrics.enabled():
        raise web.HTTPNotFound(text="metrics are off ([observability] metrics = false)\n")
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(metrics.REGISTRY), headers={"Content-Type": content_type})
