"""Tools: functions a responder (an LLM's function calling) may call during a call.

A plugin offers a tool through the ``register_tools`` hook (:mod:`voicehost.hookspecs`); the
host hands every registered tool, by name, to the process's responder once at start-up
(:meth:`voicehost.Responder.use_tools`). The responder decides which to offer its model, runs
the calls the model makes (``await tool.handler(call, arguments)``) and yields a
:class:`ToolUse` for each, so the host records the call and keeps it in the call's history.

A tool, complete::

    from voicehost import Tool, ToolError, hookimpl

    async def get_hours(call, arguments):        # call: the CallContext of the call
        day = arguments.get("day", "today")
        if day == "sunday":
            raise ToolError("closed on Sundays")  # the model gets {"error": "..."}
        return {"day": day, "open": "09:00", "close": "17:00"}   # anything JSON-able

    @hookimpl
    def register_tools(register):
        register(Tool(
            name="get_hours",
            description="Opening hours of the shop on a given day.",
            parameters={
                "type": "object",
                "properties": {"day": {"type": "string", "description": "e.g. monday"}},
                "required": ["day"],
            },
            handler=get_hours,
        ))
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from voicehost.errors import VoicehostError

if TYPE_CHECKING:
    from voicehost.contracts.responders import CallContext

#: An async callable ``handler(call, arguments) -> result``: ``call`` is the
#: :class:`~voicehost.CallContext` of the call the model is on, ``arguments`` the parsed JSON
#: object the model sent; the result must be JSON-able (``json.dumps`` takes it).
ToolHandler: TypeAlias = Callable[["CallContext", dict[str, Any]], Awaitable[Any]]

# OpenAI's rule for function names (Chat Completions ``tools[].function.name``).
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _valid_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or _TOOL_NAME.fullmatch(value) is None:
        raise ValueError(f"a tool name must be 1 to 64 of A-Z, a-z, 0-9, _ and -, not {value!r}")


def _valid_description(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"a tool description must be a string, not {type(value).__name__}")


def _valid_parameters(
    instance: object, attribute: attrs.Attribute[Mapping[str, Any]], value: Mapping[str, Any]
) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"tool parameters must be a JSON schema (a mapping), not {type(value).__name__}"
        )
    if value.get("type", "object") != "object":
        raise ValueError(
            f'tool parameters must be an "object" JSON schema, not type {value.get("type")!r}'
        )


def _valid_handler(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not callable(value):
        raise ValueError(f"a tool handler must be an async callable, not {type(value).__name__}")


@attrs.frozen
class Tool:
    """A function the model may call.

    Attributes:
        name: what the model calls it: 1 to 64 of ``A-Z a-z 0-9 _ -`` (OpenAI's rule); unique
            among the tools of a process.
        description: what it does and when to use it, for the model.
        parameters: the JSON schema of its arguments, an ``"object"`` schema
            (``{"type": "object", "properties": {...}, "required": [...]}``; ``{}`` for none).
        handler: ``async handler(call, arguments) -> JSON-able result``
            (:data:`ToolHandler`); it raises :class:`ToolError` to give the model an error
            result; any other exception is reported to the model the same way.

    Raises:
        ValueError: at construction, for a bad name, a description that is not a string,
            parameters that are not an object schema, or a handler that is not callable.
    """

    name: str = attrs.field(validator=_valid_name)
    description: str = attrs.field(validator=_valid_description)
    parameters: Mapping[str, Any] = attrs.field(validator=_valid_parameters)
    handler: ToolHandler = attrs.field(validator=_valid_handler, repr=False)


class ToolError(VoicehostError):
    """A tool raises this to give the model an error result with this message
    (``{"error": "<message>"}``); it is never raised into the call."""


@attrs.frozen
class ToolUse:
    """A reply item: a tool call the responder made, for the host to record and keep in the
    call's history (a ``kind="tool"`` turn). It is never spoken.

    Attributes:
        name: the tool called.
        arguments: the JSON text of the arguments, as the model sent it.
        result: the JSON text given back to the model.
        call_id: the model's id of the tool call (``call_abc123``), or empty.
        error: True when ``result`` reports an error (the tool failed or refused).
    """

    name: str
    arguments: str
    result: str
    call_id: str = ""
    error: bool = False

    def to_json(self) -> dict[str, str | bool]:
        """``{"name", "arguments", "result", "error"}`` (how a history turn shows it)."""
        return {
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "error": self.error,
        }


__all__ = ["Tool", "ToolError", "ToolHandler", "ToolUse"]
