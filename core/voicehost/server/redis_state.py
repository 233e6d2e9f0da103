""":class:`~voicehost.server.live_state.LiveCallState` in Redis (``redis.asyncio``), so that
several voicehost instances serve one phone number: a webhook answered by one instance and the
media stream that follows it may land on another.

Keys (``P`` is ``[state] prefix``), every one with a TTL:

=======================  ==========================================================================
``P:token:<CallSid>``    the unused stream token; ``PX`` token TTL; taken atomically by a Lua
                         script (``GET`` + ``DEL`` when it matches), then compared in constant time
``P:call:<CallSid>``     the webhook's :class:`CallRecord` as JSON; record TTL, renewed while the
                         call is live; fields updated atomically in Lua (``cjson``, ``KEEPTTL``)
``P:notify:<CallSid>``   a notify call's message was served (``SET NX PX`` record TTL)
``P:live:<CallSid>``     the instance id holding the call's live stream (``SET NX PX`` live TTL);
                         refreshed every third of the TTL while the call lives here, so it
                         expires when the instance dies; released only by its owner (Lua)
=======================  ==========================================================================

Failures: every command has a 2 s socket timeout. A command that cannot reach Redis marks the
store *down* (one warning, no traceback) and raises
:class:`~voicehost.server.live_state.LiveStateUnavailable`; while down, commands fail at once
(the transport answers new calls 503) and :meth:`RedisLiveState.maintain` pings every second
until Redis answers, then logs that it is back and re-claims the calls live here. Live calls
never wait on Redis: their state is in this process.

An expired token reads as ``unknown`` (Redis dropped it), not ``expired``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voicehost.server.live_state import (
    DEFAULT_RECORD_TTL_S,
    CallRecord,
    LiveStateUnavailable,
    StreamStart,
)
from voicehost.server.redis_scripts import (
    ADMIT_CALL,
    REFRESH,
    RELEASE,
    START_STREAM,
    TAKE_TOKEN,
    UPDATE_CALL,
)
from voicehost.server.state_settings import redacted_url
from voicehost.server.tokens import TokenRejected

log = logging.getLogger(__name__)

__all__ = ["RedisLiveState", "connect_redis"]

T = TypeVar("T")

#: Errors that mean "Redis cannot be reached", as opposed to a bad command.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_SOCKET_TIMEOUT_S = 2.0
_PING_INTERVAL_S = 1.0


def connect_redis(url: str) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` with short timeouts and one retry, answering
    ``str``.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=_SOCKET_TIMEOUT_S,
        socket_connect_timeout=_SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class RedisLiveState:
    """The live call state in Redis, shared by every instance with the same ``url`` and
    ``prefix``.

    Args:
        url: ``redis://host:port/db`` (``rediss://``, ``unix://``).
        prefix: namespace of the keys (``[state] prefix``).
        token_ttl_s: seconds a stream token stays valid unused.
        record_ttl_s: seconds a call's webhook data is kept while no stream is live.
        live_ttl_s: seconds a live-call claim outlives its instance's last refresh.
        client: a client to use instead of one made from ``url`` (tests).

    Attributes:
        available: False while Redis cannot be reached.
        owned: the calls this process claimed and has not released (call SID → owner).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "voicehost",
        token_ttl_s: float = 30.0,
        record_ttl_s: float = DEFAULT_RECORD_TTL_S,
        live_ttl_s: float = 15.0,
        client: aioredis.Redis | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.token_ttl_ms = max(1, int(token_ttl_s * 1000))
        self.record_ttl_ms = max(1, int(record_ttl_s * 1000))
        self.live_ttl_ms = max(1000, int(live_ttl_s * 1000))
        self.client = client if client is not None else connect_redis(url)
        self.available = True
        self.owned: dict[str, str] = {}
        self._take_token = self.client.register_script(TAKE_TOKEN)
        self._update = self.client.register_script(UPDATE_CALL)
        self._release = self.client.register_script(RELEASE)
        self._refresh = self.client.register_script(REFRESH)
        self._admit = self.client.register_script(ADMIT_CALL)
        self._start = self.client.register_script(START_STREAM)
        self._back = asyncio.Event()

    # --- keys ------------------------------------------------------------------------------

    def key(self, kind: str, call_sid: str) -> str:
        """``<prefix>:<kind>:<call_sid>``."""
        return f"{self.prefix}:{kind}:{call_sid}"

    # --- connection ------------------------------------------------------------------------

    async def check(self) -> None:
        """Ping Redis once.

        Raises:
            LiveStateUnavailable: it does not answer; the message names the URL (password
                hidden).
        """
        try:
            await self.client.ping()
        except (*UNREACHABLE, RedisError) as exc:
            raise LiveStateUnavailable(
                f"[state] url {redacted_url(self.url)}: cannot reach Redis: {exc}"
            ) from exc

    async def _run(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis command; see the module's note on failures."""
        if not self.available:
            raise LiveStateUnavailable(f"Redis at {redacted_url(self.url)} is unreachable")
        try:
            return await command()
        except UNREACHABLE as exc:
            self._mark_down(exc)
            raise LiveStateUnavailable(f"Redis at {redacted_url(self.url)} is unreachable") from exc

    def _mark_down(self, exc: BaseException) -> None:
        if self.available:
            self.available = False
            self._back.clear()
            log.warning(
                "shared call state: Redis at %s unreachable (%s); live calls go on, new calls "
                "get 503 until it is back",
                redacted_url(self.url),
                exc.__class__.__name__,
            )

    async def maintain(self, every_s: float | None = None) -> None:
        """Run until cancelled: renew the claims of the calls live here every ``every_s``
        seconds (default a third of the live TTL); while Redis is down, ping it every second
        and, once it answers, re-claim them. Never raises (cancellation aside)."""
        period = every_s if every_s is not None else self.live_ttl_ms / 3000
        while True:
            if self.available:
                await asyncio.sleep(period)
                await self._refresh_owned()
                continue
            await asyncio.sleep(_PING_INTERVAL_S)
            try:
                await self.client.ping()
            except (*UNREACHABLE, RedisError):
                continue
            self.available = True
            self._back.set()
            log.warning("shared call state: Redis at %s is back", redacted_url(self.url))
            await self._refresh_owned()

    async def _refresh_owned(self) -> None:
        if not self.owned:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                sids = list(self.owned.items())
                for call_sid, owner in sids:
                    await self._refresh(
                        keys=[self.key("live", call_sid), self.key("call", call_sid)],
                        args=[owner, self.live_ttl_ms, self.record_ttl_ms],
                        client=pipe,
                    )
                results = await pipe.execute(raise_on_error=False)
        except UNREACHABLE as exc:
            self._mark_down(exc)
            return
        except RedisError as exc:
            log.warning("shared call state: refreshing live calls failed: %s", exc)
            return
        for (call_sid, _owner), result in zip(sids, results, strict=True):
            if result == 0:
                log.warning("call %s: another instance holds it in the registry", call_sid)

    async def wait_available(self) -> None:
        """Return once Redis is reachable (at once when it is)."""
        if not self.available:
            await self._back.wait()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    # --- tokens ----------------------------------------------------------------------------

    async def issue_token(self, call_sid: str) -> str:
        token = secrets.token_urlsafe(16)
        await self._run(
            lambda: self.client.set(self.key("token", call_sid), token, px=self.token_ttl_ms)
        )
        return token

    async def consume_token(self, call_sid: str, token: str | None) -> None:
        if not token:
            raise TokenRejected("missing")
        stored = await self._run(
            lambda: self._take_token(keys=[self.key("token", call_sid)], args=[token])
        )
        if stored is None:
            raise TokenRejected("unknown")
        if not hmac.compare_digest(str(stored).encode(), token.encode()):
            raise TokenRejected("mismatch")

    async def revoke_token(self, call_sid: str) -> None:
        await self._run(lambda: self.client.delete(self.key("token", call_sid)))

    async def admit_call(self, record: CallRecord) -> str | None:
        token = secrets.token_urlsafe(16)
        sid = record.call_sid
        keys = [self.key("live", sid), self.key("call", sid), self.key("token", sid)]
        args = [json.dumps(record.to_json()), self.record_ttl_ms, token, self.token_ttl_ms]
        admitted = await self._run(lambda: self._admit(keys=keys, args=args))
        return None if admitted is None else token

    async def start_stream(self, call_sid: str, token: str | None, owner: str) -> StreamStart:
        if not token:
            raise TokenRejected("missing")
        keys = [self.key("token", call_sid), self.key("call", call_sid), self.key("live", call_sid)]
        args = [token, owner, self.live_ttl_ms, self.record_ttl_ms]
        found = await self._run(lambda: self._start(keys=keys, args=args))
        stored, data, claimed = found[0], found[1], bool(found[2])
        if not stored:
            raise TokenRejected("unknown")
        if not hmac.compare_digest(str(stored).encode(), token.encode()):
            raise TokenRejected("mismatch")
        if claimed:
            self.owned[call_sid] = owner
        record = CallRecord.from_json(json.loads(data)) if data else None
        return StreamStart(record, claimed)

    # --- call data -------------------------------------------------------------------------

    async def remember_call(self, record: CallRecord) -> None:
        data = json.dumps(record.to_json())
        ttl = self.record_ttl_ms
        await self._run(lambda: self.client.set(self.key("call", record.call_sid), data, px=ttl))

    async def get_call(self, call_sid: str) -> CallRecord | None:
        data = await self._run(lambda: self.client.get(self.key("call", call_sid)))
        return None if data is None else CallRecord.from_json(json.loads(data))

    async def update_status(self, call_sid: str, status: str) -> CallRecord | None:
        return await self.update_call(call_sid, status=status)

    async def update_call(
        self,
        call_sid: str,
        *,
        status: str | None = None,
        answered_by: str | None = None,
        stream_outcome: str | None = None,
    ) -> CallRecord | None:
        args: list[str] = []
        for name, value in (
            ("status", status),
            ("answered_by", answered_by),
            ("stream_outcome", stream_outcome),
        ):
            if value is not None:
                args += [name, value]
        key = self.key("call", call_sid)
        if not args:
            return await self.get_call(call_sid)
        data = await self._run(lambda: self._update(keys=[key], args=args))
        return None if data is None else CallRecord.from_json(json.loads(data))

    async def forget_call(self, call_sid: str) -> None:
        await self._run(lambda: self.client.delete(self.key("call", call_sid)))

    async def claim_notify(self, call_sid: str) -> bool:
        key = self.key("notify", call_sid)
        done = await self._run(lambda: self.client.set(key, "1", nx=True, px=self.record_ttl_ms))
        return bool(done)

    # --- live calls ------------------------------------------------------------------------

    async def mark_live(self, call_sid: str, owner: str) -> bool:
        key = self.key("live", call_sid)
        done = await self._run(lambda: self.client.set(key, owner, nx=True, px=self.live_ttl_ms))
        if done:
            self.owned[call_sid] = owner
            try:  # the record lives as long as the call (renewed by :meth:`maintain`)
                await self.client.pexpire(self.key("call", call_sid), self.record_ttl_ms)
            except (*UNREACHABLE, RedisError):
                pass
        return bool(done)

    async def is_live(self, call_sid: str) -> bool:
        return await self.live_owner(call_sid) is not None

    async def live_owner(self, call_sid: str) -> str | None:
        owner = await self._run(lambda: self.client.get(self.key("live", call_sid)))
        return None if owner is None else str(owner)

    async def mark_ended(self, call_sid: str, owner: str) -> None:
        if self.owned.get(call_sid) == owner:
            del self.owned[call_sid]
        await self._run(lambda: self._release(keys=[self.key("live", call_sid)], args=[owner]))

    async def live_calls(self, limit: int = 10_000) -> dict[str, str]:
        """Every live call of the deployment (call SID → the instance holding it), at most
        ``limit`` (found with ``SCAN``, so it never blocks Redis).

        Raises:
            LiveStateUnavailable: Redis cannot be reached.
        """
        pattern = self.key("live", "*")
        start = len(self.key("live", ""))

        async def scan() -> dict[str, str]:
            keys: list[str] = []
            async for key in self.client.scan_iter(match=pattern, count=500):
                keys.append(key)
                if len(keys) >= limit:
                    break
            if not keys:
                return {}
            owners = await self.client.mget(keys)
            return {k[start:]: o for k, o in zip(keys, owners, strict=True) if o is not None}

        return await self._run(scan)
