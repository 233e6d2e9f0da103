"""The one validation of a whole ``plugins.toml``: what ``voicehost serve`` runs before it
listens and ``voicehost config check`` runs on its own.

It refuses unknown top-level tables, parses each core table given to it (``[server]``,
``[twilio]``, ``[records]`` — the app assembly says which) into its typed class, checks the
keys of ``[stt]`` / ``[tts]`` / ``[responder]`` and parses each chosen provider's table, and
reports every problem at once, one line each, naming the file, table, key and bad value.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from voicehost.config.document import Settings
from voicehost.config.providers import RuntimeConfig, resolve_providers
from voicehost.config.tables import parse_settings_table
from voicehost.config_model import ConfigModel, ModelT, did_you_mean
from voicehost.errors import ConfigError
from voicehost.plugins import PLUGINS_TABLE, PROVIDER_KINDS, PluginHost, ProviderKind

__all__ = ["CheckedConfig", "check_config"]


@attrs.frozen
class CheckedConfig:
    """A validated configuration.

    Attributes:
        runtime: the settings and the chosen providers with their parsed configs.
        tables: each core table's parsed object, by table name.
    """

    runtime: RuntimeConfig
    tables: Mapping[str, ConfigModel]

    def table(self, name: str, model: type[ModelT]) -> ModelT:
        """The parsed table ``name``.

        Raises:
            TypeError: it was not parsed as ``model``.
        """
        value = self.tables[name]
        if not isinstance(value, model):
            raise TypeError(f"[{name}] was parsed as {type(value).__name__}, not {model.__name__}")
        return value


def check_config(
    settings: Settings,
    host: PluginHost,
    core_tables: Mapping[str, type[ConfigModel]],
    kinds: tuple[ProviderKind, ...] = PROVIDER_KINDS,
) -> CheckedConfig:
    """Validate the whole document against the loaded plugins.

    Args:
        settings: the parsed ``plugins.toml``.
        host: the loaded plugins (their providers and config classes).
        core_tables: the top-level tables besides ``[plugins]`` and the provider kinds, with
            the class each is parsed into.
        kinds: the provider kinds to choose.

    Raises:
        ConfigError: every problem found; ``problems`` has one line each.
    """
    known = [PLUGINS_TABLE, *PROVIDER_KINDS, *core_tables]
    problems = [
        f"{settings.where}: unknown table [{key}]{did_you_mean(key, known)}"
        for key in settings.data
        if key not in known
    ]
    tables: dict[str, ConfigModel] = {}
    for name, model in core_tables.items():
        try:
            tables[name] = parse_settings_table(settings, model, name)
        except ConfigError as exc:
            problems += exc.problems
    runtime = None
    try:
        runtime = resolve_providers(settings, host, kinds)
    except ConfigError as exc:
        problems += exc.problems
    if problems or runtime is None:
        raise ConfigError("\n".join(problems), problems=problems)
    return CheckedConfig(runtime, tables)
