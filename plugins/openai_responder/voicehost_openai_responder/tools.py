"""The tools one responder offers the model, and running a tool call.

Three sources, one namespace (a function name the model calls):

* **built-in** tools wired to the call actions (``[responder.openai] tools``):
  ``hangup(reason)`` → :data:`voicehost.HANG_UP` after the reply; ``send_dtmf(digits)`` →
  :class:`voicehost.SendDtmf`; ``transfer(to)`` → :class:`voicehost.Transfer`, only to a
  ``transfer_targets`` entry (by name or number);
* **registered** tools other plugins add through the ``register_tools`` hook
  (:class:`voicehost.Tool`), offered when ``tools`` names them; run as
  ``await tool.handler(call, arguments)`` within ``tool_timeout_s``;
* **webhook** tools (``[[responder.openai.webhook_tools]]``), always offered; run by POSTing
  to their URL (:mod:`.webhook_tools`).

A tool call never raises into the call: unknown tool, arguments that are not a JSON object,
a :class:`voicehost.ToolError`, any other exception, a timeout, a result that is not JSON-able
— each becomes an error result ``{"error": "<why>"}`` the model reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from voicehost import (
    HANG_UP,
    Action,
    CallContext,
    ConfigError,
    SendDtmf,
    Tool,
    ToolError,
    ToolUse,
    Transfer,
)
from voicehost_openai_responder.config import (
    BUILTIN_TOOLS,
    OpenAIResponderConfig,
    TransferTarget,
    WebhookToolConfig,
)
from voicehost_openai_responder.exchange import ToolCall

__all__ = ["ToolBox", "ToolOutcome", "WebhookPost", "builtin_schema", "parse_arguments"]

logger = logging.getLogger(__name__)

#: POSTs one webhook tool call: ``(tool, payload) -> the JSON answer``; raises ToolError.
WebhookPost = Callable[[WebhookToolConfig, dict[str, Any]], Awaitable[Any]]


@attrs.frozen
class ToolOutcome:
    """The result of one tool call.

    Attributes:
        result: the JSON text given back to the model.
        error: ``result`` is an error report (``{"error": …}``).
        action: the call action to yield: a :class:`SendDtmf` goes before the tool's
            :class:`voicehost.ToolUse` item, a :class:`HangUp`/:class:`Transfer` after it
            (and ends the reply).
    """

    result: str
    error: bool = False
    action: Action | None = None

    def use(self, call: ToolCall) -> ToolUse:
        """The reply item recording ``call`` and this outcome."""
        return ToolUse(
            name=call.name,
            arguments=call.arguments,
            result=self.result,
            call_id=call.id,
            error=self.error,
        )


def _failed(why: str) -> ToolOutcome:
    return ToolOutcome(json.dumps({"error": why}, ensure_ascii=False), error=True)


def parse_arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments as a dict; ``""`` counts as ``{}`` (some servers send nothing
    for a tool without parameters).

    Raises:
        ValueError: not JSON, or not a JSON object.
    """
    if not text.strip():
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")
    return value


def builtin_schema(name: str, targets: list[TransferTarget]) -> dict[str, Any]:
    """The ``tools`` entry of a built-in tool."""
    if name == "hangup":
        description = (
            "End the phone call once what you say in this reply has been spoken. Use it when "
            "the conversation is over: the goal is reached, the other party said goodbye, or "
            "firmly refused twice. Say goodbye before hanging up."
        )
        properties = {
            "reason": {
                "type": "string",
                "description": "Brief reason for ending the call (e.g. 'goodbye', "
                "'goal achieved', 'refused').",
            }
        }
    elif name == "send_dtmf":
        description = (
            "Press keys on the phone keypad (DTMF tones). The ONLY way to press a button: "
            "saying a number does not press it. When a menu says 'press 1 for X', call this "
            "with digits '1' at once, without narrating it."
        )
        properties = {
            "digits": {
                "type": "string",
                "description": "Keys to press: 0-9, *, # and w (a half-second pause), "
                "e.g. '1', '411', '1234567890#'.",
            }
        }
    else:
        names = ", ".join(target.name for target in targets)
        description = (
            "Transfer the call to a person or department. Tell the caller first; the call "
            f"then leaves you. Only these targets exist: {names}."
        )
        properties = {"to": {"type": "string", "description": f"One of: {names}."}}
    parameters = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


