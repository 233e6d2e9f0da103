"""The ``[state]`` table of ``plugins.toml``: where the call server keeps the live state that
several instances must share (stream tokens, the webhook's call data, notify claims, the
registry of live calls), and how cross-instance actions travel.

``url = "memory://"`` (the default) keeps it in this process, right for one instance.
``url = "redis://host:6379/0"`` (``rediss://`` for TLS, ``unix:///path/redis.sock``) keeps it
in Redis (:mod:`voicehost.server.redis_state`), so that a webhook answered by one instance and
the media stream that follows it may land on another; ``${REDIS_URL}`` works as in every
table. Keys and channels are named ``<prefix>:…`` so several deployments can share one Redis.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from voicehost.config_model import ConfigModel

__all__ = ["MEMORY_URL", "StateSettings", "redacted_url"]

#: ``[state] url`` of the in-process state.
MEMORY_URL = "memory://"
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class StateSettings(ConfigModel):
    """The ``[state]`` table: the live call state shared by the instances of a deployment."""

    url: str = Field(
        MEMORY_URL,
        description="memory:// (this process only) or redis://host:port/db (rediss://, "
        "unix://): shared by every instance that serves the number.",
    )
    prefix: str = Field(
        "voicehost",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Namespace of every Redis key and channel (<prefix>:…), so deployments "
        "can share one Redis.",
    )
    live_ttl_s: float = Field(
        15.0,
        ge=1.0,
        description="A live call's registry entry expires this long after its instance last "
        "refreshed it (refreshed every third of it), s.",
    )
    action_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long a forwarded action (hang-up, transfer, status) waits for the "
        "instance holding the call to answer, s.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value == MEMORY_URL:
            return value
        scheme = urlsplit(value).scheme
        if scheme not in _REDIS_SCHEMES:
            raise ValueError(
                f"must be {MEMORY_URL} or a redis://, rediss:// or unix:// URL, not "
                f"{redacted_url(value)!r}"
            )
        return value

    @property
    def shared(self) -> bool:
        """True when the state is in Redis (shared between instances)."""
        return self.url != MEMORY_URL
