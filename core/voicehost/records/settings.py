"""The ``[records]`` table: whether and where call records are kept, and who may read them;
and :func:`open_store`, the store it names (SQLite or PostgreSQL, one interface)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from voicehost.config_model import ConfigModel
from voicehost.records.source import is_postgres_url
from voicehost.records.store import DEFAULT_PATH, CallStore

if TYPE_CHECKING:
    from voicehost.records.pg_store import PgCallStore

__all__ = ["RecordsSettings", "open_store"]


class RecordsSettings(ConfigModel):
    """The ``[records]`` table of ``plugins.toml``."""

    enabled: bool = Field(True, description="Keep call records (calls and their turns).")
    path: str = Field(
        DEFAULT_PATH,
        min_length=1,
        description="SQLite file of the call records, relative to the working directory.",
    )
    url: str = Field(
        "",
        description="postgresql://user:password@host:5432/db: keep the records in PostgreSQL, "
        "shared by every instance (path is then unused); empty: the SQLite file.",
    )
    api_token: str = Field(
        "",
        repr=False,
        description="When set, /api/calls requires 'Authorization: Bearer <api_token>'; "
        "unset, it answers loopback clients only.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not is_postgres_url(value):
            raise ValueError("must be a postgresql:// URL, or empty for the SQLite file")
        return value

    @property
    def source(self) -> str:
        """What the readers take: the Postgres URL when set, else the SQLite path."""
        return self.url or self.path


def open_store(settings: RecordsSettings) -> CallStore | PgCallStore:
    """The record store ``settings`` names: :class:`PgCallStore` for ``url``, else a
    :class:`CallStore` on ``path``. Both have the same write and read methods.

    Raises:
        ConfigError: the database cannot be opened (Postgres: reached, migrated).
    """
    if settings.url:
        from voicehost.records.pg_store import PgCallStore  # psycopg: only when configured

        return PgCallStore(settings.url)
    return CallStore(settings.path)
