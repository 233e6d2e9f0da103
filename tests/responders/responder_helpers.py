"""Helpers of the responder plugin tests (``tests/responders`` is on ``sys.path``)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

from voicehost import ToolUse

#: The date the responders under test believe it is.
TODAY = dt.date(2026, 5, 4)
CALL_SID = "CA" + "ab" * 16


async def items_of(stream: AsyncIterator[Any]) -> list[Any]:
    """Every item of a reply stream."""
    return [item async for item in stream]


def text_of(items: list[Any]) -> str:
    """The joined text pieces of a reply."""
    return "".join(item for item in items if isinstance(item, str))


def tool_uses(items: list[Any]) -> list[ToolUse]:
    """The :class:`ToolUse` items of a reply."""
    return [item for item in items if isinstance(item, ToolUse)]


def error_of(use: ToolUse) -> str:
    """The message of an error result (asserting it is one)."""
    assert use.error, f"not an error result: {use!r}"
    body = json.loads(use.result)
    assert set(body) == {"error"}, body
    return body["error"]
