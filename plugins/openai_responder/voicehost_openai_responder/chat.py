"""The ``openai`` SDK side of the plugin: one streamed Chat Completions request.

Imported by :meth:`OpenAIResponderProvider.preload
<voicehost_openai_responder.responder.OpenAIResponderProvider.preload>` at start-up or by the
first reply, so importing the plugin, registering it and parsing its config never load
``openai``.

``client.chat.completions.create(..., stream=True)`` answers server-sent events of
``chat.completion.chunk`` objects (OpenAI API reference, "The chat completion chunk
object"). Text arrives as ``choices[0].delta.content``; a tool call arrives as
``choices[0].delta.tool_calls[k]`` pieces keyed by ``index``: the first carries ``id``,
``type`` and ``function.name``, the rest append to ``function.arguments``; several calls
may be open at once. The last chunk carries ``finish_reason`` (``"tool_calls"``, or
``"stop"`` from servers that still send calls).

Every SDK failure becomes a :class:`~voicehost_openai_responder.exchange.ChatError` whose
``kind`` tells the responder what to do: ``"auth"`` (401/403), ``"retry"`` (timeout,
unreachable, dropped, 408/409/429/5xx), ``"fatal"`` (any other status or an error event).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai

from voicehost_openai_responder.config import OpenAIResponderConfig
from voicehost_openai_responder.exchange import ChatError, ChatRound, ToolCall

__all__ = ["client_closed", "close_client", "make_client", "stream_round"]

#: Statuses worth one more try (OpenAI's own SDK retries these).
RETRY_STATUSES = frozenset({408, 409, 429})


def make_client(config: OpenAIResponderConfig) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for ``config``'s origin, key (``"none"`` when empty: local servers
    ignore it, the SDK wants one) and timeout; the SDK's own retries off (the responder
    retries once itself, before the first token only)."""
    return openai.AsyncOpenAI(
        api_key=config.api_key or "none",
        base_url=config.base_url,
        timeout=config.timeout_s,
        max_retries=0,
    )


async def close_client(client: openai.AsyncOpenAI) -> None:
    """Close ``client``'s connection pool."""
    await client.close()


def client_closed(client: openai.AsyncOpenAI) -> bool:
    """True once ``client`` was closed (the pool then makes a new one)."""
    return client.is_closed()


async def stream_round(
    client: openai.AsyncOpenAI, request: dict[str, Any], into: ChatRound
) -> AsyncIterator[str]:
    """One streamed completion of ``request`` (``model``, ``messages``, ``tools`` …: the
    keyword arguments of ``chat.completions.create``): yields its text deltas as they come
    and gathers its tool calls, finish reason and whether anything arrived into ``into``.
    Closing this generator (barge-in) closes the HTTP response at once.

    Raises:
        ChatError: the request or the stream failed (see the module docstring).
    """
    calls: list[dict[str, str]] = []
    by_index: dict[int, int] = {}  # a delta's index → its call in ``calls``
    try:
        stream = await client.chat.completions.create(**request, stream=True)
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    if delta is not None and delta.tool_calls:
                        into.started = True
                        for piece in delta.tool_calls:
                            _gather(calls, by_index, piece)
                    if delta is not None and delta.content:
                        into.started = True
                        yield delta.content
                    if choice.finish_reason:
                        into.finish_reason = choice.finish_reason
    except openai.APIStatusError as exc:
        raise _status_error(exc) from exc
    except openai.APITimeoutError as exc:
        raise ChatError("retry", f"no answer within the timeout ({exc})") from exc
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        what = "the stream broke" if into.started else "cannot reach the API"
        raise ChatError("retry", f"{what}: {cause!r}") from exc
    except openai.OpenAIError as exc:  # an error event in the stream …
        raise ChatError("fatal", str(exc)) from exc
    except ValueError as exc:  # a data line that is not JSON
        raise ChatError("fatal", f"the stream sent something that is not JSON: {exc}") from exc
    into.tool_calls = [
        ToolCall(id=call["id"] or f"call_{n}", name=call["name"], arguments=call["arguments"])
        for n, call in enumerate(calls)
        if call["name"]
    ]


def _gather(calls: list[dict[str, str]], by_index: dict[int, int], piece: Any) -> None:
    """Add one tool-call delta to its call: the open call of its ``index``, or a new one
    when the index is new or the delta brings another ``id`` (servers that number every
    call 0). A ``name`` is taken once (some servers repeat it in every delta)."""
    index = piece.index if isinstance(piece.index, int) else len(by_index)
    position = by_index.get(index)
    if position is None or (piece.id and calls[position]["id"] not in ("", piece.id)):
        position = by_index[index] = len(calls)
        calls.append({"id": "", "name": "", "arguments": ""})
    call = calls[position]
    if piece.id:
        call["id"] = piece.id
    function = piece.function
    if function is not None:
        if function.name and not call["name"]:
            call["name"] = function.name
        if function.arguments:
            call["arguments"] += function.arguments


def _status_error(exc: openai.APIStatusError) -> ChatError:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    message = str(body.get("message") or exc.message or f"HTTP {status}")
    if status in (401, 403):
        kind = "auth"
    elif status in RETRY_STATUSES or status >= 500:
        kind = "retry"
    else:
        kind = "fatal"
    return ChatError(kind, f"HTTP {status}: {message}", status=status)
