"""The ``[state]`` and ``[records] url`` settings: parsed and refused as every core table,
passwords never shown; no server needed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voicehost.errors import ConfigError
from voicehost.records.settings import RecordsSettings
from voicehost.server.shared_state import check_redis
from voicehost.server.state_settings import MEMORY_URL, StateSettings, redacted_url


def test_state_defaults_to_memory():
    settings = StateSettings()
    assert settings.url == MEMORY_URL and not settings.shared and settings.prefix == "voicehost"


@pytest.mark.parametrize("url", ["redis://r:6379/0", "rediss://u:p@r:6380/1", "unix:///run/r.sock"])
def test_redis_urls_are_accepted(url):
    assert StateSettings(url=url).shared


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"url": "http://redis:6379"}, "redis://"),
        ({"url": "memory://", "prefix": "has space"}, "prefix"),
        ({"url": "memory://", "live_ttl_s": 0.1}, "live_ttl_s"),
        ({"urll": "redis://r"}, "urll"),
    ],
)
def test_bad_state_tables_are_refused(table, error):
    with pytest.raises(ValidationError, match=error):
        StateSettings.model_validate(table)


def test_a_password_is_never_shown():
    assert redacted_url("redis://user:hunter2@r:6379/0") == "redis://user:***@r:6379/0"
    with pytest.raises(ValidationError) as error:
        StateSettings(url="http://user:hunter2@r")
    assert "hunter2" not in error.value.errors()[0]["msg"]  # what config check prints


def test_records_url_must_be_postgres():
    assert RecordsSettings(url="postgresql://u@db/v").source == "postgresql://u@db/v"
    assert RecordsSettings().source == RecordsSettings().path
    with pytest.raises(ValidationError, match="postgresql://"):
        RecordsSettings(url="mysql://db/v")


def test_an_unreachable_redis_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"\[state\] url redis://u:\*\*\*@127.0.0.1:1/0"):
        check_redis("redis://u:secret@127.0.0.1:1/0")
