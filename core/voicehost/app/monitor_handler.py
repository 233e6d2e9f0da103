"""The call handler that feeds the live call monitor (:mod:`voicehost.app.monitor`): it
wraps the application's real handler, passes every callback on unchanged and tells the
:class:`~voicehost.app.monitor.MonitorHub` what happened (call start and end, interim and
final caller transcripts, key presses)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from voicehost.app.monitor import MonitorHub
from voicehost.server import Call, CallHandler
from voicehost.server.events import CallEvent

log = logging.getLogger(__name__)

__all__ = ["MonitoringHandler"]


class MonitoringHandler(CallHandler):
    """Passes every callback to ``inner`` and tells ``hub`` what happened.

    Args:
        inner: the real handler.
        hub: the monitor.

    Any other attribute (``store``, ``aclose`` …) is ``inner``'s.
    """

    def __init__(self, inner: CallHandler, hub: MonitorHub) -> None:
        self.inner = inner
        self.hub = hub

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _tell(self, method: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception:  # the monitor must never break a call
            log.exception("monitor: %s failed", getattr(method, "__name__", method))

    async def on_call_start(self, call: Call) -> None:
        self._tell(
            self.hub.call_started,
            call.call_sid,
            from_=call.from_,
            to=call.to,
            direction=call.direction,
            answered_by=call.answered_by,
        )
        await self.inner.on_call_start(call)

    async def on_partial(self, call: Call, text: str) -> None:
        self._tell(self.hub.on_partial, call.call_sid, text)
        await self.inner.on_partial(call, text)

    async def on_transcript(self, call: Call, text: str) -> None:
        self._tell(self.hub.on_transcript, call.call_sid, text)
        await self.inner.on_transcript(call, text)

    async def on_provisional_transcript(self, call: Call, text: str | None) -> None:
        await self.inner.on_provisional_transcript(call, text)

    async def on_speech_start(self, call: Call) -> None:
        await self.inner.on_speech_start(call)

    async def on_dtmf(self, call: Call, digit: str) -> None:
        self._tell(self.hub.on_dtmf, call.call_sid, digit)
        await self.inner.on_dtmf(call, digit)

    async def on_call_end(self, call: Call, reason: str) -> None:
        try:
            await self.inner.on_call_end(call, reason)
        finally:  # after the inner handler wrote its last turns
            self._tell(self.hub.call_ended, call.call_sid, reason)

    async def on_call_event(self, event: CallEvent) -> None:
        await self.inner.on_call_event(event)
