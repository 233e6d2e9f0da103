"""The ``[responder.openai]`` table and the plugin's registration: defaults, both forms of
``transfer_targets``, what is refused, ``is_configured``, and that importing the plugin
loads neither the ``openai`` SDK nor aiohttp (``preload`` does)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from typing import Any

import pytest

from voicehost import ConfigError
from voicehost.config_model import parse_table
from voicehost_openai_responder import (
    OpenAIResponder,
    OpenAIResponderConfig,
    OpenAIResponderProvider,
    register_responders,
)


def parse(toml: str) -> OpenAIResponderConfig:
    return parse_table(OpenAIResponderConfig, tomllib.loads(toml), table="responder.openai")


def test_defaults() -> None:
    config = OpenAIResponderConfig()
    assert (config.model, config.tools, config.base_url) == (
        "gpt-4o-mini", ["hangup"], "https://api.openai.com/v1",
    )  # fmt: skip
    assert config.greeting == "" and config.apology and config.instructions


def test_transfer_targets_as_a_table_or_a_list() -> None:
    table = parse(
        'tools = ["transfer"]\n'
        'transfer_targets = { sales = "+15550003333", desk = "sip:desk@example.com" }'
    )
    listed = parse(
        'tools = ["transfer"]\n'
        '[[transfer_targets]]\nname = "sales"\nnumber = "+15550003333"\n'
        '[[transfer_targets]]\nname = "desk"\nnumber = "sip:desk@example.com"\n'
    )
    assert table.transfer_targets == listed.transfer_targets
    assert [(t.name, t.number) for t in table.transfer_targets] == [
        ("sales", "+15550003333"), ("desk", "sip:desk@example.com"),
    ]  # fmt: skip


def test_webhook_tools_table() -> None:
    config = parse(
        '[[webhook_tools]]\nname = "book"\nurl = "https://example.com/book/"\n'
        'parameters = { type = "object", properties = { day = { type = "string" } } }\n'
        'headers = { Authorization = "Bearer x" }\n'
    )
    [tool] = config.webhook_tools
    assert (tool.name, tool.url, tool.timeout_s) == ("book", "https://example.com/book", 5.0)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('model = " "', "model: must not be blank"),
        ('base_url = "ftp://x"', "base_url: must be an http(s):// URL"),
        ('tools = ["hang up"]', "a tool name is 1 to 64"),
        ('tools = ["hangup", "hangup"]', "lists 'hangup' twice"),
        ('tools = ["transfer"]', "transfer_targets is empty"),
        ('transfer_targets = { sales = "5550003333" }', "transfer_targets #1.number"),
        (
            'transfer_targets = [{ name = "a", number = "+15550003333" }, '
            '{ name = "A", number = "+15550004444" }]',
            "same name",
        ),
        ('[[webhook_tools]]\nname = "hangup"\nurl = "http://x.example"', "built-in tool's name"),
        (
            '[[webhook_tools]]\nname = "b"\nurl = "http://x.example"\n'
            '[[webhook_tools]]\nname = "b"\nurl = "http://y.example"',
            "declared twice",
        ),
        (
            '[[webhook_tools]]\nname = "b"\nurl = "http://x.example"\n'
            'parameters = { type = "string" }',
            'JSON schema of type "object"',
        ),
        ("temperature = 2.5", "temperature"),
        ("max_tool_rounds = 0", "max_tool_rounds"),
        ("temprature = 0.5", "did you mean 'temperature'"),
    ],
)
def test_refused(toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(toml)
    assert needle in str(caught.value)
    assert "[responder.openai]" in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "configured"),
    [
        ({}, False),  # OpenAI itself needs a key
        ({"api_key": "sk-x"}, True),
        ({"base_url": "http://127.0.0.1:11434/v1"}, True),  # a local server may need none
    ],
)
def test_is_configured(keys: dict[str, Any], configured: bool) -> None:
    assert OpenAIResponderProvider().is_configured(OpenAIResponderConfig(**keys)) is configured


def test_registers_the_openai_responder() -> None:
    got: list[Any] = []
    register_responders(got.append)
    [provider] = got
    assert provider.id == "openai" and provider.config_class is OpenAIResponderConfig
    assert isinstance(provider.create(OpenAIResponderConfig(api_key="k")), OpenAIResponder)


def test_importing_the_plugin_loads_no_sdk_and_preload_does() -> None:
    code = (
        "import sys, voicehost_openai_responder as p\n"
        "print('openai' in sys.modules, 'aiohttp' in sys.modules)\n"
        "p.OpenAIResponderProvider().preload(p.OpenAIResponderConfig())\n"
        "print('openai' in sys.modules, 'aiohttp' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[:2] == ["False False", "True True"]
