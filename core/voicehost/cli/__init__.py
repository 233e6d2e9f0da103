"""The ``voicehost`` command line (click).

The built-in commands are loaded lazily (click's documented ``LazyGroup`` pattern), so
``voicehost --help`` and ``voicehost calls list`` import neither the server nor any plugin.
Plugins add sub-commands through the ``register_commands(cli)`` hook: the plugins are loaded
only when the command asked for is not a built-in one (as simonw/llm does, but on demand), and
``voicehost --help`` says so instead of importing every plugin to list theirs.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from voicehost.errors import VoicehostError

#: Built-in command name → (``"module:attribute"`` of its click command, its one-line help
#: for ``voicehost --help``, which must not import the command's module).
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "call": ("voicehost.cli.call:call_command", "Place an outbound call (conversation or notify)."),
    "calls": ("voicehost.records.cli:calls", "Read the stored call records."),
    "config": ("voicehost.cli.config:config_group", "Check plugins.toml, or show its keys."),
    "list-plugins": (
        "voicehost.cli.list_plugins:list_plugins",
        "List installed plugins and their providers.",
    ),
    "serve": ("voicehost.app.serve:serve", "Run the Twilio call server."),
    "simulate": (
        "voicehost.simulate.command:simulate",
        "Be the caller: play audio files or --say text into a call.",
    ),
}


class VoicehostGroup(click.Group):
    """The top-level group: built-in commands imported when run, plugin commands loaded when a
    name is not built in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins_loaded = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*BUILTIN_COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        builtin = BUILTIN_COMMANDS.get(cmd_name)
        if builtin is not None:
            module, attribute = builtin[0].split(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
            return command
        if ctx.resilient_parsing or self._plugins_loaded:
            return None
        self._plugins_loaded = True
        register_plugin_commands(self)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, from :data:`BUILTIN_COMMANDS` for the built-ins
        not imported yet (listing must not import them)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is not None:
                rows.append((name, command.get_short_help_str(formatter.width)))
            else:
                rows.append((name, BUILTIN_COMMANDS[name][1]))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=VoicehostGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Plugins may add commands: run them as `voicehost NAME`; `voicehost list-plugins` "
    "shows what is installed.",
)
@click.version_option(None, "--version", package_name="voicehost", prog_name="voicehost")
def cli() -> None:
    """voicehost: a plugin host for phone-call voice bots."""


def register_plugin_commands(group: click.Group) -> None:
    """Let the loaded plugins add their commands to ``group``; a broken config leaves only the
    built-in ones (the command itself reports the problem)."""
    from voicehost.config import load_settings  # the plugin layer, only for plugin commands
    from voicehost.plugins import load_plugin_host

    try:
        host = load_plugin_host(load_settings())
    except VoicehostError:
        return
    host.call_each("register_commands", cli=group)


def main() -> None:
    """Console-script entry point."""
    cli()


__all__ = ["BUILTIN_COMMANDS", "VoicehostGroup", "cli", "main", "register_plugin_commands"]
