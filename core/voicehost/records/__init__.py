"""Call records: every call and its ordered turns in SQLite (:mod:`.store`), the ``[records]``
table (:mod:`.settings`, ``RecordsSettings``: import it from there), the read-only HTTP API
(:mod:`.api`) and the ``voicehost calls`` commands (:mod:`.cli`)."""

from voicehost.records.store import (
    DEFAULT_PATH,
    TURN_KINDS,
    TURN_ROLES,
    CallStore,
    TurnKind,
    TurnRole,
    read_call,
    read_calls,
    utc_now_iso,
)

__all__ = [
    "DEFAULT_PATH",
    "TURN_KINDS",
    "TURN_ROLES",
    "CallStore",
    "TurnKind",
    "TurnRole",
    "read_call",
    "read_calls",
    "utc_now_iso",
]
