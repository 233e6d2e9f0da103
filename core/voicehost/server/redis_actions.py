"""Cross-instance call actions over Redis pub/sub: a status callback, an API hang-up or
transfer, or a monitor's hang-up button that lands on an instance that does not hold the call
is forwarded to the instance that does, and answered once it has acted.

Channels (``P`` is ``[state] prefix``): every instance subscribes to ``P:actions:<its id>``
and ``P:replies:<its id>``. A request is JSON ``{"id", "action", "call_sid", "args",
"reply_to"}``; the owner runs the action on its own :class:`~voicehost.server.state.CallServer`
(:meth:`~voicehost.server.state.CallServer.hangup_call`,
:meth:`~voicehost.server.state.CallServer.update_status`,
:meth:`~voicehost.server.state.CallServer.transfer_call`) and publishes ``{"id", "ok",
"error"}`` on ``P:replies:<reply_to>``. ``PUBLISH`` reaching no subscriber means the owner is
gone (its registry entry will expire): the sender acts itself (a REST hang-up, say).

When Redis is lost the listener logs once, then resubscribes every second until it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from voicehost.server.call_control import CallControlError
from voicehost.server.events import BOT_HANGUP
from voicehost.server.live_state import LiveStateUnavailable
from voicehost.server.redis_state import UNREACHABLE, RedisLiveState
from voicehost.server.state import CallServer

log = logging.getLogger(__name__)

__all__ = ["ACTIONS", "RedisActions"]

#: The actions that can be forwarded.
ACTIONS = frozenset({"hangup", "status", "transfer"})
_RESUBSCRIBE_S = 1.0


class RedisActions:
    """The :class:`~voicehost.server.live_state.CallForwarder` of an instance whose live
    state is a :class:`RedisLiveState`.

    Args:
        server: this instance's call server (actions for its calls run on it).
        live: the shared state (its client publishes; the registry says who holds a call).
        timeout_s: how long :meth:`forward` waits for the owner's answer, s.
    """

    def __init__(self, server: CallServer, live: RedisLiveState, *, timeout_s: float = 10.0):
        self.server = server
        self.live = live
        self.timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()

    def channel(self, kind: str, instance: str) -> str:
        """``<prefix>:<kind>:<instance>`` (``kind``: ``actions`` or ``replies``)."""
        return f"{self.live.prefix}:{kind}:{instance}"

    async def forward(self, call_sid: str, action: str, args: Mapping[str, Any]) -> bool:
        """See :meth:`voicehost.server.live_state.CallForwarder.forward`.

        Raises:
            CallControlError: the owner refused, did not answer within ``timeout_s``, or
                Redis is unreachable.
            ValueError: ``action`` is not one of :data:`ACTIONS`.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown call action {action!r}")
        me = self.server.instance_id
        try:
            owner = await self.live.live_owner(call_sid)
        except LiveStateUnavailable as exc:
            raise CallControlError(f"{action} of {call_sid}: {exc}") from exc
        if owner is None or owner == me:
            return False
        request_id = secrets.token_hex(8)
        message = json.dumps(
            {
                "id": request_id,
                "action": action,
                "call_sid": call_sid,
                "args": dict(args),
                "reply_to": me,
            }
        )
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            try:
                receivers = await self.live.client.publish(self.channel("actions", owner), message)
            except UNREACHABLE as exc:
                raise CallControlError(f"{action} of {call_sid}: Redis unreachable") from exc
            if not receivers:
                log.warning("call %s: instance %s is gone; acting here", call_sid, owner)
                return False
            try:
                reply = await asyncio.wait_for(answer, self.timeout_s)
            except TimeoutError:
                raise CallControlError(
                    f"{action} of {call_sid}: instance {owner} did not answer in "
                    f"{self.timeout_s:g} s"
                ) from None
        finally:
            self._waiting.pop(request_id, None)
        if not reply.get("ok"):
            raise CallControlError(str(reply.get("error") or f"{action} of {call_sid} failed"))
        log.info("call %s: %s forwarded to instance %s", call_sid, action, owner)
        return True

    async def listen(self) -> None:
        """Run until cancelled: receive requests and replies; resubscribe after Redis was
        lost. Never raises (cancellation aside)."""
        me = self.server.instance_id
        channels = (self.channel("actions", me), self.channel("replies", me))
        lost = False
        while True:
            pubsub = self.live.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                if lost:
                    log.warning("call actions: subscribed again to %s", channels[0])
                    lost = False
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(str(message["channel"]), str(message["data"]))
            except UNREACHABLE:
                self.subscribed.clear()
                if not lost:
                    log.warning("call actions: Redis lost; resubscribing once it is back")
                    lost = True
                await asyncio.sleep(_RESUBSCRIBE_S)
            finally:
                try:
                    await pubsub.aclose()
                except (*UNREACHABLE, RuntimeError):
                    pass

    def _on_message(self, channel: str, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("call actions: a message that is not JSON on %s", channel)
            return
        if not isinstance(message, dict):
            return
        if channel.endswith(":replies:" + self.server.instance_id):
            future = self._waiting.get(str(message.get("id")))
            if future is not None and not future.done():
                future.set_result(message)
            return
        task = asyncio.get_running_loop().create_task(self._act(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _act(self, message: dict[str, Any]) -> None:
        action = message.get("action")
        call_sid = str(message.get("call_sid", ""))
        args = message.get("args") if isinstance(message.get("args"), dict) else {}
        reply: dict[str, Any] = {"id": message.get("id"), "ok": True, "error": ""}
        try:
            if action == "hangup":
                await self.server.hangup_call(call_sid, str(args.get("reason") or BOT_HANGUP))
            elif action == "status":
                form = {str(k): str(v) for k, v in (args.get("form") or {}).items()}
                await self.server.update_status(call_sid, str(args.get("status", "")), form)
            elif action == "transfer":
                await self.server.transfer_call(call_sid, str(args.get("to", "")))
            else:
                raise CallControlError(f"unknown call action {action!r}")
        except Exception as exc:  # the sender gets the error; nothing to raise into
            reply.update(ok=False, error=str(exc) or exc.__class__.__name__)
            log.warning("call %s: forwarded %s failed: %s", call_sid, action, exc)
        reply_to = str(message.get("reply_to", ""))
        if not reply_to:
            return
        try:
            await self.live.client.publish(self.channel("replies", reply_to), json.dumps(reply))
        except UNREACHABLE:
            log.warning("call %s: could not answer the forwarded %s", call_sid, action)

    async def aclose(self) -> None:
        """Wait (briefly) for actions still running."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
