"""What the model reads: the system prompt and the call's history as Chat Completions
``messages``.

The system prompt is built as the seed's realtime session builds its instructions
(``Today is <weekday, month day, year>.``, guidance, then the configured instructions), plus
one line on the call itself (direction, from, to; who answered an outbound call), and, when
the model may press keys, the seed's short guidance on phone menus.

History mapping (:func:`history_messages`), oldest first, the last ``history_limit`` turns:

==========================================  ==============================================
turn                                        message(s)
==========================================  ==============================================
caller speech ``"what time is it"``         ``{"role": "user", "content": "what time…"}``
caller key press ``"1"`` (kind ``dtmf``)    ``{"role": "user", "content": "[pressed 1]"}``
bot speech                                  ``{"role": "assistant", "content": "…"}``
bot key press (kind ``dtmf``)               ``{"role": "assistant", "content": "[pressed 1#]"}``
                                            (skipped when its ``send_dtmf`` tool turn follows)
tool turn (kind ``tool``)                   ``{"role": "assistant", "content": None,
                                            "tool_calls": [{"id", "type": "function",
                                            "function": {"name", "arguments"}}]}`` then
                                            ``{"role": "tool", "tool_call_id", "content":
                                            result}``
==========================================  ==============================================

Empty turns (a bot reply cut off before anything was heard) are skipped. Nothing here
imports the ``openai`` SDK.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from voicehost import CallContext, ConversationTurn

__all__ = [
    "IVR_GUIDANCE",
    "call_line",
    "dtmf_text",
    "history_messages",
    "spoken_date",
    "system_prompt",
    "tool_call_message",
    "tool_result_message",
]

#: Added to the system prompt when the model may press keys (``send_dtmf`` offered); the
#: seed's phone-menu guidance, shortened.
IVR_GUIDANCE = (
    "Phone menus: the send_dtmf tool is the only way to press keys; saying a number does not "
    "press it. When a menu says 'press 1 for X', call send_dtmf with the digits at once, "
    "without narrating it. When a menu asks you to speak, just answer briefly. If you are put "
    "on hold, wait silently; when a person answers, talk normally."
)


def spoken_date(today: dt.date) -> str:
    """``"Monday, May 4, 2026"``: the date as the seed writes it (en-US, long form)."""
    return f"{today:%A}, {today:%B} {today.day}, {today.year}"


def call_line(call: CallContext) -> str:
    """One sentence on the call: its direction, from and to, and who answered it.

    ``"This is an inbound phone call from +15550100 to +15550199."``; an outbound call
    (``outbound-api``, ``outbound-dial``) says that you placed it; unknown parts are left
    out.
    """
    direction = call.direction.lower()
    if direction.startswith("outbound"):
        kind = "an outbound phone call that you placed"
    elif direction == "inbound":
        kind = "an inbound phone call"
    else:
        kind = "a phone call"
    parts = [f"This is {kind}"]
    if call.from_number:
        parts.append(f"from {call.from_number}")
    if call.to_number:
        parts.append(f"to {call.to_number}")
    line = " ".join(parts) + "."
    if call.answered_by:
        line += f" It was answered by: {call.answered_by}."
    return line


def system_prompt(
    instructions: str, call: CallContext, *, today: dt.date, tools: Collection[str] = ()
) -> str:
    """The system message: the date, the call line, phone-menu guidance when ``send_dtmf`` is
    in ``tools``, then ``instructions``; paragraphs separated by a blank line."""
    paragraphs = [f"Today is {spoken_date(today)}. {call_line(call)}"]
    if "send_dtmf" in tools:
        paragraphs.append(IVR_GUIDANCE)
    if instructions.strip():
        paragraphs.append(instructions.strip())
    return "\n\n".join(paragraphs)


def dtmf_text(digits: str) -> str:
    """A key press as the model reads it: ``"[pressed 1]"``."""
    return f"[pressed {digits}]"


def tool_call_message(call_id: str, name: str, arguments: str, content: str = "") -> dict[str, Any]:
    """An assistant message that calls one tool (``content``: text said before it, if any)."""
    return {
        "role": "assistant",
        "content": content or None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        ],
    }


def tool_result_message(call_id: str, result: str) -> dict[str, Any]:
    """The ``tool`` message answering the tool call ``call_id`` with ``result`` (JSON text)."""
    return {"role": "tool", "tool_call_id": call_id, "content": result}


def history_messages(history: Sequence[ConversationTurn], limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` turns of ``history`` (all when ``limit`` <= 0) as messages (see the
    module docstring). A tool turn without a call id gets ``call_h<position>``, so that its
    call and its result still pair up."""
    start = max(len(history) - limit, 0) if limit > 0 else 0
    messages: list[dict[str, Any]] = []
    for position in range(start, len(history)):
        turn = history[position]
        tool = turn.tool
        if tool is not None:
            call_id = tool.call_id or f"call_h{position}"
            messages.append(tool_call_message(call_id, tool.name, tool.arguments))
            messages.append(tool_result_message(call_id, tool.result))
            continue
        text = turn.text.strip()
        if not text:
            continue
        if turn.kind == "dtmf":
            if turn.role == "bot" and _pressed_by_tool(history, position):
                continue  # its send_dtmf tool turn, next, shows the keys
            text = dtmf_text(text)
        role = "user" if turn.role == "caller" else "assistant"
        messages.append({"role": role, "content": text})
    return messages


def _pressed_by_tool(history: Sequence[ConversationTurn], position: int) -> bool:
    """True when the turn after ``position`` is a ``send_dtmf`` tool turn (the host records
    the keys a tool pressed as a bot ``dtmf`` turn, then the tool turn)."""
    if position + 1 >= len(history):
        return False
    tool = history[position + 1].tool
    return tool is not None and tool.name == "send_dtmf"
