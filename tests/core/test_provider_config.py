"""The shared config-blob readers the cloud plugins parse their tables with."""

from __future__ import annotations

from typing import Any

import pytest

from voicehost.errors import ConfigError
from voicehost.provider_config import ConfigBlob, check_known_keys, is_set

DEFAULTS = {"name": "x", "flag": True, "speed": 1.0, "retries": 0, "base_url": "https://a.b/v1"}
WHERE = "[tts.demo]"


def blob(**config: Any) -> ConfigBlob:
    return ConfigBlob(config, DEFAULTS, WHERE)


def test_missing_keys_take_the_defaults():
    b = blob()
    assert (b.string("name"), b.boolean("flag"), b.number("speed")) == ("x", True, 1.0)
    assert (b.integer("retries"), b.http_url()) == (0, "https://a.b/v1")


def test_values_are_read_and_normalised():
    b = blob(name="  y ", speed=2, retries=3, base_url="http://127.0.0.1:9/v1/")
    assert b.string("name") == "y"
    assert b.string("name", strip=False) == "  y "
    assert b.number("speed") == 2.0 and isinstance(b.number("speed"), float)
    assert b.integer("retries") == 3
    assert b.http_url() == "http://127.0.0.1:9/v1"
    assert blob(name=None).string("name") == ""


@pytest.mark.parametrize(
    ("config", "read", "message"),
    [
        ({"name": 5}, lambda b: b.string("name"), "name must be a string, not 5"),
        ({"name": " "}, lambda b: b.string("name", required=True), "name must not be empty"),
        ({"flag": "yes"}, lambda b: b.boolean("flag"), "flag must be true or false"),
        ({"speed": True}, lambda b: b.number("speed"), "speed must be a number"),
        ({"speed": "1"}, lambda b: b.number("speed"), "speed must be a number"),
        (
            {"speed": 9},
            lambda b: b.number("speed", minimum=0.25, maximum=4.0),
            "speed must be between 0.25 and 4.0, not 9",
        ),
        ({"speed": -1}, lambda b: b.number("speed", minimum=0), "speed must be at least 0"),
        ({"speed": 5}, lambda b: b.number("speed", maximum=4), "speed must be at most 4"),
        ({"retries": 1.5}, lambda b: b.integer("retries"), "retries must be a whole number"),
        ({"retries": False}, lambda b: b.integer("retries"), "retries must be a whole number"),
        ({"retries": -1}, lambda b: b.integer("retries"), "retries must be at least 0"),
        ({"base_url": "wss://a.b"}, lambda b: b.http_url(), "base_url must be an http"),
        ({"base_url": "a.b/v1"}, lambda b: b.http_url(), "base_url must be an http"),
        ({"base_url": ""}, lambda b: b.http_url(), "base_url must not be empty"),
    ],
)
def test_bad_values_name_the_table_and_the_key(config, read, message):
    with pytest.raises(ConfigError) as info:
        read(blob(**config))
    assert str(info.value).startswith(f"{WHERE} ")
    assert message in str(info.value)


def test_unknown_keys_are_refused_with_the_known_ones_listed():
    with pytest.raises(ConfigError, match=r"\[tts\.demo\] has unknown key\(s\) nmae, z; known: "):
        blob(nmae="y", z=1).check_known()
    with pytest.raises(ConfigError, match="known: base_url, flag, name, retries, speed"):
        check_known_keys({"x": 1}, DEFAULTS, WHERE)
    blob(name="y").check_known()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("sk-1", True), ("", False), ("  ", False), ("${OPENAI_API_KEY}", False), (None, False)],
)
def test_is_set_wants_a_resolved_non_blank_string(value, expected):
    assert is_set({"api_key": value}) is expected
    assert is_set({}) is False
