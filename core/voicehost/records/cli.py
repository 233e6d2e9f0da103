"""``voicehost calls list``, ``voicehost calls show CALL_SID [--json]`` and ``voicehost calls
stats [--last N] [--json]``: read call records.

The database is ``--db PATH`` (or ``--db postgresql://…``) when given, else ``[records] url``
(PostgreSQL) or ``[records] path`` of ``plugins.toml`` (found as every command finds it:
``--config``, ``$VOICEHOST_CONFIG`` or ``./plugins.toml``), else ``./voicehost.db``.
``show --json`` prints exactly what ``GET /api/calls/{call_sid}`` returns; ``show`` prints
the call's direction, who answered (machine detection), its lifecycle events (time from the
call's start) and its turns (time from the stream's start; tool calls as ``[tool]
name(arguments)`` and their results as ``[tool] → result``; under each caller turn the bot
answered, its latencies). ``stats`` prints the p50 / p95 of each turn latency over
the latest calls (:mod:`voicehost.records.stats`) and the counts of barge-ins and errors.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from voicehost.cli_options import config_option
from voicehost.config.document import load_settings
from voicehost.errors import VoicehostError
from voicehost.records.source import RecordSource, is_postgres_url
from voicehost.records.stats import MAX_STATS_CALLS, call_stats
from voicehost.records.store import DEFAULT_PATH, MAX_LIST_LIMIT, read_call, read_calls


def records_path(config_path: str | None) -> Path:
    """``[records] path`` of the config file (``--config``, ``$VOICEHOST_CONFIG`` or
    ``./plugins.toml``), parsed as ``serve`` parses it.

    Raises:
        ConfigError: the file or its ``[records]`` table is wrong.
    """
    settings = load_settings(config_path)
    if "records" not in settings.data:  # nothing to parse: the default, without pydantic
        return Path(DEFAULT_PATH)
    from voicehost.config.tables import parse_settings_table  # pydantic: only when needed
    from voicehost.records.settings import RecordsSettings

    return Path(parse_settings_table(settings, RecordsSettings, "records").path)


def records_source(config_path: str | None) -> RecordSource:
    """``[records] url`` (PostgreSQL) of the config file when set, else :func:`records_path`.

    Raises:
        ConfigError: the file or its ``[records]`` table is wrong.
    """
    settings = load_settings(config_path)
    if "records" not in settings.data:
        return Path(DEFAULT_PATH)
    from voicehost.config.tables import parse_settings_table  # pydantic: only when needed
    from voicehost.records.settings import RecordsSettings

    records = parse_settings_table(settings, RecordsSettings, "records")
    return records.url or Path(records.path)


def _db_path(ctx: click.Context, db: str | None, config: str | None) -> RecordSource:
    if db:
        return db if is_postgres_url(db) else Path(db)
    return records_source(config)


_db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="SQLite file or postgresql:// URL of the call records (default: [records] url or "
    "path, else ./voicehost.db).",
)


@click.group("calls")
def calls() -> None:
    """Read the stored call records (calls and their turns)."""


@calls.command("list")
@_db_option
@config_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, MAX_LIST_LIMIT))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_calls(
    ctx: click.Context, db: str | None, config_path: str | None, limit: int, as_json: bool
) -> None:
    """List the latest calls, newest first."""
    try:
        rows = read_calls(_db_path(ctx, db, config_path), limit)
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no calls recorded yet")
        return
    click.echo(
        f"{'CALL SID':<36}  {'STARTED (UTC)':<23}  {'SECS':>6}  {'TURNS':>5}  {'DIR':<4}  FROM → TO"
    )
    for row in rows:
        secs = f"{row['duration_ms'] / 1000:.1f}" if row["duration_ms"] is not None else "live?"
        started = row["started_at"][:23].replace("T", " ")
        direction = _DIRECTIONS.get(row["direction"], row["direction"] or "-")
        click.echo(
            f"{row['call_sid']:<36}  {started:<23}  {secs:>6}  {row['turn_count']:>5}  "
            f"{direction:<4}  {row['from'] or '?'} → {row['to'] or '?'}"
        )


@calls.command("show")
@click.argument("call_sid")
@_db_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the call as JSON.")
@click.pass_context
def show_call(
    ctx: click.Context, call_sid: str, db: str | None, config_path: str | None, as_json: bool
) -> None:
    """Show one call: its direction, lifecycle events and turns in order, with times."""
    try:
        call = read_call(_db_path(ctx, db, config_path), call_sid)
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from exc
    if call is None:
        raise click.ClickException(f"no call {call_sid!r} in the call records")
    if as_json:
        click.echo(json.dumps(call, indent=2))
        return
    click.echo(format_call(call))


@calls.command("stats")
@_db_option
@config_option
@click.option(
    "--last",
    default=100,
    show_default=True,
    type=click.IntRange(1, MAX_STATS_CALLS),
    help="How many of the latest calls to read.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def stats(
    ctx: click.Context, db: str | None, config_path: str | None, last: int, as_json: bool
) -> None:
    """Turn latencies (p50, p95) and counts of barge-ins and errors over the latest calls."""
    try:
        data = call_stats(_db_path(ctx, db, config_path), last)
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(data, indent=2) if as_json else format_stats(data))


#: How ``calls show`` and ``calls stats`` name each latency (:data:`LATENCIES`).
_LATENCY_NAMES = {
    "turn": "turn (end of speech → first audio)",
    "stt_final": "STT final (end of speech → final)",
    "responder_first_token": "responder (final → first token)",
    "tts_first_audio": "TTS (first token → first audio)",
}
_SHORT_NAMES = {
    "turn": "turn",
    "stt_final": "stt",
    "responder_first_token": "responder",
    "tts_first_audio": "tts",
}


def _secs(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}s"


def format_stats(data: dict[str, Any]) -> str:
    """:func:`voicehost.records.stats.call_stats`'s result as a small table."""
    lines = [
        f"last {data['calls']} calls, {data['answered_turns']} answered caller turns",
        "",
        f"{'LATENCY':<36}  {'COUNT':>5}  {'P50':>7}  {'P95':>7}",
    ]
    for name, latency in data["latency_ms"].items():
        lines.append(
            f"{_LATENCY_NAMES.get(name, name):<36}  {latency['count']:>5}  "
            f"{_secs(latency['p50']):>7}  {_secs(latency['p95']):>7}"
        )
    errors = data["errors"]
    lines += [
        "",
        f"barge-ins  {data['barge_ins']}",
        f"errors     {errors['calls']} calls ended in error, {errors['tools']} tool errors, "
        f"{errors['transfers']} failed transfers",
    ]
    return "\n".join(lines)


