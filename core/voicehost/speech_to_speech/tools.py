"""The tools a speech-to-speech model is offered, the instructions it gets, and running the
tools the host does not turn into call actions.

``[conversation.<id>] tools`` names them: ``hangup``, ``send_dtmf`` and ``transfer`` are the
call actions (:data:`voicehost.CALL_TOOLS`; the seed's ``hangup`` and ``send_dtmf``, with its
descriptions), any other name a tool a plugin registered (``register_tools``), run as
``await tool.handler(call, arguments)`` within ``tool_timeout_s``. The same set the LLM
responder offers (``[responder.openai] tools``).

The instructions are ``config.instructions`` after today's date and, when ``send_dtmf`` is
offered, the seed's phone-menu (IVR) guidance: saying a number does not press it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from voicehost.contracts import (
    CALL_TOOLS,
    CallContext,
    ConversationConfig,
    ConversationTransferTarget,
    Tool,
    ToolError,
    ToolSpec,
)
from voicehost.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["IVR_GUIDANCE", "CallTools", "ToolResult", "compose_instructions", "parse_arguments"]

IVR_GUIDANCE = """## Phone menus (IVR)
You have a tool called send_dtmf. It is THE ONLY WAY to press buttons on a phone: saying a
number out loud does NOT press it. When you hear a menu that says "press X for Y", decide which
option matches your goal and call send_dtmf with the digits at once, without narrating it.
When the system asks you to speak ("tell me what you need", "say yes or no"), just answer out
loud; do not use send_dtmf for voice menus. Act fast: menus have short timeouts. If a menu
repeats, you missed your window: press at once. If it says "invalid option", listen and retry.
Stay in English; never press buttons to switch languages. On hold, wait silently. When a human
answers, talk normally."""

_HANGUP = ToolSpec(
    "hangup",
    "End the phone call. Use it when the goal has been achieved, the conversation has "
    "naturally concluded, the other party said goodbye, or firmly refused twice. Always say "
    "goodbye before hanging up.",
    {
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "description": "Brief reason for ending the call (e.g. 'goal achieved', "
                "'goodbye', 'refused').",
            }
        },
        "required": ["reason"],
    },
)
_SEND_DTMF = ToolSpec(
    "send_dtmf",
    "Press buttons on the phone keypad. You MUST call this to use automated phone menus: when "
    "you hear 'press 1 for X', call send_dtmf with digits='1'. Speaking the number does NOT "
    "press it. Call it as soon as you know which option to pick.",
    {
        "type": "object",
        "properties": {
            "digits": {
                "type": "string",
                "description": "Keys to press: 0-9, * and # (e.g. '1', '411', '1234#').",
            }
        },
        "required": ["digits"],
    },
)


def _transfer_spec(targets: list[ConversationTransferTarget]) -> ToolSpec:
    lines = [f"- {t.name}" + (f": {t.description}" if t.description else "") for t in targets]
    return ToolSpec(
        "transfer",
        "Transfer the call to a person. Say a short line first (e.g. 'Let me put you "
        "through'). Targets:\n" + "\n".join(lines),
        {
            "type": "object",
            "properties": {
                "to": {
                    "type": "string",
                    "enum": [t.name for t in targets],
                    "description": "Who to transfer to.",
                }
            },
            "required": ["to"],
        },
    )


def compose_instructions(
    config: ConversationConfig, tool_names: list[str], today: datetime.date | None = None
) -> str:
    """The instructions the model gets: ``Today is <weekday, month day, year>.``, the
    phone-menu guidance when ``send_dtmf`` is among ``tool_names``, then
    ``config.instructions``."""
    day = today or datetime.date.today()
    parts = [f"Today is {day.strftime('%A, %B')} {day.day}, {day.year}."]
    if "send_dtmf" in tool_names:
        parts.append(IVR_GUIDANCE)
    parts.append(config.instructions)
    return "\n\n".join(parts)


def parse_arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments as a dict (``""`` is ``{}``).

    Raises:
        ValueError: not JSON, or not a JSON object.
    """
    if not text.strip():
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")
    return value


