"""Twilio's side of the calls placed through the fake REST API
(:class:`voicehost.testing.twilio_rest.FakeTwilioRest`), played against voicehost by
:class:`CallPlayer`: signed status callbacks, the voice webhook when a call is answered, the
Media Stream its TwiML asks for (through :class:`voicehost.testing.twilio.TwilioSimulator`),
and the TwiML it is given later.

What Twilio does with TwiML, as played here:

* ``<Connect><Stream>``: the stream is opened (``connected`` + ``start``); when voicehost
  closes the socket (or a test sends ``stop`` on it), Twilio goes on with the verbs after
  ``</Connect>`` (e.g. voicehost's ``<Redirect>`` to its webhook);
* ``<Redirect>``: the webhook at its URL is POSTed and its answer played;
* ``<Dial>``: the call stays ``in-progress`` (bridged to the far end) until
  :meth:`CallPlayer.end` (``FakeTwilioRest.finish``);
* ``<Gather>``: the call waits; :meth:`CallPlayer.gather` posts its result to the action URL;
* ``<Say>``, ``<Play>``, ``<Pause>``: "played" at once; ``<Hangup/>``, ``<Reject/>`` and the
  end of the document complete the call (final status callback ``completed``).

The callee hanging up is ``FakeTwilioRest.finish(sid)``: the call is ``completed`` first, its
stream then stopped, and nothing more of its TwiML runs. A REST update with ``Twiml`` /
``Url`` of a streaming call stops the stream first (``stop``), as Twilio does when a call is
redirected; ``Status=completed`` ends it (``canceled`` for a call not answered yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Coroutine, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import urljoin

import yarl

from voicehost.testing.twilio import TwilioSimulator, WebhookReply, parse_stream_twiml
from voicehost.testing.twilio_rest_calls import FINAL_STATUSES, AnsweredCall, FakeCall
from voicehost.testing.twilio_stream import SimulatedCall

__all__ = ["CallPlayer"]

_EVENT_OF_STATUS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}


class CallPlayer:
    """Plays Twilio's side of the fake's calls against voicehost (see the module doc).

    Args:
        simulator: signs and sends webhooks and opens streams; its ``public_url`` is the
            prefix of every webhook and callback URL a call may name.
    """

    def __init__(self, simulator: TwilioSimulator) -> None:
        self.simulator = simulator
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchers: dict[asyncio.Task[Any], SimulatedCall] = {}
        self.errors: list[str] = []

    # --- plumbing --------------------------------------------------------------------------

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, watching: SimulatedCall | None = None
    ) -> None:
        """Run ``coro`` in the background (what Twilio does after answering a request); a
        failure lands in :attr:`errors`. One ``watching`` a stream counts for
        :meth:`settled` only once that stream has closed."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        if watching is not None:
            self._watchers[task] = watching
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._watchers.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def settled(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every background step (callbacks, stream stops, what follows a
        closed stream) has run.

        Raises:
            TimeoutError: they did not within ``timeout`` seconds.
            AssertionError: a step failed (see :attr:`errors`).
        """

        def busy() -> set[asyncio.Task[Any]]:
            return {
                task
                for task in self._tasks
                if task not in self._watchers or self._watchers[task].ws.closed
            }

        async with asyncio.timeout(timeout):
            while tasks := busy():
                await asyncio.wait(tasks)
        if self.errors:
            raise AssertionError(f"playing Twilio's side failed: {self.errors}")

    async def close(self) -> None:
        """Cancel what is still running (stream watchers)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def local_url(self, url: str) -> str:
        """Where a public voicehost URL is served: ``base_url`` + what follows ``public_url``.

        Raises:
            AssertionError: ``url`` is not under the simulator's ``public_url``.
        """
        public = self.simulator.public_url
        if url != public and not url.startswith((public + "/", public + "?")):
            raise AssertionError(f"{url!r} is not under voicehost's public URL {public!r}")
        return self.simulator.base_url + url[len(public) :]

    async def post(self, url: str, params: Mapping[str, str]) -> WebhookReply:
        """POST ``params`` to the public ``url`` as Twilio does: signed over ``url`` exactly
        as given (query included), sent without re-encoding it."""
        headers = {}
        if self.simulator.auth_token:
            headers["X-Twilio-Signature"] = self.simulator.sign(url, params)
        target = yarl.URL(self.local_url(url), encoded=True)
        async with self.simulator.session.post(target, data=dict(params), headers=headers) as r:
            return WebhookReply(r.status, await r.text(), dict(r.headers))

    def _params(self, call: FakeCall, status: str) -> dict[str, str]:
        return self.simulator.webhook_params(
            call.sid, from_=call.from_, to=call.to, direction=call.direction, status=status
        )

    # --- status callbacks ------------------------------------------------------------------

    async def post_status(self, call: FakeCall, status: str) -> None:
        """The status callback of ``status`` when the call asked for its event."""
        event = "completed" if status in FINAL_STATUSES else _EVENT_OF_STATUS.get(status, "")
        if not call.status_callback or event not in call.status_callback_events:
            return
        params = self._params(call, status)
        params.update(
            CallbackSource="call-progress-events",
            SequenceNumber=call.next_sequence(),
            Timestamp=formatdate(time.time(), usegmt=True),
        )
        if status in FINAL_STATUSES:
            duration = call.to_json()["duration"] or "0"
            params.update(CallDuration=duration, Duration=duration)
            if call.answered_by:
                params["AnsweredBy"] = call.answered_by
        reply = await self.post(call.status_callback, params)
        call.callbacks.append((status, reply.status))

    async def end(self, call: FakeCall, status: str) -> None:
        """Give ``call`` its final ``status`` (once), stop its stream, post the callback."""
        if call.finish_now(status):
            await self.after_end(call)

    async def after_end(self, call: FakeCall) -> None:
        """What follows the end of a call: its stream stopped, the final status callback."""
        await self.stop_stream(call)
        await self.post_status(call, call.status)

    async def stop_stream(self, call: FakeCall) -> None:
        """Stop the call's stream (``stop``, then the server closes the socket)."""
        stream, call.stream = call.stream, None
        if stream is not None and stream.close_code is None:
            await stream.stop()

    # --- progress --------------------------------------------------------------------------

    async def ring(self, call: FakeCall) -> None:
        """``initiated`` then ``ringing`` status callbacks."""
        if call.status != "queued":
            raise AssertionError(f"call {call.sid} is {call.status}, not queued")
        await self.post_status(call, "initiated")
        call.status = "ringing"
        await self.post_status(call, "ringing")

    async def answer(self, call: FakeCall, answered_by: str | None = None) -> AnsweredCall:
        """The callee picks up: ``answered`` status callback, then the voice webhook POST
        (``CallStatus=in-progress``, ``Direction=outbound-api``, ``AnsweredBy`` when given)
        to the call's ``Url``; its TwiML is then played (see the module doc)."""
        if call.status == "queued":
            await self.ring(call)
        if call.status != "ringing":
            raise AssertionError(f"call {call.sid} is {call.status}, not ringing")
        call.status = "in-progress"
        call.answered_at = time.time()
        call.answered_by = answered_by or ""
        await self.post_status(call, "in-progress")
        if call.twiml and not call.url:
            reply = WebhookReply(200, call.twiml, {})
            call.twimls.append(call.twiml)
        else:
            extra = {"AnsweredBy": answered_by} if answered_by else {}
            reply = await self.webhook(call, extra=extra)
        stream = await self.play(call, reply)
        return AnsweredCall(reply, stream)

    async def webhook(
        self, call: FakeCall, *, url: str | None = None, extra: Mapping[str, str] | None = None
    ) -> WebhookReply:
        """POST the voice webhook of ``call`` (to ``url``, default its ``Url``) and record
        the answer; the TwiML is not played (see :meth:`answer`)."""
        target = url or call.url
        params = {**self._params(call, call.status), **(extra or {})}
        reply = await self.post(target, params)
        call.webhooks.append((target, params, reply))
        call.twimls.append(reply.text)
        return reply

    async def play(self, call: FakeCall, reply: WebhookReply) -> SimulatedCall | None:
        """Act on TwiML voicehost gave (a webhook answer or a REST update); returns the
        stream when it opened one. A webhook that failed or answered something that is not
        TwiML fails the call (Twilio: "an application error has occurred")."""
        if reply.status != 200:
            await self.end(call, "failed")
            return None
        try:
            root = ET.fromstring(reply.text)
        except ET.ParseError:
            await self.end(call, "failed")
            return None
        return await self.run(call, list(root), reply.text)

    async def run(
        self, call: FakeCall, verbs: list[ET.Element], twiml: str
    ) -> SimulatedCall | None:
        """Execute ``verbs`` in order, as Twilio does (see the module doc): ``<Say>`` /
        ``<Play>`` / ``<Pause>`` are "played" at once, ``<Redirect>`` POSTs the webhook at
        its URL and plays the answer, ``<Hangup/>`` / ``<Reject/>`` / the end of the
        document complete the call, ``<Gather>`` and ``<Dial>`` wait, ``<Connect><Stream>``
        opens the stream and keeps the verbs after it for when the stream ends."""
        for index, verb in enumerate(verbs):
            if verb.tag == "Connect" and verb.find("Stream") is not None:
                call.after_stream = verbs[index + 1 :]
                return await self.open_stream(call, twiml)
            if verb.tag == "Gather":
                call.gather_action = urljoin(call.url, verb.get("action") or call.url)
                return None
            if verb.tag == "Dial":
                return None
            if verb.tag in ("Hangup", "Reject"):
                await self.end(call, "completed")
                return None
            if verb.tag == "Redirect":
                target = urljoin(call.url, (verb.text or "").strip() or call.url)
                return await self.play(call, await self.webhook(call, url=target))
        await self.end(call, "completed")
        return None

    async def open_stream(self, call: FakeCall, twiml: str) -> SimulatedCall:
        """Open the ``<Connect><Stream>`` of ``twiml``: ``connected`` + ``start``; when the
        socket closes while it is still the call's stream, the call is ``completed``."""
        stream_url, stream_params = parse_stream_twiml(twiml)
        sim = self.simulator
        stream = await sim.open_stream(sim.local_stream_url(stream_url), call_sid=call.sid)
        stream.twiml = twiml
        stream.stream_url = stream_url
        stream.token = stream_params.get("token")
        stream.custom_parameters = dict(stream_params)
        call.stream = stream
        call.streams.append(stream)
        await stream.send_connected()
        await stream.send_start()
        self.spawn(self._watch(call, stream), watching=stream)
        return stream

    async def _watch(self, call: FakeCall, stream: SimulatedCall) -> None:
        """When ``stream`` closes while it is still the call's (neither stopped by a REST
        update nor by the call's end), Twilio goes on with the verbs after ``</Connect>``."""
        while not stream.ws.closed:
            with contextlib.suppress(TimeoutError):
                await stream.wait_closed(timeout=3600)
        if call.stream is stream and not call.over:
            call.stream = None
            verbs, call.after_stream = call.after_stream, []
            await self.run(call, verbs, "")

    async def redirect(
        self, call: FakeCall, *, twiml: str | None = None, url: str | None = None
    ) -> None:
        """A REST update gave the answered ``call`` new ``twiml`` (or a new TwiML ``url``):
        its stream is stopped, then the new TwiML is played."""
        await self.stop_stream(call)
        if twiml:
            call.twimls.append(twiml)
            await self.play(call, WebhookReply(200, twiml, {}))
        elif url:
            call.url = url
            await self.play(call, await self.webhook(call))

    async def gather(
        self, call: FakeCall, *, speech: str | None = None, digits: str | None = None
    ) -> WebhookReply:
        """The caller answered a ``<Gather>``: POST ``SpeechResult`` (and ``Confidence``) or
        ``Digits`` to its action URL; the TwiML answered is played."""
        if call.gather_action is None:
            raise AssertionError(f"call {call.sid} is not in a <Gather>")
        extra: dict[str, str] = {}
        if speech is not None:
            extra.update(SpeechResult=speech, Confidence="0.9")
        if digits is not None:
            extra["Digits"] = digits
        action, call.gather_action = call.gather_action, None
        reply = await self.webhook(call, url=action, extra=extra)
        await self.play(call, reply)
        return reply
