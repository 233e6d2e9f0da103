"""``voicehost calls list`` and ``voicehost calls show CALL_SID [--json]``: read call records.

The database is ``--db PATH`` when given, else ``[records] path`` of ``plugins.toml`` (found as
every command finds it: ``--config``, ``$VOICEHOST_CONFIG`` or ``./plugins.toml``), else
``./voicehost.db``. ``show --json`` prints exactly what ``GET /api/calls/{call_sid}`` returns;
``show`` prints the call's direction, who answered (machine detection), its lifecycle events
(time from the call's start) and its turns (time from the stream's start).
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


def _db_path(ctx: click.Context, db: str | None, config: str | None) -> Path:
    return Path(db) if db else records_path(config)


_db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="SQLite file of call records (default: [records] path, else ./voicehost.db).",
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


_WHO = {"caller": "caller", "bot": "bot", "event": "·"}
#: How ``calls list`` shows Twilio's ``Direction``.
_DIRECTIONS = {"inbound": "in", "outbound-api": "out", "outbound-dial": "out"}
#: Turn kinds shown as ``[kind] text`` (events, not speech).
_EVENT_TURNS = frozenset({"barge_in", "dtmf", "send_dtmf", "transfer"})


def _seconds_between(start: str, at: str) -> float:
    return (datetime.fromisoformat(at) - datetime.fromisoformat(start)).total_seconds()


def format_call(call: dict[str, Any]) -> str:
    """A call (as :func:`voicehost.records.read_call` returns it) as human-readable lines:
    a header (SIDs, numbers, direction, answered by, start and end), then the lifecycle events
    (``  +1.52s  event  ringing``, seconds from the call's start), then the turns (seconds
    from the stream's start)."""
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
        else:
            lines.append(f"{at}  {who:>6}  {turn['text']}")
    if not call["turns"]:
        lines.append("  (no turns)")
    return "\n".join(lines)
