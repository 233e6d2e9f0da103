"""The request checks of the fake Chat Completions server (:mod:`fakes.openai_chat`): what
the OpenAI API reference ("Create chat completion") documents about the body of
``POST /v1/chat/completions``, and the errors OpenAI answers for the rest.

Nothing here imports voicehost.
"""

from __future__ import annotations

import re
from typing import Any

BODY_KEYS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "n",
        "max_tokens", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls",
        "user", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
        "logprobs", "top_logprobs", "response_format", "metadata", "store", "service_tier",
        "reasoning_effort", "safety_identifier", "prompt_cache_key",
    }
)  # fmt: skip
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "audio"},
    "tool": {"role", "content", "tool_call_id"},
}
FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_chat_body(body: Any) -> tuple[str, str] | None:
    """``(param, message)`` for the first documented rule ``body`` breaks, else None."""
    if not isinstance(body, dict):
        return "body", "The body must be a JSON object."
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        return unknown[0], f"Unrecognized request argument supplied: {unknown[0]}"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model", "you must provide a model parameter"
    if body.get("stream") is not True:
        return "stream", "This fake serves streamed completions only (stream: true)."
    temperature = body.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return "temperature", "temperature must be a number."
    if not 0 <= temperature <= 2:
        return "temperature", f"{temperature} is greater than the maximum of 2 - 'temperature'"
    max_tokens = body.get("max_tokens", 1)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens", "max_tokens must be an integer ≥ 1."
    problem = _check_tools(body)
    if problem is not None:
        return problem
    return _check_messages(body.get("messages"))


def _check_tools(body: dict[str, Any]) -> tuple[str, str] | None:
    tools = body.get("tools")
    if tools is None:
        if "tool_choice" in body:
            return "tool_choice", "tool_choice is only allowed when 'tools' are specified."
        return None
    if not isinstance(tools, list) or not tools:
        return "tools", "tools must be a non-empty array."
    names: list[str] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            return f"{where}.type", "Each tool must be {'type': 'function', 'function': {...}}."
        function = tool.get("function")
        if not isinstance(function, dict) or not set(function) <= FUNCTION_KEYS:
            return f"{where}.function", "Invalid function definition."
        name = function.get("name")
        if not isinstance(name, str) or TOOL_NAME.fullmatch(name) is None:
            return f"{where}.function.name", f"Invalid 'name': {name!r}."
        if not isinstance(function.get("description", ""), str):
            return f"{where}.function.description", "description must be a string."
        parameters = function.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            return f"{where}.function.parameters", "parameters must be an object schema."
        names.append(name)
    if len(set(names)) != len(names):
        return "tools", "Tool names must be unique."
    choice = body.get("tool_choice", "auto")
    if choice not in ("none", "auto", "required") and not (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and (choice.get("function") or {}).get("name") in names
    ):
        return "tool_choice", f"Invalid tool_choice {choice!r}."
    return None


def _check_messages(messages: Any) -> tuple[str, str] | None:
    if not isinstance(messages, list) or not messages:
        return "messages", "messages must be a non-empty array."
    pending: set[str] = set()  # tool call ids waiting for their tool message
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in MESSAGE_KEYS:
            return f"{where}.role", f"Invalid role {role!r}."
        extra = sorted(set(message) - MESSAGE_KEYS[role])
        if extra:
            return f"{where}.{extra[0]}", f"Unrecognized message key {extra[0]!r}."
        if pending and role != "tool":
            return where, (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {sorted(pending)}"
            )
        content = message.get("content")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                return where, (
                    "Messages with role 'tool' must be a response to a preceding message "
                    "with 'tool_calls'."
                )
            pending.discard(call_id)
            if not isinstance(content, str):
                return f"{where}.content", "A tool message's content must be a string."
        elif role == "assistant":
            calls = message.get("tool_calls")
            if content is None and not calls:
                return f"{where}.content", "content is required unless tool_calls is given."
            if content is not None and not isinstance(content, str):
                return f"{where}.content", "content must be a string or null."
            if calls is not None:
                problem = _check_calls(calls, where)
                if problem is not None:
                    return problem
                pending = {call["id"] for call in calls}
        elif not isinstance(content, str) or not content:
            return f"{where}.content", "content must be a non-empty string."
    if pending:
        return "messages", f"Tool calls without a tool message: {sorted(pending)}"
    return None


def _check_calls(calls: Any, where: str) -> tuple[str, str] | None:
    if not isinstance(calls, list) or not calls:
        return f"{where}.tool_calls", "tool_calls must be a non-empty array."
    for call in calls:
        if not isinstance(call, dict):
            return f"{where}.tool_calls", f"Invalid tool call {call!r}."
        function = call.get("function")
        if (
            not isinstance(call.get("id"), str)
            or not call["id"]
            or call.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            return f"{where}.tool_calls", f"Invalid tool call {call!r}."
    return None


__all__ = ["BODY_KEYS", "MESSAGE_KEYS", "TOOL_NAME", "validate_chat_body"]
