"""The ``openai`` responder's tools against the fake Chat Completions server: tool-call
deltas joined across chunks, several calls a completion, the built-in call tools
(``hangup``, ``send_dtmf``, ``transfer`` to configured targets only), a registered Python
tool, a webhook tool on a local aiohttp service, every tool failure becoming an error result
the model reads, and the bound on tool rounds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_chat import ChatPlan, FakeOpenAIChat, ToolCallPlan
from responder_helpers import error_of, items_of, tool_uses

from voicehost import (
    HANG_UP,
    CallContext,
    ConfigError,
    SendDtmf,
    Tool,
    ToolError,
    ToolUse,
    Transfer,
)
from voicehost_openai_responder import OpenAIResponder

Make = Callable[..., OpenAIResponder]
TARGETS = {"sales": "+15550003333", "support": "sip:support@example.com"}


def tool_messages(fake: FakeOpenAIChat, request: int = 1) -> list[dict[str, Any]]:
    """The ``tool`` messages of the ``request``-th request (0-based)."""
    return [m for m in fake.requests[request].body["messages"] if m["role"] == "tool"]


def calls(*plans: ToolCallPlan, text: tuple[str, ...] = ()) -> ChatPlan:
    return ChatPlan(text=text, tool_calls=plans)


def recording_tool(name: str, seen: list[Any], result: Any = None) -> Tool:
    async def handler(call: CallContext, arguments: dict[str, Any]) -> Any:
        seen.append((call.call_sid, arguments))
        return result if result is not None else {"echo": arguments}

    return Tool(name, f"The {name} tool.", {"type": "object", "properties": {}}, handler)


# --- deltas --------------------------------------------------------------------------------


async def test_arguments_split_across_chunks_are_joined(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    seen: list[Any] = []
    responder = make_responder(tools=["hangup", "get_hours"])
    responder.use_tools({"get_hours": recording_tool("get_hours", seen, {"open": "09:00"})})
    arguments = '{"day": "monday", "note": "ünïcode"}'
    chat_fake.push(
        calls(ToolCallPlan("get_hours", arguments, id="call_9", pieces=7), text=("One moment. ",)),
        ChatPlan(text=("We open at nine.",)),
    )
    items = await items_of(responder.reply(call, "hours on monday?"))
    use = ToolUse("get_hours", arguments, '{"open": "09:00"}', call_id="call_9")
    assert items == ["One moment. ", use, "We open at nine."]
    assert seen == [(call.call_sid, {"day": "monday", "note": "ünïcode"})]
    second = chat_fake.requests[1].body["messages"]
    assert second[-2:] == [
        {
            "role": "assistant",
            "content": "One moment. ",
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_hours", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": '{"open": "09:00"}'},
    ]
    assert [t["function"]["name"] for t in chat_fake.requests[0].body["tools"]] == [
        "hangup",
        "get_hours",
    ]


@pytest.mark.parametrize("interleave", [False, True])
async def test_several_tool_calls_in_one_completion(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext, interleave: bool
) -> None:
    seen: list[Any] = []
    responder = make_responder(tools=["a", "b"])
    responder.use_tools({"a": recording_tool("a", seen), "b": recording_tool("b", seen)})
    chat_fake.push(
        ChatPlan(
            text=(),
            tool_calls=(
                ToolCallPlan("a", '{"x": 1}', id="c_a", pieces=4),
                ToolCallPlan("b", '{"y": [2, 3]}', id="c_b", pieces=5),
            ),
            interleave=interleave,
        ),
        ChatPlan(text=("Done.",)),
    )
    items = await items_of(responder.reply(call, "do both"))
    assert [(u.name, u.arguments, u.call_id) for u in tool_uses(items)] == [
        ("a", '{"x": 1}', "c_a"),
        ("b", '{"y": [2, 3]}', "c_b"),
    ]
    assert items[-1] == "Done."
    assert [arguments for _, arguments in seen] == [{"x": 1}, {"y": [2, 3]}]
    assert [m["tool_call_id"] for m in tool_messages(chat_fake)] == ["c_a", "c_b"]


async def test_tool_calls_with_finish_reason_stop_still_run(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    """Some OpenAI-compatible servers (Ollama) end a tool-calling completion with "stop"."""
    chat_fake.push(
        ChatPlan(text=("Bye!",), tool_calls=(ToolCallPlan("hangup", "{}"),), finish_reason="stop")
    )
    items = await items_of(make_responder().reply(call, "bye"))
    assert items[0] == "Bye!" and items[-1] == HANG_UP


# --- built-in tools ------------------------------------------------------------------------


async def test_hangup_ends_the_reply_after_the_text(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(
        calls(ToolCallPlan("hangup", '{"reason": "goodbye"}', id="c1"), text=("Goodbye!",))
    )
    items = await items_of(make_responder().reply(call, "thanks, bye"))
    assert items == [
        "Goodbye!",
        ToolUse("hangup", '{"reason": "goodbye"}', '{"ok": true}', call_id="c1"),
        HANG_UP,
    ]
    assert len(chat_fake.requests) == 1


async def test_send_dtmf_presses_then_the_model_goes_on(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(
        calls(ToolCallPlan("send_dtmf", '{"digits": "1w2#"}', id="c1")),
        ChatPlan(text=("I pressed it.",)),
    )
    items = await items_of(make_responder(tools=["send_dtmf"]).reply(call, "press one"))
    assert items == [
        SendDtmf("1w2#"),
        ToolUse("send_dtmf", '{"digits": "1w2#"}', '{"sent": "1w2#"}', call_id="c1"),
        "I pressed it.",
    ]
    assert tool_messages(chat_fake) == [
        {"role": "tool", "tool_call_id": "c1", "content": '{"sent": "1w2#"}'}
    ]
    assert "send_dtmf tool is the only way" in chat_fake.requests[0].body["messages"][0]["content"]


@pytest.mark.parametrize("to", ["sales", "SALES", "+15550003333"])
async def test_transfer_to_a_configured_target(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext, to: str
) -> None:
    arguments = json.dumps({"to": to})
    chat_fake.push(calls(ToolCallPlan("transfer", arguments), text=("Connecting you.",)))
    responder = make_responder(tools=["hangup", "transfer"], transfer_targets=TARGETS)
    items = await items_of(responder.reply(call, "sales please"))
    assert items[0] == "Connecting you."
    assert json.loads(items[1].result) == {"transferring_to": "sales"}
    assert items[2:] == [Transfer("+15550003333")]
    schema = chat_fake.requests[0].body["tools"][1]["function"]
    assert schema["name"] == "transfer" and "sales, support" in schema["description"]
    assert "+1555" not in json.dumps(schema)  # the model sees names, not numbers


async def test_transfer_to_a_number_not_configured_is_refused(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(
        calls(ToolCallPlan("transfer", '{"to": "+15559999999"}')),
        ChatPlan(text=("I cannot transfer you there.",)),
    )
    sales = {"name": "sales", "number": "+15550003333"}
    responder = make_responder(tools=["transfer"], transfer_targets=[sales])
    items = await items_of(responder.reply(call, "transfer me to +15559999999"))
    assert not [item for item in items if isinstance(item, Transfer)]
    [use] = tool_uses(items)
    assert "not a transfer target" in error_of(use) and "sales" in error_of(use)
    assert items[-1] == "I cannot transfer you there."
    assert json.loads(tool_messages(chat_fake)[0]["content"]) == json.loads(use.result)


async def test_a_registered_tool_not_listed_is_not_offered(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    responder = make_responder()
    responder.use_tools({"secret": recording_tool("secret", [])})
    chat_fake.push(calls(ToolCallPlan("secret", "{}")), ChatPlan(text=("ok",)))
    items = await items_of(responder.reply(call, "hi"))
    assert "no tool named 'secret'" in error_of(tool_uses(items)[0])
    assert [t["function"]["name"] for t in chat_fake.requests[0].body["tools"]] == ["hangup"]


def test_use_tools_refuses_unknown_names(make_responder: Make) -> None:
    with pytest.raises(ConfigError, match=r"tools: no tool named 'lookup'"):
        make_responder(tools=["hangup", "lookup"]).use_tools({})
    clash = make_responder(webhook_tools=[{"name": "lookup", "url": "http://127.0.0.1:9/x"}])
    with pytest.raises(ConfigError, match="webhook_tools: 'lookup'"):
        clash.use_tools({"lookup": recording_tool("lookup", [])})


# --- webhook tools -------------------------------------------------------------------------


@pytest.fixture
async def tool_service() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local tool service: ``/book`` answers JSON, ``/fail`` 500, ``/text`` a non-JSON
    body, ``/slow`` never in time. Yields its origin and the requests it got."""
    got: list[dict[str, Any]] = []

    async def book(request: web.Request) -> web.Response:
        got.append({"body": await request.json(), "auth": request.headers.get("Authorization")})
        return web.json_response({"booked": True, "slot": "10:00"})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "db down"}, status=500)

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="not json")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({})

    app = web.Application()
    for path, handler in (("/book", book), ("/fail", fail), ("/text", text), ("/slow", slow)):
        app.router.add_post(path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), got
    finally:
        await server.close()


