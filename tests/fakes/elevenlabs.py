"""A fake ElevenLabs TTS API: HTTP streaming and WebSocket ``stream-input`` (wire-protocols.md §5).

HTTP — ``POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000``:
header ``xi-api-key`` (else 401 ``{"detail": {"status": "invalid_api_key", …}}``), an existing
voice (else 404), documented query keys only (``output_format`` — this fake serves
``ulaw_8000`` only —, ``optimize_streaming_latency`` 0–4, ``enable_logging``), and a JSON body
with a non-empty ``text`` and only documented keys; ``voice_settings`` keys and ranges as
documented (else 422 with FastAPI's ``{"detail": [{"loc", "msg", "type"}]}``). Streams
:attr:`FakeElevenLabs.audio` (known μ-law bytes) in uneven chunks.

WebSocket — ``GET /v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=ulaw_8000``:
key in the ``xi-api-key`` header or the first message (``xi-api-key`` or ``xi_api_key``); the
first message must be ``{"text": " ", …}``; every later text must end with a space; ``{"text": ""}``
ends the input. Text is buffered and "generated" when a message sets ``flush`` or
``try_trigger_generation``, when the buffer reaches the first ``chunk_length_schedule`` value,
and at the end: each generation streams ``audio_for(text)`` as base64 ``{"audio": …}``
messages in uneven sizes; the end sends ``{"isFinal": true}`` and closes with 1000. Protocol
violations get ``{"message", "error"}`` and close 1008.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from fakes.tts_stream import (
    FakeTTSServer,
    RecordedRequest,
    StreamPlan,
    chunked,
    tone_pcm16,
    ulaw_encode_16bit,
)

OUTPUT_FORMATS = frozenset(
    {
        "mp3_22050_32", "mp3_24000_48", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96",
        "mp3_44100_128", "mp3_44100_192", "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000",
        "pcm_32000", "pcm_44100", "pcm_48000", "ulaw_8000", "alaw_8000",
    }
)  # fmt: skip
HTTP_QUERY_KEYS = frozenset({"output_format", "optimize_streaming_latency", "enable_logging"})
WS_QUERY_KEYS = frozenset(
    {
        "model_id", "language_code", "enable_logging", "enable_ssml_parsing", "output_format",
        "inactivity_timeout", "sync_alignment", "auto_mode", "apply_text_normalization", "seed",
        "authorization", "optimize_streaming_latency",
    }
)  # fmt: skip
BODY_KEYS = frozenset(
    {
        "text", "model_id", "language_code", "voice_settings", "pronunciation_dictionary_locators",
        "seed", "previous_text", "next_text", "previous_request_ids", "next_request_ids",
        "use_pvc_as_ivc", "apply_text_normalization", "apply_language_text_normalization",
        "audio_effects",
    }
)  # fmt: skip
VOICE_SETTINGS = {
    "stability": (0.0, 1.0),
    "similarity_boost": (0.0, 1.0),
    "style": (0.0, 1.0),
    "speed": (0.7, 1.2),
    "use_speaker_boost": None,
}
INIT_KEYS = frozenset(
    {"text", "voice_settings", "generation_config", "pronunciation_dictionary_locators",
     "xi-api-key", "xi_api_key", "authorization", "try_trigger_generation"}
)  # fmt: skip
TEXT_KEYS = frozenset(
    {"text", "try_trigger_generation", "flush", "voice_settings", "generator_config",
     "generation_config"}
)  # fmt: skip


def detail_error(status: str, message: str) -> dict[str, Any]:
    """ElevenLabs' error body: ``{"detail": {"status", "message"}}``."""
    return {"detail": {"status": status, "message": message}}


ERROR_BODIES: dict[int, dict[str, Any]] = {
    401: detail_error("invalid_api_key", "Invalid API key"),
    429: detail_error("too_many_concurrent_requests", "Too many concurrent requests."),
    500: detail_error("internal_error", "An internal error occurred."),
}


