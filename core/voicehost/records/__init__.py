"""Call records: every call, its lifecycle events and its ordered turns in SQLite
(:mod:`.store` writes, :mod:`.read` reads, :mod:`.schema` holds the tables and their
migration, :mod:`.timings` an answered caller turn's timings, :mod:`.stats` their
percentiles), the ``[records]`` table (:mod:`.settings`, ``RecordsSettings``: import it from
there), the read-only HTTP API (:mod:`.api`) and the ``voicehost calls`` commands
(:mod:`.cli`)."""

from voicehost.records.store import (
    DEFAULT_PATH,
    EVENT_NAMES,
    TURN_KINDS,
    TURN_ROLES,
    CallStore,
    EventName,
    TurnKind,
    TurnRole,
    TurnTimings,
    read_call,
    read_calls,
    utc_now_iso,
)

__all__ = [
    "DEFAULT_PATH",
    "EVENT_NAMES",
    "TURN_KINDS",
    "TURN_ROLES",
    "CallStore",
    "EventName",
    "TurnKind",
    "TurnRole",
    "TurnTimings",
    "read_call",
    "read_calls",
    "utc_now_iso",
]
