"""Where call records are: a SQLite file path, or a PostgreSQL URL (``[records] url``).
No database driver is imported here, so ``voicehost config check`` stays fast."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["RecordSource", "is_postgres_url", "redacted"]

#: A records source: a SQLite path, or a ``postgresql://`` URL (a ``str``).
RecordSource = str | Path


def is_postgres_url(source: object) -> bool:
    """True for a ``postgresql://`` or ``postgres://`` URL (``[records] url``)."""
    return isinstance(source, str) and source.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()