def known_ulaw(seconds: float = 1.0) -> bytes:
    """Known μ-law 8 kHz audio: a 440 Hz tone at 0.3 of full scale, 20 ms fades."""
    return ulaw_encode_16bit(tone_pcm16(440.0, seconds, 8000, 0.3, ramp_ms=20))


def ulaw_for_text(text: str) -> bytes:
    """Deterministic μ-law audio for a generated text: 40 bytes (5 ms) a character, a tone
    whose pitch depends on the text, so each generation's audio is distinct."""
    digest = hashlib.sha256(text.encode()).digest()
    freq = 300.0 + digest[0] * 4
    n = max(1, len(text.strip())) * 40
    return ulaw_encode_16bit(tone_pcm16(freq, n / 8000, 8000, 0.25))


@attrs.define
class Generation:
    """Audio the WebSocket fake generated for a buffered text."""

    text: str
    audio: bytes


class FakeElevenLabs(FakeTTSServer):
    """Fake ElevenLabs HTTP stream and ``stream-input`` WebSocket on one aiohttp server.

    Args:
        api_key: the only key accepted.
        voices: voice ids that exist.
        audio: μ-law body of every HTTP stream (:func:`known_ulaw` by default).

    Attributes:
        generations: WebSocket generations, in order (text and the audio sent for it).

    Per WebSocket connection, :meth:`push_plan` scripts: ``status`` ≠ 200 refuses the
    handshake with that status; ``error_body`` (with status 200) is sent as an in-band error
    message after the first text message, then the socket closes with ``drop_close_code``;
    ``drop_after_bytes`` closes with ``drop_close_code`` mid-audio.
    """

    def __init__(
        self,
        api_key: str = "xi-test",
        voices: frozenset[str] = frozenset({"voice123"}),
        audio: bytes | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.voices = voices
        self.audio = audio if audio is not None else known_ulaw()
        self.audio_for = ulaw_for_text
        self.generations: list[Generation] = []
        self._message_event = asyncio.Event()

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to ``AsyncElevenLabs`` (the origin, no path)."""
        return self.origin

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._http_stream)
        app.router.add_get("/v1/text-to-speech/{voice_id}/stream-input", self._ws_stream_input)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def wait_messages(self, count: int, within_s: float = 10.0) -> list[dict[str, Any]]:
        """Wait until the latest WebSocket connection has received ``count`` messages."""
        async with asyncio.timeout(within_s):
            while not self.requests or len(self.requests[-1].messages) < count:
                self._message_event.clear()
                await self._message_event.wait()
        return self.requests[-1].messages

    def _record(self, request: web.Request) -> RecordedRequest:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(record)
        return record

    async def _not_found(self, request: web.Request) -> web.Response:
        record = self._record(request)
        return self.reject(record, 404, {"detail": "Not Found"})

    # --- HTTP ----------------------------------------------------------------------------

    async def _http_stream(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        record = self._record(request)
        if request.headers.get("xi-api-key") != self.api_key:
            return self.reject(record, 401, ERROR_BODIES[401])
        voice_id = request.match_info["voice_id"]
        if voice_id not in self.voices:
            return self.reject(
                record,
                404,
                detail_error("voice_not_found", f"A voice with voice_id {voice_id} was not found."),
            )
        problem = _check_http_query(record.query)
        if problem is None and request.content_type != "application/json":
            problem = ("header", "content-type", "Content-Type must be application/json")
        if problem is None:
            try:
                record.body = json.loads(raw)
            except ValueError:
                problem = ("body", "body", "Invalid JSON")
        if problem is None:
            problem = _check_http_body(record.body)
        if problem is not None:
            loc, field, message = problem
            return self.reject(
                record,
                422,
                {"detail": [{"loc": [loc, field], "msg": message, "type": "value_error"}]},
            )
        plan = self.next_plan()
        if plan.status != 200:
            return self._scripted_error(record, plan)
        return await self.stream_http(
            request, record, self.audio_for_request(record), plan, "audio/basic"
        )

    def _scripted_error(self, record: Any, plan: Any) -> web.Response:
        """The error a test scripted for this request, in ElevenLabs' JSON error shape."""
        record.rejected = f"scripted {plan.status}"
        body = (
            plan.error_body
            if plan.error_body is not None
            else ERROR_BODIES.get(plan.status, detail_error("error", "error"))
        )
        return web.json_response(body, status=plan.status)

    # --- WebSocket stream-input -------------------------------------------------------------

    async def _ws_stream_input(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request)
        header_key = request.headers.get("xi-api-key")
        if header_key is not None and header_key != self.api_key:
            return self.reject(record, 401, ERROR_BODIES[401])
        voice_id = request.match_info["voice_id"]
        if voice_id not in self.voices:
            return self.reject(
                record,
                404,
                detail_error("voice_not_found", f"A voice with voice_id {voice_id} was not found."),
            )
        unknown = sorted(set(record.query) - WS_QUERY_KEYS)
        if unknown or record.query.get("output_format") != "ulaw_8000":
            return self.reject(
                record, 400, detail_error("invalid_request", f"bad query {record.query}")
            )
        plan = self.next_plan()
        if plan.status != 200:
            return self._scripted_error(record, plan)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        session = _WsSession(self, ws, record, plan, header_key is not None)
        try:
            await session.run()
        except (ConnectionResetError, asyncio.CancelledError):
            if not session.finished:
                self.record_disconnect(record, session.sent)
            raise
        if not session.finished and not session.dropped and not session.violated:
            self.record_disconnect(record, session.sent)
        return ws

    def note_message(self, record: RecordedRequest, message: dict[str, Any]) -> None:
        record.messages.append(message)
        record.message_times.append(time.monotonic())
        self._message_event.set()


class _WsSession:
    """One ``stream-input`` connection: validate messages, generate, stream audio."""

    def __init__(
        self,
        fake: FakeElevenLabs,
        ws: web.WebSocketResponse,
        record: RecordedRequest,
        plan: StreamPlan,
        authed: bool,
    ) -> None:
        self.fake, self.ws, self.record, self.plan, self.authed = fake, ws, record, plan, authed
        self.buffer = ""
        self.schedule: list[float] = [120, 160, 250, 290]
        self.sent = 0
        self.held = False
        self.finished = self.dropped = self.violated = False

    async def run(self) -> None:
        first = True
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                await self.violation("binary frames are not accepted")
                return
            try:
                data = json.loads(msg.data)
            except ValueError:
                await self.violation("invalid JSON")
                return
            self.fake.note_message(self.record, data)
            if first:
                first = False
                if not await self.initialize(data):
                    return
                continue
            if self.plan.error_body is not None:
                # Scripted in-band vendor error: an error message, then a close frame.
                self.violated = True
                await self.ws.send_str(json.dumps(self.plan.error_body))
                await self.ws.close(code=self.plan.drop_close_code)
                return
            if (
                not isinstance(data, dict)
                or not isinstance(data.get("text"), str)
                or set(data) - TEXT_KEYS
            ):
                await self.violation(f"unexpected message {data!r}")
                return
            text = data["text"]
            if text == "":
                await self.generate()
                if self.dropped:
                    return
                await self.ws.send_str(json.dumps({"isFinal": True}))
                self.finished = True
                await self.ws.close(code=1000)
                return
            if not text.endswith(" "):
                await self.violation("text should always end with a single space")
                return
            self.buffer += text
            if (
                data.get("flush")
                or data.get("try_trigger_generation")
                or len(self.buffer) >= self.schedule[0]
            ):
                await self.generate()
                if self.dropped:
                    return

    async def initialize(self, data: Any) -> bool:
        if not isinstance(data, dict) or data.get("text") != " " or set(data) - INIT_KEYS:
            await self.violation("the first message must be an initializeConnection with text ' '")
            return False
        key = data.get("xi-api-key") or data.get("xi_api_key")
        if not self.authed and key != self.fake.api_key:
            await self.violation("Invalid API key", error="invalid_api_key")
            return False
        settings = data.get("voice_settings")
        if settings is not None and _voice_settings_problem(settings):
            await self.violation(_voice_settings_problem(settings) or "")
            return False
        config = data.get("generation_config")
        if config is not None:
            schedule = config.get("chunk_length_schedule") if isinstance(config, dict) else None
            if not schedule or not all(
                isinstance(v, int | float) and 50 <= v <= 500 for v in schedule
            ):
                await self.violation("chunk_length_schedule values must be 50-500")
                return False
            self.schedule = list(schedule)
        return True

    async def generate(self) -> None:
        text, self.buffer = self.buffer, ""
        if not text.strip():
            return
        audio = self.fake.audio_for(text)
        self.fake.generations.append(Generation(text, audio))
        for index, chunk in enumerate(chunked(audio, self.plan.chunk_sizes)):
            self.held = await self.fake.hold_if_planned(self.plan, self.sent, self.held)
            if index and self.plan.delay_s:
                await asyncio.sleep(self.plan.delay_s)
            drop = self.plan.drop_after_bytes
            if drop is not None and self.sent + len(chunk) > drop:
                chunk = chunk[: drop - self.sent]
                if chunk:
                    await self.send_audio(chunk)
                self.dropped = True
                await self.ws.close(code=self.plan.drop_close_code, message=b"stream dropped")
                return
            if not self.sent:
                self.fake.first_byte_times.append(time.monotonic())
            await self.send_audio(chunk)

    async def send_audio(self, chunk: bytes) -> None:
        message = {
            "audio": base64.b64encode(chunk).decode(),
            "isFinal": None,
            "normalizedAlignment": None,
            "alignment": None,
        }
        await self.ws.send_str(json.dumps(message))
        self.sent += len(chunk)

    async def violation(self, message: str, *, error: str = "invalid_request") -> None:
        self.violated = True
        self.record.rejected = message
        await self.ws.send_str(json.dumps({"message": message, "error": error, "code": 1008}))
        await self.ws.close(code=1008, message=message[:100].encode())


def _check_http_query(query: dict[str, str]) -> tuple[str, str, str] | None:
    unknown = sorted(set(query) - HTTP_QUERY_KEYS)
    if unknown:
        return "query", unknown[0], "unexpected query parameter"
    fmt = query.get("output_format")
    if fmt not in OUTPUT_FORMATS:
        return "query", "output_format", f"invalid output_format {fmt!r}"
    if fmt != "ulaw_8000":
        return "query", "output_format", "this fake serves ulaw_8000 only"
    if "optimize_streaming_latency" in query and query["optimize_streaming_latency"] not in {
        "0",
        "1",
        "2",
        "3",
        "4",
    }:
        return "query", "optimize_streaming_latency", "must be 0-4"
    return None


def _check_http_body(body: Any) -> tuple[str, str, str] | None:
    if not isinstance(body, dict):
        return "body", "body", "must be an object"
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        return "body", unknown[0], "extra fields not permitted"
    if not isinstance(body.get("text"), str) or not body["text"].strip():
        return "body", "text", "field required"
    if "model_id" in body and not isinstance(body["model_id"], str):
        return "body", "model_id", "must be a string"
    if "voice_settings" in body:
        problem = _voice_settings_problem(body["voice_settings"])
        if problem:
            return "body", "voice_settings", problem
    return None


def _voice_settings_problem(settings: Any) -> str | None:
    if not isinstance(settings, dict):
        return "voice_settings must be an object"
    for key, value in settings.items():
        if key not in VOICE_SETTINGS:
            return f"unknown voice setting {key}"
        bounds = VOICE_SETTINGS[key]
        if bounds is None:
            if not isinstance(value, bool):
                return f"{key} must be a boolean"
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not bounds[0] <= value <= bounds[1]
        ):
            return f"{key} must be between {bounds[0]} and {bounds[1]}"
    return None


__all__ = [
    "ERROR_BODIES",
    "FakeElevenLabs",
    "Generation",
    "StreamPlan",
    "known_ulaw",
    "ulaw_for_text",
]
