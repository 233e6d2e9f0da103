"""Putting the ``[state]`` table into a call server app: the live state (in memory, or in
Redis shared with the other instances), the forwarding of actions to the instance that holds a
call, and the routes and metrics that show the live calls of the deployment.

:func:`attach_shared_state` is all an application calls (``voicehost serve`` does, through
:func:`voicehost.app.assembly.build_serve_app`). With ``[state] url = "redis://…"`` it

* checks that Redis answers (a :class:`~voicehost.errors.ConfigError` naming the URL when it
  does not: ``serve`` then refuses to start with that one line);
* replaces the server's :class:`~voicehost.server.live_state.MemoryLiveState` with a
  :class:`~voicehost.server.redis_state.RedisLiveState` and gives it a
  :class:`~voicehost.server.redis_actions.RedisActions` forwarder;
* runs, from app start-up to app clean-up (so through a SIGTERM drain), the registry refresh /
  reconnect loop and the action listener.

Routes (the access rule of ``GET /api/calls``: loopback clients, or the bearer
``[records] api_token``):

==================================  ============================================================
``GET /api/live-calls``             ``{"scope": "deployment", "instance": "<this instance>",
                                    "calls": [{"call_sid", "instance", "here"}, …]}``: every
                                    call live on any instance sharing the state;
                                    ``?scope=instance``: those of this instance only. 503 while
                                    Redis is unreachable (``scope=instance`` still answers)
``POST /api/calls/{sid}/transfer``  JSON ``{"to": "+1555…"}`` → ``{"call_sid", "to"}`` once the
                                    instance holding the call transferred it; 400 bad body,
                                    404 not live anywhere, 502 refused (``{"error"}``)
==================================  ============================================================

Metrics: ``voicehost_active_calls`` stays this instance's; ``voicehost_deployment_active_calls``
counts the live calls of every instance (from the shared registry, refreshed every few
seconds; this instance's count with in-memory state) and ``voicehost_state_store_up`` is 1
while the state store answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from voicehost import metrics
from voicehost.errors import ConfigError, VoicehostError
from voicehost.phone import is_call_target
from voicehost.server.access import api_refusal, json_error
from voicehost.server.live_state import LiveStateUnavailable
from voicehost.server.state import SERVER_KEY, CallServer
from voicehost.server.state_settings import StateSettings, redacted_url

if TYPE_CHECKING:  # the redis library loads in about a second: only with [state] in Redis
    from voicehost.server.redis_actions import RedisActions
    from voicehost.server.redis_state import RedisLiveState

log = logging.getLogger(__name__)

__all__ = ["LIVE_CALLS_PATH", "SHARED_STATE_KEY", "SharedState", "attach_shared_state"]

LIVE_CALLS_PATH = "/api/live-calls"
_CHECK_TIMEOUT_S = 3.0


class SharedState:
    """What :func:`attach_shared_state` set up for one app.

    Attributes:
        settings: the ``[state]`` table.
        live: the Redis state, None with in-memory state.
        actions: the action forwarder, None with in-memory state.
        deployment_calls: live calls of the whole deployment as last counted.
    """

    def __init__(self, settings: StateSettings, server: CallServer) -> None:
        self.settings = settings
        self.server = server
        self.live: RedisLiveState | None = None
        self.actions: RedisActions | None = None
        self.deployment_calls = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def count_loop(self) -> None:
        """Count the deployment's live calls every third of the live TTL, until cancelled."""
        assert self.live is not None
        while True:
            with contextlib.suppress(LiveStateUnavailable):
                self.deployment_calls = len(await self.live.live_calls())
            await asyncio.sleep(self.settings.live_ttl_s / 3)

    async def start(self, _app: web.Application) -> None:
        """App start-up: run the loops (Redis only)."""
        if self.live is None or self.actions is None:
            return
        loop = asyncio.get_running_loop()
        for job in (self.live.maintain(), self.actions.listen(), self.count_loop()):
            self._tasks.append(loop.create_task(job))
        with contextlib.suppress(TimeoutError):  # it logs and retries on its own
            await asyncio.wait_for(self.actions.subscribed.wait(), _CHECK_TIMEOUT_S)

    async def stop(self, _app: web.Application) -> None:
        """App clean-up (after the drain): stop the loops, close the client."""
        if self.actions is not None:
            await self.actions.aclose()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.live is not None:
            await self.live.aclose()


_SOURCES: weakref.WeakSet[SharedState] = weakref.WeakSet()


