"""The one typed-config mechanism (:mod:`voicehost.config_model`) every provider's table goes
through: defaults, strict types, ranges, unknown keys with a "did you mean", list positions
counted from 1, ``env_field`` keys, frozen objects and the ``config schema`` description.

Every message names the file, the table, the key and the bad value."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from pydantic import Field, field_validator

from voicehost.config import Settings, parse_settings_table
from voicehost.config_model import (
    ConfigModel,
    ProviderConfig,
    describe,
    env_field,
    parse_table,
)
from voicehost.errors import ConfigError
from voicehost.urls import http_url

PREFIX = "plugins.toml: [tts.demo] "


class Item(ConfigModel):
    name: str = Field(min_length=1)


class DemoConfig(ProviderConfig):
    name: str = Field("x", min_length=1, description="A name.")
    flag: bool = Field(True, description="A flag.")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate.")
    retries: int = Field(0, ge=0, description="Retries.")
    base_url: str = Field("https://a.b/v1", description="Vendor origin.")
    items: list[Item] = Field(default_factory=list, description="Things.")
    api_key: str = env_field("DEMO_API_KEY", description="The vendor key.")

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        return http_url(value)


def parse(**config: Any) -> DemoConfig:
    return parse_table(DemoConfig, config, table="tts.demo")


def test_missing_keys_take_the_defaults():
    config = parse()
    assert (config.name, config.flag, config.speed, config.retries) == ("x", True, 1.0, 0)
    assert (config.base_url, config.items, config.api_key) == ("https://a.b/v1", [], "")
    assert config == DemoConfig()


def test_values_are_read_and_normalised():
    config = parse(name="y", speed=2, retries=3, base_url="http://127.0.0.1:9/v1/")
    assert config.speed == 2.0 and isinstance(config.speed, float)  # an int is a fine float
    assert (config.name, config.retries) == ("y", 3)
    assert config.base_url == "http://127.0.0.1:9/v1"  # the validator's normal form
    assert parse(items=[{"name": "a"}]).items == [Item(name="a")]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": 5}, "name: must be a valid string, not 5"),
        ({"name": ""}, "name: string should have at least 1 character, not ''"),
        ({"flag": "yes"}, "flag: must be a valid boolean, not 'yes'"),
        ({"flag": 1}, "flag: must be a valid boolean, not 1"),
        ({"speed": True}, "speed: must be a valid number, not True"),
        ({"speed": "1"}, "speed: must be a valid number, not '1'"),  # strict: no coercion
        ({"speed": 9}, "speed: must be less than or equal to 4, not 9"),
        ({"speed": 0.1}, "speed: must be greater than or equal to 0.25, not 0.1"),
        ({"retries": 1.5}, "retries: must be a valid integer, not 1.5"),
        ({"retries": False}, "retries: must be a valid integer, not False"),
        ({"retries": -1}, "retries: must be greater than or equal to 0, not -1"),
        ({"base_url": "wss://a.b"}, "base_url: must be an http(s):// URL, not 'wss://a.b'"),
        ({"base_url": "a.b/v1"}, "base_url: must be an http(s):// URL, not 'a.b/v1'"),
        ({"base_url": ""}, "base_url: must be an http(s):// URL, not ''"),
    ],
)
def test_bad_values_name_the_file_the_table_the_key_and_the_value(config, message):
    with pytest.raises(ConfigError) as info:
        parse(**config)
    assert str(info.value) == PREFIX + message


def test_unknown_keys_are_refused_with_did_you_mean():
    with pytest.raises(ConfigError) as info:
        parse(nmae="y", zzz=1)
    assert info.value.problems == [
        PREFIX + "nmae: unknown key (did you mean 'name'?)",
        PREFIX + "zzz: unknown key",
    ]
    assert str(info.value) == "\n".join(info.value.problems)


def test_list_positions_count_from_one():
    with pytest.raises(ConfigError) as info:
        parse(items=[{"name": "a"}, {"name": ""}, {}])
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(PREFIX + "items #2") and "at least 1 character" in problems[0]
    assert problems[1].startswith(PREFIX + "items #3") and problems[1].endswith("is required")


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        parse(name=5, speed=9, retries=-1)
    assert [line.split(":")[1].split()[-1] for line in info.value.problems] == [
        "name",
        "speed",
        "retries",
    ]


def test_a_parsed_config_is_frozen():
    config = parse()
    with pytest.raises(pydantic.ValidationError):
        config.speed = 2.0  # type: ignore[misc]


def test_env_field_reads_its_variable_only_through_the_settings():
    assert DemoConfig().api_key == ""  # built directly: the environment is never read
    with_key = Settings.from_dict({"tts": {"demo": {}}}, environ={"DEMO_API_KEY": "sk-1"})
    assert parse_settings_table(with_key, DemoConfig, "tts", "demo").api_key == "sk-1"
    given = Settings.from_dict({"tts": {"demo": {"api_key": "${OTHER}"}}}, environ={"OTHER": "o"})
    assert parse_settings_table(given, DemoConfig, "tts", "demo").api_key == "o"
    unset = Settings.from_dict({"tts": {"demo": {}}}, environ={})
    with pytest.raises(ConfigError, match=r"DEMO_API_KEY is not set \(needed by \[tts\.demo\]"):
        parse_settings_table(unset, DemoConfig, "tts", "demo")


def test_a_provider_without_keys_refuses_any_key():
    parse_table(ProviderConfig, {}, table="stt.bare")
    with pytest.raises(ConfigError, match=r"^plugins\.toml: \[stt\.bare\] model: unknown key$"):
        parse_table(ProviderConfig, {"model": "x"}, table="stt.bare")


def test_describe_lists_type_default_doc_and_range():
    docs = {doc.name: doc for doc in describe(DemoConfig)}
    assert list(docs) == ["name", "flag", "speed", "retries", "base_url", "items", "api_key"]
    assert (docs["name"].type, docs["name"].default, docs["name"].doc) == ("str", '"x"', "A name.")
    assert (docs["flag"].type, docs["flag"].default) == ("bool", "true")
    assert docs["speed"].doc == "Speaking rate. (≥ 0.25, ≤ 4.0)"
    assert docs["items"].type == "list[Item]" and docs["items"].default == "[]"
    assert docs["api_key"].default == "${DEMO_API_KEY}"
