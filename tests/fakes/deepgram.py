"""A fake Deepgram live streaming API (``/v1/listen``; wire-protocols.md §4).

Checks what ``deepgram-sdk`` sends, as Deepgram documents it:

- ``GET /v1/listen?…`` with ``Authorization: Token <key>`` → else HTTP 401; the query must
  declare raw μ-law (``encoding=mulaw&sample_rate=8000``) and name a ``model`` → else 400;
- audio as **binary** frames, control messages (``KeepAlive``, ``Finalize``, ``CloseStream``)
  as JSON **text** frames; anything else is a violation answered with an ``Error`` message;
- a socket that receives neither audio nor ``KeepAlive`` for :attr:`FakeDeepgram.idle_timeout_s`
  is closed with 1011 ``NET-0001``, as Deepgram does after about 10 s.

Per utterance it sends ``SpeechStarted`` (with ``vad_events=true``), interim ``Results``
(``is_final=false``, with ``interim_results=true``) every 200 ms of speech, then the final text
as :attr:`FakeDeepgram.final_segments` ``Results`` with ``is_final=true`` (the last one with
``speech_final=true`` when ``endpointing`` is on) and ``UtteranceEnd`` (with
``utterance_end_ms``). ``endpointing`` ms of silence end an utterance. ``Finalize`` flushes
the utterance in progress (``from_finalize=true``); ``CloseStream`` gets ``Metadata`` and a
1000 close.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from fakes.stt_audio import Heard, Recogniser
from fakes.stt_ws import Connection, FakeSTTServer

CONTROL_TYPES = frozenset({"KeepAlive", "Finalize", "CloseStream", "Configure"})


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[0] == "true"


def _ms(query: dict[str, list[str]], key: str) -> int | None:
    value = query.get(key, [None])[0]
    if value is None or value == "false":
        return None
    return int(value)


class FakeDeepgram(FakeSTTServer):
    """Fake ``wss://api.deepgram.com/v1/listen``.

    Scripting (set before or during a test):
        final_segments: how many ``is_final`` Results an utterance's text is split into.
        speech_final: mark the last final ``speech_final=true`` (False: only ``UtteranceEnd``
            ends the turn).
        idle_timeout_s: close an idle socket (no audio, no KeepAlive) after this long (read
            when a connection opens).

    The SDK's environment for this fake is ``base=`` :attr:`base_url`, ``production=`` the
    same origin with ``ws://``.
    """

    def __init__(self, api_key: str = "dg-test") -> None:
        super().__init__(api_key, auth_scheme="Token", path="/v1/listen")
        self.final_segments = 2
        self.speech_final = True
        self.idle_timeout_s: float | None = None

    @property
    def base_url(self) -> str:
        """What the plugin's ``base_url`` is set to (the REST origin)."""
        return self.origin

    def check_request(self, conn_path: str, query: dict[str, list[str]]) -> str | None:
        if query.get("encoding") != ["mulaw"] or query.get("sample_rate") != ["8000"]:
            return "raw audio needs encoding=mulaw&sample_rate=8000"
        if not query.get("model"):
            return "model is required"
        if query.get("utterance_end_ms") and not _flag(query, "interim_results"):
            return "utterance_end_ms requires interim_results=true"
        return None

    def make_recogniser(self, query: dict[str, list[str]]) -> Recogniser:
        endpointing = _ms(query, "endpointing")
        utterance_end = _ms(query, "utterance_end_ms")
        end = endpointing if endpointing is not None else utterance_end
        partials = 200 if _flag(query, "interim_results") else None
        return Recogniser(self.utterances, end_silence_ms=end, partial_every_ms=partials)

    async def send_error(self, code: str, description: str, conn: Connection | None = None) -> None:
        """Send an ``Error`` message."""
        await (conn or self.current).send_json(
            {"type": "Error", "variant": code, "code": code, "description": description}
        )

    async def serve(self, conn: Connection) -> None:
        idle_timeout = self.idle_timeout_s  # as it was when this connection opened
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    raw = await conn.ws.recv()
            except TimeoutError:
                await conn.ws.close(1011, "NET-0001: no audio or KeepAlive received")
                return
            if isinstance(raw, bytes):
                conn.messages.append(("binary", len(raw)))
                await self.received_audio(conn, raw)
                for heard in conn.recogniser.feed(raw):
                    await self._heard(conn, heard)
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                message = None
            conn.messages.append(("text", message if message is not None else raw))
            kind = message.get("type") if isinstance(message, dict) else None
            if kind not in CONTROL_TYPES:
                conn.violations.append(f"unexpected text frame {raw[:40]!r}")
                await self.send_error("INVALID_MESSAGE", "text frames must be control messages")
            elif kind == "Finalize":
                for heard in conn.recogniser.flush():
                    await self._heard(conn, heard, from_finalize=True)
            elif kind == "CloseStream":
                for heard in conn.recogniser.flush():
                    await self._heard(conn, heard, from_finalize=True)
                await conn.send_json(
                    {
                        "type": "Metadata",
                        "transaction_key": "deprecated",
                        "request_id": str(uuid.uuid4()),
                        "sha256": "",
                        "created": "2026-01-01T00:00:00.000Z",
                        "duration": len(conn.audio) / 8000,
                        "channels": 1,
                    }
                )
                await self.notify()
                await conn.ws.close(1000)
                return
            await self.notify()

    def _results(self, text: str, heard: Heard, **flags: Any) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "start": max(heard.at_ms - heard.audio_ms, 0) / 1000,
            "duration": heard.audio_ms / 1000,
            "is_final": False,
            "speech_final": False,
            "from_finalize": False,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.99, "words": []}]},
            "metadata": {"request_id": "fake", "model_uuid": "fake", "model_info": {}},
            **flags,
        }

    async def _heard(self, conn: Connection, heard: Heard, *, from_finalize: bool = False) -> None:
        query = conn.query
        if heard.kind == "start":
            if _flag(query, "vad_events"):
                await conn.send_json(
                    {"type": "SpeechStarted", "channel": [0], "timestamp": heard.at_ms / 1000}
                )
        elif heard.kind == "partial":
            await conn.send_json(self._results(heard.text, heard))
        else:
            words = heard.text.split()
            count = max(1, min(self.final_segments, len(words)))
            cuts = [round(i * len(words) / count) for i in range(count + 1)]
            endpointing = _ms(query, "endpointing") is not None
            ends_turn = endpointing and self.speech_final and not from_finalize
            for i in range(count):
                last = i == count - 1
                if last:
                    self.record_final(heard.text)
                await conn.send_json(
                    self._results(
                        " ".join(words[cuts[i] : cuts[i + 1]]),
                        heard,
                        is_final=True,
                        speech_final=last and ends_turn,
                        from_finalize=from_finalize,
                    )
                )
            await self.notify()
            if _ms(query, "utterance_end_ms") is not None and not from_finalize:
                await conn.send_json(
                    {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": heard.at_ms / 1000}
                )