def format_timings(timings: dict[str, Any]) -> str:
    """A turn's ``timings`` (as :func:`voicehost.records.read_call` gives them) as one line:
    ``latency  turn 0.98s  (stt 0.32s, responder 0.13s, tts 0.53s)``."""
    latency = timings["latency_ms"]
    parts = ", ".join(
        f"{_SHORT_NAMES[name]} {_secs(latency.get(name))}"
        for name in ("stt_final", "responder_first_token", "tts_first_audio")
    )
    note = "" if timings["speech_end_ms"] is not None else "  (from the final: no speech end)"
    return f"latency  turn {_secs(latency.get('turn'))}  ({parts}){note}"


_WHO = {"caller": "caller", "bot": "bot", "event": "·"}
#: How ``calls list`` shows Twilio's ``Direction``.
_DIRECTIONS = {"inbound": "in", "outbound-api": "out", "outbound-dial": "out"}
#: Turn kinds shown as ``[kind] text`` (events, not speech).
_EVENT_TURNS = frozenset({"barge_in", "dtmf", "send_dtmf", "transfer"})
#: Tool turns: ``[tool] get_hours({"day": "monday"})`` and ``[tool] → {"open": "09:00"}``.
_TOOL_TURNS = {"tool_call": "", "tool_result": "→ "}
#: A tool's arguments or result longer than this is cut in ``calls show`` (``--json`` has all).
_TOOL_TEXT_MAX = 200


def _seconds_between(start: str, at: str) -> float:
    return (datetime.fromisoformat(at) - datetime.fromisoformat(start)).total_seconds()


def format_call(call: dict[str, Any]) -> str:
    """A call (as :func:`voicehost.records.read_call` returns it) as human-readable lines:
    a header (SIDs, numbers, direction, answered by, start and end), then the lifecycle events
    (``  +1.52s  event  ringing``, seconds from the call's start), then the turns (seconds
    from the stream's start), an answered caller turn followed by its latencies
    (:func:`format_timings`)."""
    details = f"  direction {call['direction'] or '?'}"
    if call["answered_by"]:
        details += f"  answered by {call['answered_by']}"
    lines = [
        f"call {call['call_sid']}  stream {call['stream_sid'] or '- (never streamed)'}",
        f"  from {call['from'] or '?'} to {call['to'] or '?'}",
        details,
        f"  started {call['started_at']}",
        f"  ended   {call['ended_at'] or '- (live, or the server stopped during it)'}"
        + (f"  ({call['end_reason']})" if call["end_reason"] else ""),
        "",
    ]
    if call["events"]:
        lines.append("events (from the call's start)")
        for event in call["events"]:
            offset = _seconds_between(call["started_at"], event["at"])
            detail = event["reason"] or event["answered_by"]
            lines.append(
                f"{offset:+8.2f}s  event  {event['event']}" + (f"  {detail}" if detail else "")
            )
        lines.append("")
    lines.append("turns (from the stream's start)")
    for turn in call["turns"]:
        at = f"{turn['at_ms'] / 1000:8.2f}s"
        who = _WHO.get(turn["role"], turn["role"])
        if turn["kind"] in _EVENT_TURNS:
            detail = f" {turn['text']}" if turn["text"] else ""
            lines.append(f"{at}  {who:>6}  [{turn['kind']}]{detail}")
        elif turn["kind"] in _TOOL_TURNS:
            text = turn["text"]
            if len(text) > _TOOL_TEXT_MAX:
                text = text[: _TOOL_TEXT_MAX - 1] + "…"
            lines.append(f"{at}  {who:>6}  [tool] {_TOOL_TURNS[turn['kind']]}{text}")
        else:
            lines.append(f"{at}  {who:>6}  {turn['text']}")
        if turn.get("timings"):
            lines.append(f"{'':19}{format_timings(turn['timings'])}")
    if not call["turns"]:
        lines.append("  (no turns)")
    return "\n".join(lines)
