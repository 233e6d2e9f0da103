"""The ``voicehost`` command line (click).

Plugins add sub-commands through the ``register_commands(cli)`` hook; the host loads the
plugins selected by ``$VOICEHOST_CONFIG`` or ``./plugins.toml`` before parsing arguments, as
simonw/llm does, so a plugin's command shows in ``voicehost --help``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from voicehost import __version__
from voicehost.cli_options import config_option
from voicehost.config import (
    DEFAULT_PROVIDERS,
    KIND_NAMES,
    Settings,
    load_settings,
    mask_secrets,
    resolve_providers,
)
from voicehost.errors import ConfigError, VoicehostError
from voicehost.plugins import PluginHost, load_plugin_host


def load(config_path: str | None) -> tuple[Settings, PluginHost]:
    """Load settings and plugins for a command; a problem exits 1 with one clear line."""
    try:
        settings = load_settings(config_path)
        return settings, load_plugin_host(settings)
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="voicehost")
def cli() -> None:
    """voicehost: a plugin host for phone-call voice bots."""


@cli.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in the README).")
@config_option
def list_plugins(as_json: bool, config_path: str | None) -> None:
    """List installed plugins: version, status, and the providers each registered."""
    _, host = load(config_path)
    records = host.sorted_records()
    if as_json:
        click.echo(json.dumps([r.as_json() for r in records], indent=2))
        return
    rows = [("PLUGIN", "VERSION", "STATUS", "STT", "TTS", "RESPONDERS", "ERROR")]
    for r in records:
        rows.append(
            (
                r.name,
                r.version,
                r.status,
                ",".join(r.providers["stt"]) or "-",
                ",".join(r.providers["tts"]) or "-",
                ",".join(r.providers["responder"]) or "-",
                r.error or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


@cli.group("config")
def config_group() -> None:
    """Inspect plugins.toml."""


@config_group.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Validate plugins.toml against the loaded plugins; print the chosen providers and their
    resolved config with secrets masked. Exit 1 with a clear message on any problem."""
    settings, host = load(config_path)
    problems: list[str] = []
    chosen: dict[str, Any] = {}
    for kind in DEFAULT_PROVIDERS:
        try:
            choice = resolve_providers(settings, host, (kind,))  # type: ignore[arg-type]
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        chosen[kind] = getattr(choice, kind)
    click.echo(f"config: {settings.path or '(none: built-in defaults)'}")
    for kind, choice in chosen.items():
        click.echo(f"[{kind}] {KIND_NAMES[kind]}: {choice.id} (from {choice.plugin})")
        for line in json.dumps(mask_secrets(choice.config), indent=2, sort_keys=True).splitlines():
            click.echo(f"    {line}")
    failed = [r for r in host.sorted_records() if r.status == "failed"]
    for record in failed:
        click.echo(f"warning: plugin {record.name} failed: {record.error}", err=True)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    click.echo("ok")


def _add_builtin_commands() -> None:
    from voicehost.records_cli import calls
    from voicehost.server.commands import serve
    from voicehost.simulate import simulate

    cli.add_command(serve)
    cli.add_command(calls)
    cli.add_command(simulate)


_add_builtin_commands()


def _register_plugin_commands() -> None:
    """Let loaded plugins add commands; a broken config leaves only the built-in ones."""
    try:
        settings = load_settings()
        host = load_plugin_host(settings)
    except VoicehostError:
        return  # the command itself will report the problem
    host.call_each("register_commands", cli=cli)


def main() -> None:
    """Console-script entry point."""
    _register_plugin_commands()
    cli()
