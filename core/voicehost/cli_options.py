"""Command-line options shared by voicehost's commands (kept apart from :mod:`voicehost.cli`,
which imports every command module, so those modules can use them without an import cycle)."""

from __future__ import annotations

import click

__all__ = ["config_option"]

#: ``--config PATH``: the ``plugins.toml`` to read, passed to the command as ``config_path``
#: (None: ``$VOICEHOST_CONFIG``, else ``./plugins.toml``; see
#: :func:`voicehost.config.load_settings`).
config_option = click.option(
    "--config",
    "config_path",
    envvar="VOICEHOST_CONFIG",
    type=click.Path(dir_okay=False),
    default=None,
    help="plugins.toml to read [env: VOICEHOST_CONFIG; default: ./plugins.toml].",
)