def webhook(name: str, url: str, **keys: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}
    return {"name": name, "description": "Book a slot.", "url": url, "parameters": schema, **keys}


async def test_a_webhook_tool_posts_the_call_and_gives_back_the_answer(
    chat_fake: FakeOpenAIChat,
    make_responder: Make,
    call: CallContext,
    tool_service: tuple[str, list[dict[str, Any]]],
) -> None:
    origin, got = tool_service
    tool = webhook("book", f"{origin}/book", headers={"Authorization": "Bearer tok"})
    chat_fake.push(
        calls(ToolCallPlan("book", '{"day": "friday"}', id="c1")), ChatPlan(text=("Booked.",))
    )
    items = await items_of(make_responder(webhook_tools=[tool]).reply(call, "book friday"))
    assert items == [
        ToolUse("book", '{"day": "friday"}', '{"booked": true, "slot": "10:00"}', call_id="c1"),
        "Booked.",
    ]
    assert got == [
        {
            "body": {
                "tool": "book",
                "arguments": {"day": "friday"},
                "call": {
                    "call_sid": call.call_sid,
                    "from": "+15550100",
                    "to": "+15550199",
                    "direction": "inbound",
                },
            },
            "auth": "Bearer tok",
        }
    ]
    offered = chat_fake.requests[0].body["tools"][1]["function"]
    assert offered == {
        "name": "book",
        "description": "Book a slot.",
        "parameters": tool["parameters"],
    }