class _DeploymentCollector(Collector):
    """The deployment gauges of the apps alive in this process (normally one)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sources = list(_SOURCES)
        count = sum(s.deployment_calls if s.live else len(s.server.calls) for s in sources)
        yield GaugeMetricFamily(
            "voicehost_deployment_active_calls",
            "Calls live on every instance sharing this [state] (voicehost_active_calls: this "
            "instance's).",
            value=count,
        )
        up = all(s.live is None or s.live.available for s in sources)
        yield GaugeMetricFamily(
            "voicehost_state_store_up", "1 while the [state] store answers.", value=int(up)
        )


metrics.REGISTRY.register(_DeploymentCollector())


#: ``app[SHARED_STATE_KEY]``: the :class:`SharedState` of the app.
SHARED_STATE_KEY = web.AppKey("voicehost.shared_state", SharedState)


def check_redis(url: str) -> None:
    """Ping the Redis at ``url`` (blocking, at most a few seconds).

    Raises:
        ConfigError: it cannot be reached, or refuses us; the message names the URL
            (password hidden).
    """
    import redis  # only with [state] in Redis (see above)

    client = redis.Redis.from_url(
        url, socket_connect_timeout=_CHECK_TIMEOUT_S, socket_timeout=_CHECK_TIMEOUT_S
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ConfigError(f"[state] url {redacted_url(url)}: cannot reach Redis: {exc}") from None
    finally:
        client.close()


def attach_shared_state(
    app: web.Application, settings: StateSettings, *, api_token: str = ""
) -> SharedState:
    """Set up ``[state]`` on ``app`` (a :func:`voicehost.server.build_app` app, before it
    starts); see the module's description.

    Args:
        api_token: ``[records] api_token`` for the routes' access rule.

    Raises:
        ConfigError: Redis at ``settings.url`` cannot be reached.
    """
    server = app[SERVER_KEY]
    shared = SharedState(settings, server)
    if settings.shared:
        check_redis(settings.url)
        from voicehost.server.redis_actions import RedisActions  # see the imports above
        from voicehost.server.redis_state import RedisLiveState

        live = RedisLiveState(
            settings.url,
            prefix=settings.prefix,
            token_ttl_s=server.settings.token_ttl_s,
            live_ttl_s=settings.live_ttl_s,
        )
        shared.live = live
        shared.actions = RedisActions(server, live, timeout_s=settings.action_timeout_s)
        server.live = live
        server.forwarder = shared.actions
        log.info(
            "shared call state in Redis at %s (prefix %s), instance %s",
            redacted_url(settings.url),
            settings.prefix,
            server.instance_id,
        )
    app[SHARED_STATE_KEY] = shared
    app.on_startup.append(shared.start)
    app.on_cleanup.append(shared.stop)
    _SOURCES.add(shared)

    async def live_calls(request: web.Request) -> web.Response:
        if denied := api_refusal(request, api_token):
            return denied
        scope = request.query.get("scope", "deployment")
        if scope not in ("deployment", "instance"):
            return json_error(400, "scope must be 'deployment' or 'instance'")
        me = server.instance_id
        if scope == "deployment" and shared.live is not None:
            try:
                owners = await shared.live.live_calls()
            except LiveStateUnavailable as exc:
                return json_error(503, str(exc))
        else:
            owners = dict.fromkeys(server.calls, me)
        calls = [
            {"call_sid": sid, "instance": owner, "here": owner == me}
            for sid, owner in sorted(owners.items())
        ]
        return web.json_response({"scope": scope, "instance": me, "calls": calls})

    async def transfer(request: web.Request) -> web.Response:
        if denied := api_refusal(request, api_token):
            return denied
        call_sid = request.match_info["call_sid"]
        try:
            body = json.loads(await request.read())
        except ValueError:
            return json_error(400, 'the body must be JSON {"to": "+1555…"}')
        to = body.get("to") if isinstance(body, dict) else None
        if not is_call_target(to):
            return json_error(400, "'to' must be an E.164 number, a sip: URI or a client: id")
        assert isinstance(to, str)
        if call_sid not in server.calls and not await server.live.is_live(call_sid):
            return json_error(404, f"no live call {call_sid[:40]!r}")
        try:
            await server.transfer_call(call_sid, to)
        except VoicehostError as exc:
            return json_error(502, str(exc), call_sid=call_sid)
        return web.json_response({"call_sid": call_sid, "to": to})

    app.router.add_get(LIVE_CALLS_PATH, live_calls)
    app.router.add_post("/api/calls/{call_sid}/transfer", transfer)
    return shared
