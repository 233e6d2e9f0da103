"""``plugins.toml``: which providers run and each provider's config blob.

Layout::

    [plugins]                 # optional: enabled = [...] or disabled = [...]
    [stt]
    provider = "deepgram"
    [stt.deepgram]            # the config blob, handed unchanged to every session
    model = "nova-3"
    api_key = "${DEEPGRAM_API_KEY}"
    [tts]
    provider = "piper"
    [responder]
    provider = "scripted"

``${VAR}`` in a string is read from the environment, ``${VAR:-default}`` falls back to
``default``, and ``$${`` is a literal ``${``. Only the chosen providers' blobs (and tables the
server asks for) are resolved, so an unset variable that the chosen provider needs is an error
at start-up naming the variable, never a failure in the middle of a call. API keys live in the
environment; providers declare them as ``api_key = "${VENDOR_API_KEY}"`` in ``default_config``.

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
from typing import TYPE_CHECKING, Any

import attrs

from voicehost.errors import ConfigError, VoicehostError

if TYPE_CHECKING:
    from voicehost.plugins import PluginHost, ProviderKind

CONFIG_ENV = "VOICEHOST_CONFIG"
DEFAULT_CONFIG_PATH = Path("plugins.toml")

#: Providers used when ``plugins.toml`` names none: the embedded offline default.
DEFAULT_PROVIDERS: dict[str, str] = {"stt": "whisper", "tts": "piper", "responder": "scripted"}

KIND_NAMES = {"stt": "speech-to-text", "tts": "text-to-speech", "responder": "responder"}

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


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it; nested tables merge, everything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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


@attrs.frozen
class ProviderChoice:
    """The provider chosen for one kind, with its resolved config blob.

    Attributes:
        kind: ``stt``, ``tts`` or ``responder``.
        id: the provider id.
        provider: the provider object its plugin registered.
        plugin: the plugin (distribution) that registered it.
        config: ``default_config`` deep-merged with ``[<kind>.<id>]``, ``${VAR}`` resolved.
    """

    kind: str
    id: str
    provider: Any
    plugin: str | None
    config: Mapping[str, Any]


@attrs.frozen
class RuntimeConfig:
    """Everything a server needs from configuration: the settings and the chosen providers."""

    settings: Settings
    stt: ProviderChoice | None
    tts: ProviderChoice | None
    responder: ProviderChoice | None


def choose_provider(settings: Settings, host: PluginHost, kind: ProviderKind) -> ProviderChoice:
    """Resolve ``[<kind>] provider`` against the loaded plugins and build its config blob.

    Raises:
        ConfigError: unknown provider id (the message lists the loaded ids), a table of the
            wrong type, an unset variable the blob needs, or the provider's own
            ``validate_config``/``is_configured`` rejecting it.
    """
    table = settings.raw_table(kind)
    provider_id = table.get("provider", DEFAULT_PROVIDERS[kind])
    if not isinstance(provider_id, str) or not provider_id:
        raise ConfigError(f"{settings.where}: [{kind}] provider must be a provider id string")
    registry = host.registry(kind)
    provider = registry.get(provider_id)
    if provider is None:
        loaded = ", ".join(sorted(registry)) or "none"
        hint = _unavailable_hint(host, kind, provider_id)
        raise ConfigError(
            f"{settings.where}: [{kind}] provider = {provider_id!r} is not a loaded "
            f"{KIND_NAMES[kind]} provider (loaded: {loaded}){hint}"
        )
    blob = table.get(provider_id, {})
    if not isinstance(blob, Mapping):
        raise ConfigError(f"{settings.where}: [{kind}.{provider_id}] must be a table")
    where = f"[{kind}.{provider_id}] in {settings.where}"
    merged = deep_merge(getattr(provider, "default_config", {}) or {}, blob)
    config = resolve_env(
        merged, where=f"[{kind}.{provider_id}]", environ=settings.environ, file=settings.where
    )
    validate = getattr(provider, "validate_config", None)
    try:
        if validate is not None:
            validate(config)
    except VoicehostError:
        raise
    except Exception as exc:  # a provider bug must still read as a config problem
        raise ConfigError(f"{where}: {type(exc).__name__}: {exc}") from exc
    is_configured = getattr(provider, "is_configured", None)
    if is_configured is not None and not is_configured(config):
        raise ConfigError(f"{where}: {KIND_NAMES[kind]} provider {provider_id!r} is not configured")
    return ProviderChoice(kind, provider_id, provider, host.owner(kind, provider_id), config)


def _unavailable_hint(host: PluginHost, kind: str, provider_id: str) -> str:
    for record in host.records.values():
        if record.status != "loaded":
            # A disabled plugin was never imported; name it when its name suggests the id.
            short = record.name.removeprefix("voicehost-").split("-")[0]
            if short == provider_id:
                return f"; plugin {record.name} is {record.status}"
    return ""


def resolve_providers(
    settings: Settings,
    host: PluginHost,
    kinds: tuple[ProviderKind, ...] = ("stt", "tts", "responder"),
) -> RuntimeConfig:
    """Choose every provider kind in ``kinds`` (others stay None).

    Raises:
        ConfigError: the first problem found (see :func:`choose_provider`).
    """
    chosen = {kind: choose_provider(settings, host, kind) for kind in kinds}
    return RuntimeConfig(settings, chosen.get("stt"), chosen.get("tts"), chosen.get("responder"))
