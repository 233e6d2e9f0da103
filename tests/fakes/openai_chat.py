"""A fake OpenAI Chat Completions endpoint: ``POST /v1/chat/completions`` with
``stream: true``, answered as server-sent events, written from the OpenAI API reference
("Create chat completion", "The chat completion chunk object").

It checks what a client sends as OpenAI documents it:

- ``Authorization: Bearer <key>`` equal to the fake's key (any bearer key when the fake has
  none, like a local server), else 401 with ``{"error": {"code": "invalid_api_key", …}}``;
- ``Content-Type: application/json``; a JSON body with known keys only; ``model`` one of
  the fake's models (else 404 ``model_not_found``); ``stream`` true (this fake streams only);
  ``messages`` well formed (roles, contents, an assistant ``tool_calls`` message answered by
  one ``tool`` message per call id, no ``tool`` message without its call); ``tools`` as
  ``{"type": "function", "function": {"name", "description", "parameters"}}`` with valid,
  unique names; ``tool_choice`` only with ``tools``; ``temperature`` 0 – 2, ``max_tokens``
  ≥ 1. Anything else → 400 with OpenAI's error shape.

An accepted request is answered by a :class:`ChatPlan`: ``data: {chat.completion.chunk}``
events — a first ``{"role": "assistant", "content": ""}`` delta, one per text piece, then
the tool calls (the first delta of each with ``index``, ``id``, ``type`` and ``name``, its
``arguments`` split over several more deltas, optionally interleaved between calls), a last
chunk with an empty delta and ``finish_reason``, then ``data: [DONE]``. A plan can instead
fail with an HTTP status, stall (never answer), hold part way until :meth:`release`, or
drop the connection part way. Every request is recorded, with whether the client went away
before the end (how a test sees that barge-in closed the HTTP stream).

Nothing here imports voicehost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
from aiohttp import web
from fakes.openai_chat_checks import validate_chat_body


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


@attrs.frozen
class ToolCallPlan:
    """One tool call the fake model makes.

    Attributes:
        name: the function name.
        arguments: the arguments' JSON text, sent split over ``pieces`` deltas.
        id: the call id (``call_<n>`` when empty).
        pieces: how many deltas carry ``arguments`` (at least 1).
    """

    name: str
    arguments: str = "{}"
    id: str = ""
    pieces: int = 3


@attrs.define
class ChatPlan:
    """How the fake answers one request.

    Attributes:
        text: the content deltas, in order.
        tool_calls: the tool calls, after the text.
        finish_reason: of the last chunk; default ``"tool_calls"`` with tool calls, else
            ``"stop"``.
        interleave: send the tool calls' argument deltas round-robin (by ``index``).
        status: anything but 200 answers with ``error_body`` (OpenAI's shape by default).
        error_body: the JSON body of an error answer.
        delay_s: pause before each chunk after the first, s.
        stall: accept the request and never answer (not even headers).
        hold_after_chunks: send this many chunks, then wait for :meth:`FakeOpenAIChat.release`.
        drop_after_chunks: send this many chunks, then close the connection abruptly (no
            ``[DONE]``, no terminating chunk).
        error_after_chunks: send this many chunks, then an in-stream error event
            ``data: {"error": {…}}`` (a server error mid-stream) and end.
    """

    text: Sequence[str] = ("Hello! ", "How can I help you today?")
    tool_calls: Sequence[ToolCallPlan] = ()
    finish_reason: str | None = None
    interleave: bool = False
    status: int = 200
    error_body: Any = None
    delay_s: float = 0.0
    stall: bool = False
    hold_after_chunks: int | None = None
    drop_after_chunks: int | None = None
    error_after_chunks: int | None = None


@attrs.define
class ChatRequest:
    """One request the fake received.

    Attributes:
        headers: request headers, keys lower-cased.
        body: the parsed JSON body (None when it was not JSON).
        rejected: why the fake refused it (None: accepted).
        chunks_sent: ``data:`` events written.
        disconnected: the client went away before the end of the answer.
        completed: the whole answer, ``[DONE]`` included, was written.
        received_at: ``time.monotonic()`` on arrival.
    """

    headers: dict[str, str]
    body: Any = None
    rejected: str | None = None
    chunks_sent: int = 0
    disconnected: bool = False
    completed: bool = False
    received_at: float = attrs.field(factory=time.monotonic)


def split_text(text: str, pieces: int) -> list[str]:
    """``text`` cut into ``pieces`` consecutive parts (some may be empty when it is short)."""
    pieces = max(1, pieces)
    size = -(-len(text) // pieces) if text else 0
    return [text[i * size : (i + 1) * size] for i in range(pieces)] if size else [text]


class FakeOpenAIChat:
    """Fake ``POST /v1/chat/completions`` (streamed), on 127.0.0.1, a free port.

    Args:
        api_key: the only bearer key accepted; None accepts any (a local server).
        models: the model ids it serves.

    Use as ``async with FakeOpenAIChat() as fake:``; the SDK's ``base_url`` is
    :attr:`base_url`. Answers: :meth:`push` queues a plan per request; after the queue,
    :attr:`answer` (a function of the request body) or :attr:`default_plan`.
    """

    def __init__(
        self, api_key: str | None = "sk-test", models: Sequence[str] = ("gpt-4o-mini",)
    ) -> None:
        self.api_key = api_key
        self.models = frozenset(models)
        self.default_plan = ChatPlan()
        self.answer: Callable[[dict[str, Any]], ChatPlan] | None = None
        self.requests: list[ChatRequest] = []
        self.first_chunk_times: list[float] = []
        self._plans: deque[ChatPlan] = deque()
        self._released = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> FakeOpenAIChat:
        """Listen. Handlers are cancelled when a client disconnects (how it is seen)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Release held answers and shut down."""
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIChat:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to ``openai.AsyncOpenAI``: ``http://127.0.0.1:<p>/v1``."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def accepted(self) -> list[ChatRequest]:
        """The requests it answered (not refused)."""
        return [r for r in self.requests if r.rejected is None]

    def push(self, *plans: ChatPlan) -> None:
        """Answer the next requests with ``plans``, in order."""
        self._plans.extend(plans)

    def release(self) -> None:
        """Let held answers (``hold_after_chunks``) go on."""
        self._released.set()

    async def wait_disconnect(self, within_s: float = 10.0) -> ChatRequest:
        """Wait until a client went away mid-answer; the first such request."""
        async with asyncio.timeout(within_s):
            await self._disconnected.wait()
        return next(r for r in self.requests if r.disconnected)

    def _plan_for(self, body: dict[str, Any]) -> ChatPlan:
        if self._plans:
            return self._plans.popleft()
        if self.answer is not None:
            return self.answer(body)
        return self.default_plan

    def _reject(self, record: ChatRequest, status: int, body: dict[str, Any]) -> web.Response:
        record.rejected = f"{status}: {body['error']['message']}"
        return web.json_response(body, status=status)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        record = ChatRequest(headers={k.lower(): v for k, v in request.headers.items()})
        self.requests.append(record)
        if request.path != "/v1/chat/completions" or request.method != "POST":
            message = f"Invalid URL ({request.method} {request.path})"
            return self._reject(record, 404, openai_error(message, "invalid_request_error", None))
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (
            self.api_key is not None and auth != f"Bearer {self.api_key}"
        ):
            return self._reject(record, 401, ERROR_BODIES[401])
        if request.content_type != "application/json":
            message = "Content-Type must be application/json"
            return self._reject(record, 400, openai_error(message, "invalid_request_error", None))
        try:
            record.body = json.loads(raw)
        except ValueError:
            message = "We could not parse the JSON body of your request."
            return self._reject(record, 400, openai_error(message, "invalid_request_error", None))
        problem = validate_chat_body(record.body)
        if problem is not None:
            param, message = problem
            error = openai_error(message, "invalid_request_error", "invalid_value", param)
            return self._reject(record, 400, error)
        if record.body["model"] not in self.models:
            message = f"The model `{record.body['model']}` does not exist or you do not have access to it."  # noqa: E501
            return self._reject(
                record, 404, openai_error(message, "invalid_request_error", "model_not_found")
            )
        plan = self._plan_for(record.body)
        try:
            if plan.stall:
                await asyncio.Event().wait()  # until the client gives up (cancelled then)
            if plan.status != 200:
                body = plan.error_body or ERROR_BODIES.get(
                    plan.status, openai_error("error", "server_error", None)
                )
                record.rejected = f"scripted {plan.status}"
                return web.json_response(body, status=plan.status)
            return await self._stream(request, record, plan)
        except (ConnectionResetError, asyncio.CancelledError):
            record.disconnected = True
            self._disconnected.set()
            raise

    async def _stream(
        self, request: web.Request, record: ChatRequest, plan: ChatPlan
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream; charset=utf-8"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        model = record.body["model"]
        for index, delta, finish in chunk_deltas(plan):
            if plan.hold_after_chunks is not None and index == plan.hold_after_chunks:
                await self._released.wait()
            if plan.error_after_chunks is not None and index == plan.error_after_chunks:
                error = openai_error(
                    "The server had an error while processing.", "server_error", None
                )
                await response.write(sse(error))
                await response.write_eof()
                return response
            if plan.drop_after_chunks is not None and index == plan.drop_after_chunks:
                assert request.transport is not None
                request.transport.close()  # abrupt: no terminating chunk, no [DONE]
                return response
            if index and plan.delay_s:
                await asyncio.sleep(plan.delay_s)
            if not index:
                self.first_chunk_times.append(time.monotonic())
            await response.write(sse(chunk_object(model, len(self.requests), delta, finish)))
            record.chunks_sent += 1
        if (record.body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            chunk = chunk_object(model, len(self.requests), None, None)
            await response.write(sse({**chunk, "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        record.completed = True
        return response


def sse(obj: dict[str, Any]) -> bytes:
    """One server-sent event ``data: <json>`` followed by a blank line."""
    return f"data: {json.dumps(obj)}\n\n".encode()


def chunk_object(
    model: str, number: int, delta: dict[str, Any] | None, finish: str | None
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice carrying ``delta`` and ``finish``."""
    return {
        "id": f"chatcmpl-fake{number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }


def chunk_deltas(plan: ChatPlan) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    """``(chunk index, delta, finish_reason)`` of every chunk of ``plan``'s answer."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": piece} for piece in plan.text]
    per_call: list[list[dict[str, Any]]] = []
    for i, call in enumerate(plan.tool_calls):
        head = {
            "index": i,
            "id": call.id or f"call_{i}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        pieces = split_text(call.arguments, call.pieces)
        parts = [{"index": i, "function": {"arguments": piece}} for piece in pieces]
        per_call.append([head, *parts])
    if plan.interleave:
        ordered = [d for group in itertools.zip_longest(*per_call) for d in group if d]
    else:
        ordered = [d for group in per_call for d in group]
    deltas += [{"tool_calls": [d]} for d in ordered]
    finish = plan.finish_reason or ("tool_calls" if plan.tool_calls else "stop")
    for index, delta in enumerate(deltas):
        yield index, delta, None
    yield len(deltas), {}, finish


__all__ = [
    "ERROR_BODIES",
    "ChatPlan",
    "ChatRequest",
    "FakeOpenAIChat",
    "ToolCallPlan",
    "chunk_deltas",
    "validate_chat_body",
]
