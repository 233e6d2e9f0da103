"""The ``[records]`` table: whether and where call records are kept, and who may read them."""

from __future__ import annotations

from pydantic import Field

from voicehost.config_model import ConfigModel
from voicehost.records.store import DEFAULT_PATH

__all__ = ["RecordsSettings"]


class RecordsSettings(ConfigModel):
    """The ``[records]`` table of ``plugins.toml``."""

    enabled: bool = Field(True, description="Keep call records (calls and their turns).")
    path: str = Field(
        DEFAULT_PATH,
        min_length=1,
        description="SQLite file of the call records, relative to the working directory.",
    )
    api_token: str = Field(
        "",
        repr=False,
        description="When set, /api/calls requires 'Authorization: Bearer <api_token>'; "
        "unset, it answers loopback clients only.",
    )
