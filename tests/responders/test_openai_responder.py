"""The ``openai`` responder against the fake Chat Completions server: streamed text, the
request it sends (auth, model, system prompt, history as messages), and every error case
(401 once logged and counted, 429/500/timeouts retried once, a stream broken mid-reply)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

import pytest
from fakes.openai_chat import ChatPlan, FakeOpenAIChat
from responder_helpers import TODAY, items_of, text_of

from voicehost import CallContext, ConversationTurn, ToolUse
from voicehost_openai_responder import OpenAIResponder
from voicehost_openai_responder.prompt import history_messages, system_prompt

Make = Callable[..., OpenAIResponder]
APOLOGY = "Sorry, I am having trouble right now. Please try again in a moment."


# --- streaming -----------------------------------------------------------------------------


async def test_text_deltas_arrive_before_the_completion_ends(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    """The first delta is yielded while the fake holds the rest of the stream."""
    chat_fake.push(ChatPlan(text=("We open ", "at nine. ", "See you!"), hold_after_chunks=2))
    stream = make_responder().reply(call, "when do you open")
    assert await asyncio.wait_for(anext(stream), 10) == "We open "
    assert not chat_fake.requests[0].completed
    chat_fake.release()
    assert await items_of(stream) == ["at nine. ", "See you!"]
    assert chat_fake.requests[0].completed


async def test_the_request_is_what_the_api_reference_documents(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    items = await items_of(make_responder(temperature=0.3, max_tokens=120).reply(call, "hi"))
    assert text_of(items) == "Hello! How can I help you today?"
    [request] = chat_fake.requests
    assert request.rejected is None
    assert request.headers["authorization"] == "Bearer sk-test"
    body = request.body
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 120
    assert [tool["function"]["name"] for tool in body["tools"]] == ["hangup"]
    assert "tool_choice" not in body
    system, *rest = body["messages"]
    assert system["role"] == "system"
    assert system["content"].startswith(
        "Today is Monday, May 4, 2026. This is an inbound phone call from +15550100 to +15550199."
    )
    assert rest == [
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "I have a question."},
        {"role": "user", "content": "hi"},
    ]


async def test_no_max_tokens_and_no_tools_when_configured_off(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    await items_of(make_responder(max_tokens=0, tools=[]).reply(call, "hi"))
    body = chat_fake.requests[0].body
    assert "max_tokens" not in body and "tools" not in body


async def test_a_key_press_is_a_user_turn(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    await items_of(make_responder().dtmf(call, "5"))
    assert chat_fake.requests[0].body["messages"][-1] == {"role": "user", "content": "[pressed 5]"}
    assert await items_of(make_responder(answer_dtmf=False).dtmf(call, "6")) == []
    assert len(chat_fake.requests) == 1


async def test_greeting_is_the_fixed_line_without_a_request(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    assert await items_of(make_responder(greeting="Dental office, hi!").greeting(call)) == [
        "Dental office, hi!"
    ]
    assert await items_of(make_responder().greeting(call)) == []
    assert await items_of(make_responder().reply(call, "   ")) == []
    assert chat_fake.requests == []


async def test_an_empty_key_for_a_local_server(call: CallContext) -> None:
    """``api_key = ""`` sends a placeholder bearer key (the SDK needs one); a local server
    that checks none answers."""
    async with FakeOpenAIChat(api_key=None, models=["llama3.1"]) as local:
        from voicehost_openai_responder import OpenAIResponderConfig

        config = OpenAIResponderConfig(api_key="", base_url=local.base_url, model="llama3.1")
        responder = OpenAIResponder(config)
        try:
            assert text_of(await items_of(responder.reply(call, "hi")))
        finally:
            await responder.aclose()
        assert local.requests[0].headers["authorization"] == "Bearer none"


# --- the prompt and the history ------------------------------------------------------------


def test_system_prompt_has_the_date_the_call_and_the_instructions() -> None:
    outbound = CallContext(
        call_sid="CA1", from_number="+15550001", to_number="+15550002",
        direction="outbound-api", answered_by="human",
    )  # fmt: skip
    prompt = system_prompt("Be brief.", outbound, today=TODAY, tools=["hangup", "send_dtmf"])
    first, guidance, instructions = prompt.split("\n\n")
    assert first == (
        "Today is Monday, May 4, 2026. This is an outbound phone call that you placed from "
        "+15550001 to +15550002. It was answered by: human."
    )
    assert "send_dtmf" in guidance
    assert instructions == "Be brief."
    unknown = system_prompt("Be brief.", CallContext(call_sid="CA2"), today=TODAY)
    assert unknown == "Today is Monday, May 4, 2026. This is a phone call.\n\nBe brief."


def test_history_becomes_messages() -> None:
    hung_up = ToolUse("hangup", '{"reason": "x"}', '{"ok": true}', call_id="")
    history = [
        ConversationTurn("bot", "Press 1 for sales."),
        ConversationTurn("caller", "1", kind="dtmf"),
        ConversationTurn("caller", "sales please"),
        ConversationTurn("bot", ""),  # cut off before anything was heard
        ConversationTurn("bot", "12#", kind="dtmf"),  # pressed by the tool below
        ConversationTurn.for_tool(
            ToolUse("send_dtmf", '{"digits":"12#"}', '{"sent": "12#"}', "c1")
        ),
        ConversationTurn("bot", "9", kind="dtmf"),  # pressed without a tool
        ConversationTurn("bot", "Bye."),
        ConversationTurn.for_tool(hung_up),
    ]
    assert history_messages(history, 0) == [
        {"role": "assistant", "content": "Press 1 for sales."},
        {"role": "user", "content": "[pressed 1]"},
        {"role": "user", "content": "sales please"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "send_dtmf", "arguments": '{"digits":"12#"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"sent": "12#"}'},
        {"role": "assistant", "content": "[pressed 9]"},
        {"role": "assistant", "content": "Bye."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_h8",
                    "type": "function",
                    "function": {"name": "hangup", "arguments": '{"reason": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_h8", "content": '{"ok": true}'},
    ]
    assert history_messages(history, 2) == history_messages(history, 0)[-3:]


async def test_history_with_tool_turns_is_accepted_by_the_server(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    """The fake checks that each assistant tool call is answered by its tool message."""
    call.history += [
        ConversationTurn("bot", "Let me check."),
        ConversationTurn.for_tool(ToolUse("get_hours", "{}", '{"open": "9"}', "call_7")),
        ConversationTurn("bot", "We open at nine."),
        ConversationTurn("caller", "2", kind="dtmf"),
    ]
    items = await items_of(make_responder(history_limit=4).reply(call, "thanks"))
    assert text_of(items)
    [request] = chat_fake.requests
    assert request.rejected is None
    assert [m["role"] for m in request.body["messages"]] == [
        "system", "assistant", "assistant", "tool", "assistant", "user", "user",
    ]  # fmt: skip


# --- errors --------------------------------------------------------------------------------


async def test_401_is_logged_once_counted_and_apologised_for(
    chat_fake: FakeOpenAIChat,
    make_responder: Make,
    call: CallContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    responder = make_responder(api_key="sk-wrong")
    with caplog.at_level(logging.WARNING, logger="voicehost_openai_responder"):
        assert await items_of(responder.reply(call, "hi")) == [APOLOGY]
        assert await items_of(responder.reply(call, "hello?")) == [APOLOGY]
    assert responder.auth_failures == 2
    assert len(chat_fake.requests) == 2  # never retried
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "[responder.openai] api_key" in message and chat_fake.base_url in message
    assert "401" in message


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_retryable_status_is_retried_once_then_the_apology(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext, status: int
) -> None:
    chat_fake.push(ChatPlan(status=status), ChatPlan(status=status))
    assert await items_of(make_responder().reply(call, "hi")) == [APOLOGY]
    assert len(chat_fake.requests) == 2


async def test_a_retry_that_succeeds_is_heard(
    chat_fake: FakeOpenAIChat,
    make_responder: Make,
    call: CallContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat_fake.push(ChatPlan(status=429), ChatPlan(text=("Fine.",)))
    responder = make_responder()
    responder.retry_backoff_s = (0.2, 0.6)  # type: ignore[misc]  # the real pause
    with caplog.at_level(logging.WARNING, logger="voicehost_openai_responder"):
        assert await items_of(responder.reply(call, "hi")) == ["Fine."]
    [retry] = [r.getMessage() for r in caplog.records if "retrying once" in r.getMessage()]
    pause = float(re.search(r"in ([0-9.]+) s", retry).group(1))  # type: ignore[union-attr]
    assert 0.2 <= pause <= 0.6


async def test_a_stalled_server_times_out_is_retried_then_apologised_for(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(ChatPlan(stall=True), ChatPlan(stall=True))
    assert await items_of(make_responder(timeout_s=0.3).reply(call, "hi")) == [APOLOGY]
    assert len(chat_fake.requests) == 2
    await chat_fake.wait_disconnect()


async def test_an_unreachable_server_is_retried_then_apologised_for(
    make_responder: Make, call: CallContext, unused_tcp_port: int
) -> None:
    responder = make_responder(base_url=f"http://127.0.0.1:{unused_tcp_port}/v1")
    assert await items_of(responder.reply(call, "hi")) == [APOLOGY]


async def test_a_stream_broken_before_the_first_token_is_retried(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(ChatPlan(drop_after_chunks=1), ChatPlan(text=("Here.",)))
    assert await items_of(make_responder().reply(call, "hi")) == ["Here."]
    assert len(chat_fake.requests) == 2


async def test_a_stream_broken_mid_reply_keeps_the_text(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(ChatPlan(text=("We open at nine. ", "On Sundays ", "we"), drop_after_chunks=3))
    assert await items_of(make_responder().reply(call, "hi")) == [
        "We open at nine. ",
        "On Sundays ",
    ]
    assert len(chat_fake.requests) == 1  # no retry after text, no apology


async def test_an_error_event_in_the_stream(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    """An ``error`` event before any text: the apology, no retry; after text: the text."""
    chat_fake.push(
        ChatPlan(error_after_chunks=1), ChatPlan(text=("Yes. ", "And"), error_after_chunks=2)
    )
    responder = make_responder()
    assert await items_of(responder.reply(call, "hi")) == [APOLOGY]
    assert await items_of(responder.reply(call, "hi")) == ["Yes. "]
    assert len(chat_fake.requests) == 2


async def test_other_statuses_are_not_retried(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    responder = make_responder(model="gpt-nope")  # the fake answers 404 model_not_found
    assert await items_of(responder.reply(call, "hi")) == [APOLOGY]
    assert len(chat_fake.requests) == 1
    assert responder.auth_failures == 0


async def test_an_empty_apology_is_silence(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    chat_fake.push(ChatPlan(status=400))
    assert await items_of(make_responder(apology="").reply(call, "hi")) == []


async def test_closing_the_reply_closes_the_http_stream(
    chat_fake: FakeOpenAIChat, make_responder: Make, call: CallContext
) -> None:
    """Barge-in closes the reply generator: the fake sees the client go away."""
    chat_fake.push(ChatPlan(text=("One. ", "Two. ", "Three."), hold_after_chunks=2))
    stream = make_responder().reply(call, "count")
    assert await asyncio.wait_for(anext(stream), 10) == "One. "
    await stream.aclose()  # type: ignore[attr-defined]
    request = await chat_fake.wait_disconnect()
    assert request.disconnected and not request.completed
