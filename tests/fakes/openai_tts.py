"""A fake OpenAI TTS endpoint: ``POST /v1/audio/speech`` (wire-protocols.md §3.1).

Checks what the official ``openai`` SDK sends exactly as OpenAI documents it:

- ``Authorization: Bearer <key>`` equal to the fake's key, else 401 with
  ``{"error": {"code": "invalid_api_key", …}}``;
- ``Content-Type: application/json`` and the SDK's ``Accept: application/octet-stream``;
- a JSON body with only the documented keys: ``model`` (one of the TTS models), ``input``
  (1 – 4096 characters), ``voice`` (a built-in voice name or ``{"id": "voice_…"}``),
  ``instructions`` (not with ``tts-1``/``tts-1-hd``), ``response_format`` (this fake
  serves only ``"pcm"``), ``speed`` (0.25 – 4.0), ``stream_format`` (``"audio"``); anything
  else → 400 with OpenAI's error shape.

It streams :attr:`FakeOpenAITTS.audio` — a 440 Hz tone, PCM16 LE 24 kHz mono by default —
as a chunked ``audio/pcm`` body in uneven chunks (see :class:`~fakes.tts_stream.StreamPlan`).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from fakes.tts_stream import FakeTTSServer, RecordedRequest, StreamPlan, tone_pcm16

MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"})
VOICES = frozenset(
    {
        "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
        "nova", "sage", "shimmer", "verse", "marin", "cedar",
    }
)  # fmt: skip
BODY_KEYS = frozenset(
    {"model", "input", "voice", "instructions", "response_format", "speed", "stream_format"}
)
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.3
SAMPLE_RATE = 24000


def openai_error(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


#: Default bodies of the scripted error statuses.
ERROR_BODIES: dict[int, dict[str, Any]] = {
    401: openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    429: openai_error("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: openai_error("The server had an error processing your request.", "server_error", None),
    503: openai_error("The engine is currently overloaded.", "server_error", None),
}


class FakeOpenAITTS(FakeTTSServer):
    """Fake ``POST /v1/audio/speech`` streaming PCM16 24 kHz.

    Args:
        api_key: the only key accepted.
        audio: the PCM16 LE 24 kHz body streamed for every accepted request (1 s of a
            440 Hz tone at 0.3 of full scale by default).

    The SDK's ``base_url`` for this fake is :attr:`base_url` (``…/v1``).
    """

    def __init__(self, api_key: str = "sk-test", audio: bytes | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.audio = (
            audio if audio is not None else tone_pcm16(TONE_HZ, 1.0, SAMPLE_RATE, TONE_AMPLITUDE)
        )

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to ``openai.AsyncOpenAI``."""
        return f"{self.origin}/v1"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(record)
        if request.path != "/v1/audio/speech":
            return self.reject(
                record,
                404,
                openai_error(
                    f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None
                ),
            )
        if request.method != "POST":
            return self.reject(
                record, 405, openai_error("Method not allowed", "invalid_request_error", None)
            )
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            return self.reject(record, 401, ERROR_BODIES[401])
        if request.query:
            return self.reject(
                record,
                400,
                openai_error(
                    f"Unexpected query {dict(request.query)}", "invalid_request_error", None
                ),
            )
        if request.content_type != "application/json":
            return self.reject(
                record,
                400,
                openai_error(
                    "Content-Type must be application/json", "invalid_request_error", None
                ),
            )
        if request.headers.get("Accept") != "application/octet-stream":
            return self.reject(
                record,
                400,
                openai_error(
                    "SDK sends Accept: application/octet-stream", "invalid_request_error", None
                ),
            )
        try:
            record.body = json.loads(raw)
        except ValueError:
            return self.reject(
                record,
                400,
                openai_error(
                    "We could not parse the JSON body of your request.",
                    "invalid_request_error",
                    None,
                ),
            )
        problem = validate_speech_body(record.body)
        if problem is not None:
            param, message = problem
            return self.reject(
                record, 400, openai_error(message, "invalid_request_error", "invalid_value", param)
            )
        plan = self.next_plan()
        if plan.status != 200:
            body = (
                plan.error_body
                if plan.error_body is not None
                else ERROR_BODIES.get(plan.status, openai_error("error", "server_error", None))
            )
            headers = (
                {"Retry-After": str(plan.retry_after)} if plan.retry_after is not None else None
            )
            record.rejected = f"scripted {plan.status}"
            return web.json_response(body, status=plan.status, headers=headers)
        return await self.stream_http(
            request, record, self.audio_for_request(record), plan, "audio/pcm"
        )


def validate_speech_body(body: Any) -> tuple[str, str] | None:
    """``(param, message)`` for the first documented rule ``body`` breaks, else ``None``."""
    if not isinstance(body, dict):
        return "body", "The body must be a JSON object."
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        return unknown[0], f"Unrecognized request argument supplied: {unknown[0]}"
    for key in ("model", "input", "voice"):
        if key not in body:
            return key, f"Missing required parameter: '{key}'."
    if body["model"] not in MODELS:
        return "model", f"Invalid model {body['model']!r}."
    text = body["input"]
    if not isinstance(text, str) or not text or len(text) > 4096:
        return "input", "input must be a string of 1 to 4096 characters."
    voice = body["voice"]
    built_in = isinstance(voice, str) and voice in VOICES
    custom = (
        isinstance(voice, dict) and set(voice) == {"id"} and str(voice["id"]).startswith("voice_")
    )
    if not (built_in or custom):  # custom voices go as {"id": "voice_…"}
        return "voice", f"Invalid voice {voice!r}."
    if "instructions" in body:
        if not isinstance(body["instructions"], str):
            return "instructions", "instructions must be a string."
        if body["model"] in ("tts-1", "tts-1-hd"):
            return "instructions", "instructions are not supported for tts-1 and tts-1-hd."
    if body.get("response_format", "mp3") != "pcm":
        return "response_format", "This fake serves response_format 'pcm' only."
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        return "speed", "speed must be between 0.25 and 4.0."
    if body.get("stream_format", "audio") != "audio":
        return "stream_format", "This fake streams raw audio only."
    return None


__all__ = ["ERROR_BODIES", "FakeOpenAITTS", "StreamPlan", "validate_speech_body"]
