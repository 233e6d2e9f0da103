"""What the fake OpenAI Realtime conversation server checks in client events (GA Realtime API
reference; wire-protocols.md §3.2-3.3), and the session it starts from.

Each check returns ``None`` or ``(code, message)``: the ``error`` the fake answers with (and
records as a violation). Nothing here imports voicehost.
"""

from __future__ import annotations

import copy
import re
from typing import Any

DEFAULT_SESSION: dict[str, Any] = {
    "type": "realtime",
    "object": "realtime.session",
    "id": "sess_fake",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "instructions": "Your knowledge cutoff is 2023-10. You are a helpful assistant.",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": None,
            "noise_reduction": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 200,
                "create_response": True,
                "interrupt_response": True,
            },
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
    },
    "tools": [],
    "tool_choice": "auto",
    "max_output_tokens": "inf",
}

FORMATS = frozenset({"audio/pcm", "audio/pcmu", "audio/pcma"})
VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
#: Beta (flat) session fields the GA API refuses, and fields it never had.
UNKNOWN_SESSION_FIELDS = frozenset(
    {
        "modalities",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "turn_detection",
        "max_response_output_tokens",
        "temperature",
    }
)
SESSION_FIELDS = frozenset(
    {
        "type",
        "model",
        "output_modalities",
        "instructions",
        "audio",
        "tools",
        "tool_choice",
        "include",
        "max_output_tokens",
        "parallel_tool_calls",
        "prompt",
        "reasoning",
        "tracing",
        "truncation",
    }
)
TURN_KEYS = {
    "semantic_vad": {"type", "eagerness", "create_response", "interrupt_response"},
    "server_vad": {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "idle_timeout_ms",
    },
}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTENT_TYPES = {
    "user": {"input_text", "input_audio", "input_image"},
    "system": {"input_text"},
    "assistant": {"output_text", "output_audio"},
}

Problem = tuple[str, str] | None


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base``; objects with a ``type`` (formats, turn detection) are
    one-of unions and replace, other objects merge; lists replace."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "type" not in value:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_session_update(session: Any) -> Problem:
    """The GA ``session.update`` of a conversation session (``type: "realtime"``)."""
    if not isinstance(session, dict):
        return ("invalid_value", "session must be an object")
    flat = UNKNOWN_SESSION_FIELDS & session.keys()
    if flat:
        return ("unknown_parameter", f"Unknown parameter: 'session.{sorted(flat)[0]}'.")
    other = session.keys() - SESSION_FIELDS
    if other:
        return ("unknown_parameter", f"Unknown parameter: 'session.{sorted(other)[0]}'.")
    if session.get("type") != "realtime":
        return ("invalid_value", "a conversation session takes session.type 'realtime'")
    modalities = session.get("output_modalities")
    if modalities is not None and modalities not in (["audio"], ["text"]):
        return ("invalid_value", f"output_modalities {modalities!r}: ['audio'] or ['text']")
    audio = session.get("audio") or {}
    for side in ("input", "output"):
        fmt = ((audio.get(side) or {}).get("format") or {}).get("type")
        if fmt is not None and fmt not in FORMATS:
            return ("invalid_value", f"unsupported audio.{side}.format {fmt!r}")
    voice = (audio.get("output") or {}).get("voice")
    if voice is not None and voice not in VOICES:
        return ("invalid_value", f"unknown voice {voice!r}")
    problem = _check_turn_detection((audio.get("input") or {}).get("turn_detection"))
    if problem is None:
        transcription = (audio.get("input") or {}).get("transcription")
        if transcription is not None and not (transcription or {}).get("model"):
            problem = ("missing_required_parameter", "audio.input.transcription.model")
    return problem or _check_tools(session.get("tools"), session.get("tool_choice"))


def _check_turn_detection(turn: Any) -> Problem:
    if turn is None:
        return None
    kind = turn.get("type") if isinstance(turn, dict) else None
    if kind not in TURN_KEYS:
        return ("invalid_value", f"turn_detection.type {kind!r}: server_vad or semantic_vad")
    extra = turn.keys() - TURN_KEYS[kind]
    if extra:
        return ("unknown_parameter", f"turn_detection.{sorted(extra)[0]} with {kind}")
    if kind == "semantic_vad" and turn.get("eagerness", "auto") not in (
        "low",
        "medium",
        "high",
        "auto",
    ):
        return ("invalid_value", f"eagerness {turn.get('eagerness')!r}")
    for key in ("create_response", "interrupt_response"):
        if key in turn and not isinstance(turn[key], bool):
            return ("invalid_type", f"turn_detection.{key} must be a boolean")
    return None


def _check_tools(tools: Any, tool_choice: Any) -> Problem:
    names: list[str] = []
    for tool in tools or []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            return ("invalid_value", "every tool needs type 'function' (or 'mcp')")
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            return ("invalid_value", f"tool name {name!r} must match ^[A-Za-z0-9_-]{{1,64}}$")
        params = tool.get("parameters")
        if not isinstance(params, dict) or params.get("type") != "object":
            return ("invalid_value", f"tool {name}: parameters must be an object JSON schema")
        extra = tool.keys() - {"type", "name", "description", "parameters"}
        if extra:
            return ("unknown_parameter", f"tools[].{sorted(extra)[0]}")
        names.append(name)
    if len(set(names)) != len(names):
        return ("invalid_value", "duplicate tool names")
    if tool_choice is None or tool_choice in ("auto", "none", "required"):
        return None
    if isinstance(tool_choice, dict) and tool_choice.get("name") in names:
        return None
    return ("invalid_value", f"tool_choice {tool_choice!r}")


def check_item(item: Any, call_ids: set[str]) -> Problem:
    """A ``conversation.item.create`` item: a message with content types valid for its role,
    a ``function_call``, or a ``function_call_output`` answering a known ``call_id``."""
    if not isinstance(item, dict):
        return ("invalid_value", "item must be an object")
    kind = item.get("type")
    if kind == "message":
        role = item.get("role")
        if role not in CONTENT_TYPES:
            return ("invalid_value", f"message role {role!r}")
        content = item.get("content")
        if not isinstance(content, list) or not content:
            return ("missing_required_parameter", "item.content")
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in CONTENT_TYPES[role]:
                got = part.get("type") if isinstance(part, dict) else part
                return ("invalid_value", f"{role} content type {got!r}")
            if part["type"] in ("input_text", "output_text") and not isinstance(
                part.get("text"), str
            ):
                return ("missing_required_parameter", "content[].text")
        return None
    if kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                return ("missing_required_parameter", f"function_call.{key}")
        return None
    if kind == "function_call_output":
        if not isinstance(item.get("output"), str):
            return ("invalid_type", "function_call_output.output must be a string")
        if item.get("call_id") not in call_ids:
            return ("invalid_value", f"no function call with call_id {item.get('call_id')!r}")
        return None
    return ("invalid_value", f"item type {kind!r}")
