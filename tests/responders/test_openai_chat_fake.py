"""The fake Chat Completions server itself: it refuses what OpenAI refuses (auth, model,
body, messages, tools, ``stream``) and streams chunks in the documented shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fakes.openai_chat import ChatPlan, FakeOpenAIChat, ToolCallPlan

GOOD: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "stream": True,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
}
TOOL = {"type": "function", "function": {"name": "hangup", "parameters": {"type": "object"}}}
CALL = {"id": "c1", "type": "function", "function": {"name": "hangup", "arguments": "{}"}}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    session: aiohttp.ClientSession, fake: FakeOpenAIChat, body: Any, key: str = "sk-test"
) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"}
    async with session.post(f"{fake.base_url}/chat/completions", json=body, headers=headers) as r:
        return r.status, await r.text()


def events(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body (JSON decoded, ``[DONE]`` as is)."""
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def test_streams_the_documented_chunks(
    chat_fake: FakeOpenAIChat, session: aiohttp.ClientSession
) -> None:
    chat_fake.push(
        ChatPlan(
            text=("Hi ", "there."),
            tool_calls=(ToolCallPlan("a", '{"x": 1}', id="c_a", pieces=2), ToolCallPlan("b")),
            interleave=True,
        )
    )
    status, text = await post(session, chat_fake, GOOD)
    assert status == 200
    chunks = events(text)
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert [d["content"] for d in deltas[1:3]] == ["Hi ", "there."]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [c["index"] for c in calls] == [0, 1, 0, 1, 0, 1, 1]  # interleaved by index
    assert calls[0] == {
        "index": 0, "id": "c_a", "type": "function", "function": {"name": "a", "arguments": ""},
    }  # fmt: skip
    assert "".join(c["function"]["arguments"] for c in calls if c["index"] == 0) == '{"x": 1}'
    assert chunks[-2]["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({**GOOD, "stream": False}, 400, "stream"),
        ({**GOOD, "model": "gpt-9"}, 404, "does not exist"),
        ({**GOOD, "temperature": 3}, 400, "temperature"),
        ({**GOOD, "max_tokens": 0}, 400, "max_tokens"),
        ({**GOOD, "frobnicate": 1}, 400, "Unrecognized request argument"),
        ({**GOOD, "messages": []}, 400, "messages"),
        ({**GOOD, "messages": [{"role": "robot", "content": "x"}]}, 400, "Invalid role"),
        ({**GOOD, "messages": [{"role": "user", "content": ""}]}, 400, "non-empty"),
        ({**GOOD, "tool_choice": "auto"}, 400, "only allowed when 'tools'"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "a b"}}]}, 400, "name"),
        ({**GOOD, "tools": [TOOL, TOOL]}, 400, "unique"),
        (
            {
                **GOOD,
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "x", "parameters": {"type": "string"}},
                    }
                ],
            },
            400,
            "object schema",
        ),
        (
            {**GOOD, "messages": [{"role": "tool", "tool_call_id": "c1", "content": "{}"}]},
            400,
            "must be a response to a preceding message with 'tool_calls'",
        ),
        (
            {
                **GOOD,
                "messages": [
                    {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "user", "content": "hi"},
                ],
            },
            400,
            "must be followed by tool messages",
        ),
        (
            {**GOOD, "messages": [{"role": "assistant", "content": None, "tool_calls": [CALL]}]},
            400,
            "without a tool message",
        ),
        (
            {**GOOD, "messages": [{"role": "assistant", "content": None}]},
            400,
            "content is required",
        ),
    ],
)
async def test_refuses_what_openai_refuses(
    chat_fake: FakeOpenAIChat,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    status: int,
    needle: str,
) -> None:
    got, text = await post(session, chat_fake, body)
    assert got == status
    error = json.loads(text)["error"]
    assert needle in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert chat_fake.requests[0].rejected


async def test_accepts_a_tool_exchange(
    chat_fake: FakeOpenAIChat, session: aiohttp.ClientSession
) -> None:
    messages = [
        *GOOD["messages"],
        {"role": "assistant", "content": "One moment.", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"ok": true}'},
    ]
    body = {**GOOD, "messages": messages, "tools": [TOOL], "tool_choice": "none"}
    status, _ = await post(session, chat_fake, body)
    assert status == 200 and chat_fake.requests[0].completed


async def test_checks_the_bearer_key(
    chat_fake: FakeOpenAIChat, session: aiohttp.ClientSession
) -> None:
    status, text = await post(session, chat_fake, GOOD, key="sk-other")
    assert status == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"
    async with session.post(f"{chat_fake.base_url}/chat/completions", json=GOOD) as response:
        assert response.status == 401


@pytest.mark.parametrize("status", [401, 429, 500])
async def test_scripted_failures_use_openais_error_shape(
    chat_fake: FakeOpenAIChat, session: aiohttp.ClientSession, status: int
) -> None:
    chat_fake.push(ChatPlan(status=status))
    got, text = await post(session, chat_fake, GOOD)
    assert got == status and "message" in json.loads(text)["error"]


async def test_a_dropped_stream_ends_without_done(
    chat_fake: FakeOpenAIChat, session: aiohttp.ClientSession
) -> None:
    chat_fake.push(ChatPlan(text=("a", "b", "c"), drop_after_chunks=2))
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(session, chat_fake, GOOD)
    assert chat_fake.requests[0].chunks_sent == 2 and not chat_fake.requests[0].completed