# --- failures become error results ---------------------------------------------------------


async def _raise_tool_error(call: CallContext, arguments: dict[str, Any]) -> Any:
    raise ToolError("closed on Sundays")


async def _crash(call: CallContext, arguments: dict[str, Any]) -> Any:
    raise RuntimeError("boom")


async def _hang(call: CallContext, arguments: dict[str, Any]) -> Any:
    await asyncio.sleep(30)


async def _not_json(call: CallContext, arguments: dict[str, Any]) -> Any:
    return {"when": object()}


FAILING_TOOLS = {
    "tool_error": (_raise_tool_error, "{}", "closed on Sundays"),
    "exception": (_crash, "{}", "the tool failed (RuntimeError)"),
    "timeout": (_hang, "{}", "did not answer within 0.2 s"),
    "result_not_json": (_not_json, "{}", "result is not JSON"),
    "bad_json_arguments": (_crash, '{"day": mon', "arguments are not a JSON object"),
    "arguments_not_an_object": (_crash, "[1, 2]", "arguments are not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(FAILING_TOOLS))
async def test_a_failing_python_tool_is_an_error_result(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext, case: str
) -> None:
    handler, arguments, expected = FAILING_TOOLS[case]
    responder = make_responder(tools=["t"], tool_timeout_s=0.2)
    responder.use_tools({"t": Tool("t", "A tool.", {"type": "object"}, handler)})
    chat_fake.push(calls(ToolCallPlan("t", arguments)), ChatPlan(text=("Sorry about that.",)))
    items = await items_of(responder.reply(call, "go"))
    [use] = tool_uses(items)
    assert expected in error_of(use)
    assert use.arguments == arguments
    assert items[-1] == "Sorry about that."
    assert json.loads(tool_messages(chat_fake)[0]["content"]) == {"error": error_of(use)}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/fail", "answered HTTP 500"),
        ("/text", "not JSON"),
        ("/slow", "did not answer within 0.2 s"),
        ("/missing", "answered HTTP 404"),
    ],
)
async def test_a_failing_webhook_tool_is_an_error_result(
    chat_fake: FakeOpenAIChat,
    make_responder: Make,
    call: CallContext,
    tool_service: tuple[str, list[dict[str, Any]]],
    path: str,
    expected: str,
) -> None:
    origin, _ = tool_service
    tool = webhook("book", f"{origin}{path}", timeout_s=0.2)
    chat_fake.push(calls(ToolCallPlan("book", '{"day": "x"}')), ChatPlan(text=("Hmm.",)))
    items = await items_of(make_responder(webhook_tools=[tool]).reply(call, "book"))
    assert expected in error_of(tool_uses(items)[0])
    assert items[-1] == "Hmm."


async def test_an_unreachable_webhook_tool_is_an_error_result(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext, unused_tcp_port: int
) -> None:
    tool = webhook("book", f"http://127.0.0.1:{unused_tcp_port}/book")
    chat_fake.push(calls(ToolCallPlan("book", "{}")), ChatPlan(text=("Hmm.",)))
    items = await items_of(make_responder(webhook_tools=[tool]).reply(call, "book"))
    assert "could not be reached" in error_of(tool_uses(items)[0])


async def test_an_unknown_tool_and_bad_dtmf_are_error_results(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(
        calls(ToolCallPlan("make_coffee", "{}"), ToolCallPlan("send_dtmf", '{"digits": "12x"}')),
        ChatPlan(text=("Sorry.",)),
    )
    items = await items_of(make_responder(tools=["send_dtmf"]).reply(call, "coffee"))
    coffee, dtmf = tool_uses(items)
    assert "no tool named 'make_coffee'" in error_of(coffee)
    assert "DTMF digits" in error_of(dtmf)
    assert not [item for item in items if isinstance(item, SendDtmf)]


async def test_tool_rounds_are_bounded(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    """A model that keeps calling tools gets ``max_tool_rounds`` completions, the last with
    ``tool_choice = "none"``."""
    chat_fake.answer = lambda body: calls(ToolCallPlan("send_dtmf", '{"digits": "1"}'))
    items = await items_of(make_responder(tools=["send_dtmf"], max_tool_rounds=3).reply(call, "x"))
    assert len(chat_fake.requests) == 3
    assert [r.body.get("tool_choice") for r in chat_fake.requests] == [None, None, "none"]
    assert len(tool_uses(items)) == 2
