"""``voicehost list-plugins``: the installed plugins, their status, their providers and tools.

It loads the plugin host only (no server, no records, no vendor SDK: plugins import their SDK
when a session needs it), so it stays fast."""

from __future__ import annotations

import json

import click

from voicehost.cli_options import config_option
from voicehost.config.document import load_settings
from voicehost.errors import VoicehostError
from voicehost.plugins import PluginHost, load_plugin_host

__all__ = ["list_plugins", "load_host"]


def load_host(config_path: str | None) -> PluginHost:
    """The plugin host for ``--config``; a broken ``[plugins]`` table exits 1 in one line."""
    try:
        return load_plugin_host(load_settings(config_path))
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in the README).")
@config_option
def list_plugins(as_json: bool, config_path: str | None) -> None:
    """List installed plugins: version, status, and the providers and tools each registered."""
    records = load_host(config_path).sorted_records()
    if as_json:
        click.echo(json.dumps([r.as_json() for r in records], indent=2))
        return
    rows = [
        (
            "PLUGIN",
            "VERSION",
            "STATUS",
            "STT",
            "TTS",
            "RESPONDERS",
            "CONVERSATION",
            "TURN",
            "TOOLS",
            "ERROR",
        )
    ]
    for r in records:
        rows.append(
            (
                r.name,
                r.version,
                r.status,
                ",".join(r.providers["stt"]) or "-",
                ",".join(r.providers["tts"]) or "-",
                ",".join(r.providers["responder"]) or "-",
                ",".join(r.providers["conversation"]) or "-",
                ",".join(r.providers["turn"]) or "-",
                ",".join(r.tools) or "-",
                r.error or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())
