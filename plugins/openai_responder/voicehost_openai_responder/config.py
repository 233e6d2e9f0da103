"""The ``[responder.openai]`` table: :class:`OpenAIResponderConfig`, the single source of its
keys, defaults, ranges and docs (``voicehost config schema openai`` prints them).

Every key is optional in ``plugins.toml``. ``api_key`` defaults to ``${OPENAI_API_KEY}``
and may be empty (a local server: Ollama, vLLM, llama.cpp, LM Studio). An example::

    [responder]
    provider = "openai"

    [responder.openai]
    model = "gpt-4o-mini"
    instructions = "You are the front desk of Example Dental. Be brief."
    greeting = "Example Dental, how can I help?"
    tools = ["hangup", "send_dtmf", "transfer"]
    transfer_targets = { front_desk = "+15550003333" }

    [[responder.openai.webhook_tools]]
    name = "book_appointment"
    description = "Book an appointment on a day and time."
    url = "https://example.com/tools/book"
    parameters = { type = "object", properties = { day = { type = "string" } }, required = ["day"] }

Protocol: ``POST {base_url}/chat/completions`` with ``stream: true`` (OpenAI API reference,
"Create chat completion"). This module does not import the ``openai`` SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from voicehost import (
    ConfigModel,
    Field,
    ProviderConfig,
    Transfer,
    env_field,
    field_validator,
    http_url,
    model_validator,
)

__all__ = [
    "BUILTIN_TOOLS",
    "OPENAI_BASE_URL",
    "PROVIDER_ID",
    "TOOL_NAME",
    "OpenAIResponderConfig",
    "TransferTarget",
    "WebhookToolConfig",
]

#: The responder id: ``[responder] provider = "openai"``, table ``[responder.openai]``.
PROVIDER_ID = "openai"
#: OpenAI's own API origin (the default ``base_url``).
OPENAI_BASE_URL = "https://api.openai.com/v1"
#: The tools this plugin wires to the call actions.
BUILTIN_TOOLS = ("hangup", "send_dtmf", "transfer")
#: A function name the Chat Completions API accepts.
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant on a phone call. Everything you write is spoken "
    "aloud: answer in one to three short sentences, in plain words, with no lists, "
    "markdown, emoji or URLs. Ask one question at a time. When the caller is done, say "
    "goodbye and hang up."
)


def _tool_name(value: str) -> str:
    if TOOL_NAME.fullmatch(value) is None:
        raise ValueError(f"a tool name is 1 to 64 of A-Z, a-z, 0-9, _ and -, not {value!r}")
    return value


class TransferTarget(ConfigModel):
    """One number the ``transfer`` tool may hand the call to."""

    name: str = Field(description="What the model calls it (e.g. sales); unique.")
    number: str = Field(description="E.164 number (+15550003333) or sip:/client: target.")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("number")
    @classmethod
    def _target(cls, value: str) -> str:
        Transfer(value)  # the host's own check: E.164, sip:/sips: or client:
        return value


class WebhookToolConfig(ConfigModel):
    """One ``[[responder.openai.webhook_tools]]`` entry: a tool the host runs by POSTing
    ``{"tool", "arguments", "call": {"call_sid", "from", "to", "direction"}}`` to ``url``; the
    JSON answer is the tool's result."""

    name: str = Field(description="Function name the model calls (A-Z a-z 0-9 _ -, ≤ 64).")
    description: str = Field("", description="What the tool does, for the model.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON schema of the arguments (an object schema).",
    )
    url: str = Field(description="The http(s) endpoint the call is POSTed to.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (e.g. Authorization)."
    )
    timeout_s: float = Field(5.0, gt=0, le=300, description="Bound of the whole request, s.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _tool_name(value)

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('must be a JSON schema of type "object"')
        return value


class OpenAIResponderConfig(ProviderConfig):
    """The validated ``[responder.openai]`` table (strict types, unknown keys refused, frozen).

    Raises (from ``model_validate`` / the host's ``parse_table``):
        pydantic.ValidationError: a key of the wrong type or out of range, a blank ``model``,
            a ``base_url`` that is not ``http(s)://``, a bad tool name, a duplicate tool or
            target, ``transfer`` offered with no ``transfer_targets``, or a webhook tool named
            like a built-in one; the host turns it into a :class:`voicehost.ConfigError`
            naming the file, table, key and value.
    """

    api_key: str = env_field(
        "OPENAI_API_KEY",
        required=False,
        description="Bearer key; default: $OPENAI_API_KEY. May be empty for a local server.",
    )
    model: str = Field("gpt-4o-mini", description="Chat model id (gpt-4o-mini, llama3.1 …).")
    base_url: str = Field(
        OPENAI_BASE_URL,
        description="API origin including /v1: OpenAI, vLLM, Ollama, llama.cpp, LM Studio.",
    )
    instructions: str = Field(
        DEFAULT_INSTRUCTIONS,
        description="System prompt; the date and the call's direction, from and to are added.",
    )
    greeting: str = Field("", description="Fixed line spoken when the call starts; empty: none.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(
        300, ge=0, description="Bound of one completion's tokens; 0: not sent (model default)."
    )
    history_limit: int = Field(
        30, ge=0, description="Turns of the call's history sent with each request; 0: all."
    )
    timeout_s: float = Field(
        10.0, gt=0, le=600, description="Seconds for connecting and for each read of a stream."
    )
    tools: list[str] = Field(
        default_factory=lambda: ["hangup"],
        description="Tools offered: hangup, send_dtmf, transfer, and tools other plugins register.",
    )
    transfer_targets: list[TransferTarget] = Field(
        default_factory=list,
        description="Where `transfer` may go: a table name → number, or a list of {name, number}.",
    )
    webhook_tools: list[WebhookToolConfig] = Field(
        default_factory=list, description="Tools run by POSTing to a URL (always offered)."
    )
    tool_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Bound of one registered (Python) tool's run, s."
    )
    max_tool_rounds: int = Field(
        5, ge=1, le=20, description="Completions one reply may make for tool results."
    )
    answer_dtmf: bool = Field(
        True,
        description="Answer each key press with a completion; false: key presses only join "
        "the history (read with the next spoken turn).",
    )
    apology: str = Field(
        "Sorry, I am having trouble right now. Please try again in a moment.",
        description="Spoken when the model fails before saying anything; empty: silence.",
    )

    @field_validator("model")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must not be blank, not {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_origin(cls, value: str) -> str:
        return http_url(value)

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, value: list[str]) -> list[str]:
        for name in value:
            _tool_name(name)
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"lists {duplicates[0]!r} twice")
        return value

    @field_validator("transfer_targets", mode="before")
    @classmethod
    def _targets_from_table(cls, value: Any) -> Any:
        """``{name = "number"}`` → ``[{name, number}]``; a list passes as it is."""
        if isinstance(value, Mapping):
            return [{"name": name, "number": number} for name, number in value.items()]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OpenAIResponderConfig:
        names = [target.name.casefold() for target in self.transfer_targets]
        if len(set(names)) != len(names):
            raise ValueError("transfer_targets: two targets have the same name")
        if "transfer" in self.tools and not self.transfer_targets:
            raise ValueError(
                'tools offers "transfer" but transfer_targets is empty (list where it may go)'
            )
        hooks = [tool.name for tool in self.webhook_tools]
        for name in hooks:
            if name in BUILTIN_TOOLS:
                raise ValueError(f"webhook_tools: {name!r} is a built-in tool's name")
            if hooks.count(name) > 1:
                raise ValueError(f"webhook_tools: {name!r} is declared twice")
        return self

    @property
    def offers_openai(self) -> bool:
        """True when ``base_url`` is OpenAI's own API (which needs a key)."""
        return self.base_url.rstrip("/") == OPENAI_BASE_URL