@attrs.frozen
class ToolResult:
    """What a tool call gave back: ``output`` (JSON text) and whether it reports an error."""

    output: str
    error: bool = False


def _result(value: Any, *, error: bool = False) -> ToolResult:
    try:
        return ToolResult(json.dumps(value, ensure_ascii=False), error)
    except (TypeError, ValueError) as exc:
        text = json.dumps({"error": f"the tool's result is not JSON: {exc}"})
        return ToolResult(text, True)


class CallTools:
    """The tools of one ``[conversation.<id>]`` config.

    Args:
        config: the provider's parsed config (its ``tools``, ``transfer_targets``,
            ``tool_timeout_s``).
        registered: every tool plugins registered, by name.

    Raises:
        ConfigError: ``tools`` names a tool no plugin registered, names one twice, or offers
            ``transfer`` without ``transfer_targets``.
    """

    def __init__(self, config: ConversationConfig, registered: Mapping[str, Tool]) -> None:
        self.config = config
        problems = []
        names = list(config.tools)
        if len(set(names)) != len(names):
            problems.append("tools: a tool is named twice")
        for name in names:
            if name not in CALL_TOOLS and name not in registered:
                known = ", ".join([*CALL_TOOLS, *sorted(registered)])
                problems.append(f"tools: no tool {name!r} (known: {known})")
        if "transfer" in names and not config.transfer_targets:
            problems.append("tools: transfer needs transfer_targets")
        target_names = [t.name for t in config.transfer_targets]
        if len(set(target_names)) != len(target_names):
            problems.append("transfer_targets: a name is used twice")
        if problems:
            raise ConfigError("\n".join(problems), problems=problems)
        self.names = names
        self.registered = {name: registered[name] for name in names if name in registered}

    def specs(self) -> tuple[ToolSpec, ...]:
        """The offered tools as the model sees them, in ``tools`` order."""
        specs = []
        for name in self.names:
            if name == "hangup":
                specs.append(_HANGUP)
            elif name == "send_dtmf":
                specs.append(_SEND_DTMF)
            elif name == "transfer":
                specs.append(_transfer_spec(self.config.transfer_targets))
            else:
                tool = self.registered[name]
                specs.append(ToolSpec(tool.name, tool.description, tool.parameters))
        return tuple(specs)

    def instructions(self, today: datetime.date | None = None) -> str:
        """:func:`compose_instructions` for this config."""
        return compose_instructions(self.config, self.names, today)

    def transfer_number(self, to: str) -> str | None:
        """The number of transfer target ``to`` (its name, or its number), None if none."""
        for target in self.config.transfer_targets:
            if to in (target.name, target.number):
                return target.number
        return None

    async def run(self, name: str, arguments: str, context: CallContext) -> ToolResult:
        """Run registered tool ``name`` (never a call action). Never raises: an unknown or
        unoffered tool, bad arguments, a :class:`voicehost.ToolError`, any other exception,
        a timeout or a result that is not JSON-able is an error result
        (``{"error": "<why>"}``)."""
        tool = self.registered.get(name)
        if tool is None:
            return _result({"error": f"no tool {name!r}"}, error=True)
        try:
            args = parse_arguments(arguments)
        except ValueError as exc:
            return _result({"error": f"arguments are not a JSON object: {exc}"}, error=True)
        try:
            value = await asyncio.wait_for(tool.handler(context, args), self.config.tool_timeout_s)
        except ToolError as exc:
            return _result({"error": str(exc)}, error=True)
        except TimeoutError:
            why = f"timed out after {self.config.tool_timeout_s:g} s"
            return _result({"error": why}, error=True)
        except Exception as exc:
            log.warning("call %s: tool %s failed: %r", context.call_sid, name, exc)
            return _result({"error": f"{type(exc).__name__}: {exc}"}, error=True)
        return _result(value)