class ToolBox:
    """The tools offered with every request of one responder, and how to run them.

    Args:
        config: the parsed ``[responder.openai]`` table.
        registered: the tools other plugins registered (``register_tools`` hook).
        post: POSTs a webhook tool call (only called for webhook tools).
    """

    def __init__(
        self,
        config: OpenAIResponderConfig,
        registered: Mapping[str, Tool],
        post: WebhookPost,
    ) -> None:
        self.config = config
        self._registered = dict(registered)
        self._post = post
        self._webhooks = {tool.name: tool for tool in config.webhook_tools}
        offered = [name for name in config.tools if name in BUILTIN_TOOLS]
        offered += [name for name in config.tools if name in self._registered]
        offered += [name for name in self._webhooks if name not in offered]
        #: The tool names offered to the model, in the order of the ``tools`` entries.
        self.offered: tuple[str, ...] = tuple(offered)
        #: Names in ``tools`` that no source has (a plugin not installed, a typo).
        self.missing: tuple[str, ...] = tuple(
            name
            for name in config.tools
            if name not in BUILTIN_TOOLS
            and name not in self._registered
            and name not in self._webhooks
        )

    def check(self) -> None:
        """Refuse a config whose ``tools`` name a tool nobody registered, or a webhook tool
        named like a registered one.

        Raises:
            ConfigError: naming ``[responder.openai]`` and the tool.
        """
        known = sorted({*BUILTIN_TOOLS, *self._registered, *self._webhooks})
        if self.missing:
            raise ConfigError(
                f"[responder.openai] tools: no tool named {self.missing[0]!r} (known: "
                f"{', '.join(known)}); is the plugin that registers it installed?"
            )
        clash = sorted(set(self._webhooks) & set(self._registered))
        if clash:
            raise ConfigError(
                f"[responder.openai] webhook_tools: {clash[0]!r} is also a tool a plugin "
                "registered; rename the webhook tool"
            )

    def schemas(self) -> list[dict[str, Any]]:
        """The request's ``tools``: one ``{"type": "function", "function": …}`` per offered
        tool."""
        schemas = []
        for name in self.offered:
            if name in BUILTIN_TOOLS:
                schemas.append(builtin_schema(name, self.config.transfer_targets))
                continue
            source: Tool | WebhookToolConfig = self._webhooks.get(name) or self._registered[name]
            function = {
                "name": name,
                "description": source.description,
                "parameters": dict(source.parameters),
            }
            schemas.append({"type": "function", "function": function})
        return schemas

    async def run(self, call: CallContext, tool_call: ToolCall) -> ToolOutcome:
        """Run one tool call; never raises (but cancellation)."""
        name = tool_call.name
        if name not in self.offered:
            return _failed(f"there is no tool named {name!r}")
        try:
            arguments = parse_arguments(tool_call.arguments)
        except ValueError as exc:
            return _failed(f"the arguments are not a JSON object: {exc}")
        try:
            if name in BUILTIN_TOOLS:
                return self._builtin(name, arguments)
            if name in self._webhooks:
                payload = _webhook_payload(call, name, arguments)
                answer = await self._post(self._webhooks[name], payload)
            else:
                answer = await self._run_registered(self._registered[name], call, arguments)
        except ToolError as exc:
            return _failed(str(exc) or type(exc).__name__)
        except Exception as exc:
            logger.warning("openai responder: tool %s failed: %r", name, exc, exc_info=True)
            return _failed(f"the tool failed ({type(exc).__name__})")
        try:
            return ToolOutcome(json.dumps(answer, ensure_ascii=False))
        except (TypeError, ValueError) as exc:
            return _failed(f"the tool's result is not JSON: {exc}")

    async def _run_registered(
        self, tool: Tool, call: CallContext, arguments: dict[str, Any]
    ) -> Any:
        timeout = self.config.tool_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await tool.handler(call, arguments)
        except TimeoutError:
            raise ToolError(f"the tool did not answer within {timeout:g} s") from None

    def _builtin(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        if name == "hangup":
            return ToolOutcome(json.dumps({"ok": True}), action=HANG_UP)
        if name == "send_dtmf":
            digits = arguments.get("digits")
            try:
                action = SendDtmf(digits)  # type: ignore[arg-type]
            except ValueError as exc:
                return _failed(str(exc))
            return ToolOutcome(json.dumps({"sent": digits}), action=action)
        wanted = arguments.get("to")
        target = self._target(wanted)
        if target is None:
            names = ", ".join(t.name for t in self.config.transfer_targets)
            return _failed(f"{wanted!r} is not a transfer target; use one of: {names}")
        return ToolOutcome(
            json.dumps({"transferring_to": target.name}, ensure_ascii=False),
            action=Transfer(target.number),
        )

    def _target(self, wanted: object) -> TransferTarget | None:
        if not isinstance(wanted, str):
            return None
        key = wanted.strip().casefold()
        for target in self.config.transfer_targets:
            if key in (target.name.casefold(), target.number.casefold()):
                return target
        return None


def _webhook_payload(call: CallContext, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The JSON body POSTed for a webhook tool call."""
    return {
        "tool": name,
        "arguments": arguments,
        "call": {
            "call_sid": call.call_sid,
            "from": call.from_number,
            "to": call.to_number,
            "direction": call.direction,
        },
    }
