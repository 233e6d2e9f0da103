"""Reading ``plugins.toml``: the TOML document, ``${VAR}`` references, and parsing one table
into its typed class.

``${VAR}`` in a string is read from the environment, ``${VAR:-default}`` falls back to
``default``, and ``$${`` is a literal ``${``. Only the chosen providers' tables (and the core
tables) are resolved, so an unset variable that the chosen provider needs is an error at
start-up naming the variable, never a failure in the middle of a call. API keys live in the
environment; a config class declares one as ``api_key: str = env_field("VENDOR_API_KEY")``.

The file's path comes from ``--config``, then ``VOICEHOST_CONFIG``, then ``./plugins.toml``.
A missing default file means an empty configuration (every default applies); a missing file
that was asked for by name is an error.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voicehost.errors import ConfigError

CONFIG_ENV = "VOICEHOST_CONFIG"
DEFAULT_CONFIG_PATH = Path("plugins.toml")

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_KEY = re.compile(r"(api_?key|token|secret|password|auth)", re.IGNORECASE)


def resolve_env(
    value: Any,
    *,
    where: str,
    environ: Mapping[str, str] | None = None,
    file: str | None = None,
) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string inside ``value``.

    Args:
        value: a TOML value (str, number, bool, list, table).
        where: the table or key path, for the error message (``"[tts.openai]"``); nested
            keys are appended (``"[tts.openai] api_key"``).
        environ: the environment (default ``os.environ``).
        file: the config file, named at the end of the error message.

    Returns:
        A deep copy with the references replaced.

    Raises:
        ConfigError: a referenced variable is unset (or empty) and has no default; the message
            names the variable and ``where``.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            found = env.get(name)
            if found:
                return found
            if default is not None:
                return default
            in_file = f" in {file}" if file else ""
            raise ConfigError(
                f"environment variable {name} is not set (needed by {where}{in_file})"
            )

        return _VAR.sub(substitute, value)
    if isinstance(value, Mapping):
        sep = " " if where.endswith("]") else "."
        return {
            k: resolve_env(v, where=f"{where}{sep}{k}", environ=env, file=file)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [resolve_env(v, where=where, environ=env, file=file) for v in value]
    return value


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with every secret-looking key (api_key, token, secret, password,
    auth…) shown as ``***`` plus its last 4 characters."""
    if isinstance(value, Mapping):
        return {k: mask_secrets(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str) and value and _SECRET_KEY.search(key):
        return "***" + value[-4:] if len(value) >= 12 else "***"
    return value


@attrs.frozen
class Settings:
    """A parsed ``plugins.toml``.

    Attributes:
        data: the TOML document as read (``${VAR}`` not yet resolved).
        path: the file it came from, or None for an empty/in-memory configuration.
        environ: the environment ``${VAR}`` reads (default ``os.environ``).
    """

    data: Mapping[str, Any] = attrs.field(factory=dict)
    path: Path | None = None
    environ: Mapping[str, str] | None = None

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from an in-memory document (tests, embedding)."""
        return cls(data=copy.deepcopy(dict(data)), environ=environ)

    @property
    def where(self) -> str:
        """The file name for messages."""
        return str(self.path) if self.path else "plugins.toml"

    def raw_table(self, *keys: str) -> dict[str, Any]:
        """The table at ``keys`` (``("stt", "openai")``) unresolved; ``{}`` when absent.

        Raises:
            ConfigError: the key exists but is not a table.
        """
        node: Any = self.data
        for i, key in enumerate(keys):
            node = node.get(key, {}) if isinstance(node, Mapping) else None
            if not isinstance(node, Mapping):
                path = ".".join(keys[: i + 1])
                raise ConfigError(f"{self.where}: [{path}] must be a table")
        return dict(node)

    def table(self, *keys: str) -> dict[str, Any]:
        """The table at ``keys`` with ``${VAR}`` resolved.

        Raises:
            ConfigError: not a table, or it references an unset variable.
        """
        return resolve_env(
            self.raw_table(*keys),
            where=f"[{'.'.join(keys)}]",
            environ=self.environ,
            file=self.where,
        )


def config_path(path: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The config file to read and whether it was asked for explicitly."""
    if path:
        return Path(path), True
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), True
    return DEFAULT_CONFIG_PATH, False


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read ``plugins.toml`` from ``path``, ``$VOICEHOST_CONFIG`` or ``./plugins.toml``.

    Raises:
        ConfigError: an explicitly named file is missing, or the file is not valid TOML.
    """
    file, explicit = config_path(path)
    if not file.exists():
        if explicit:
            raise ConfigError(f"config file {file} does not exist")
        return Settings()
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from exc
    return Settings(data=data, path=file)
