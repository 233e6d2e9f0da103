"""Choosing each kind's provider from ``[stt]`` / ``[tts]`` / ``[responder]`` /
``[conversation]`` / ``[turn]`` and parsing its ``[<kind>.<id>]`` table into the provider's
``config_class``.

``[conversation]`` has no default: only when its ``provider`` is set is a speech-to-speech
provider chosen, and it then replaces the STT, TTS and responder (those stay None; their
tables are still checked for typos, not used).

``[turn]`` (the end-of-turn detector) has no default either: it is chosen only when its
``provider`` is set, whether or not ``[conversation]`` is (it only serves the STT pipeline)."""

from __future__ import annotations

from typing import Any

import attrs

from voicehost.config.document import Settings
from voicehost.config.tables import parse_settings_table
from voicehost.config_model import ProviderConfig, did_you_mean
from voicehost.contracts.conversation import ConversationConfig
from voicehost.contracts.turns import TurnConfig
from voicehost.errors import ConfigError
from voicehost.plugins import PROVIDER_KINDS, PluginHost, ProviderKind

__all__ = [
    "DEFAULT_PROVIDERS",
    "KIND_NAMES",
    "ProviderChoice",
    "RuntimeConfig",
    "choose_provider",
    "resolve_providers",
]

#: Providers used when ``plugins.toml`` names none: the embedded offline default.
DEFAULT_PROVIDERS: dict[ProviderKind, str] = {
    "stt": "whisper",
    "tts": "piper",
    "responder": "scripted",
}

KIND_NAMES: dict[ProviderKind, str] = {
    "stt": "speech-to-text",
    "tts": "text-to-speech",
    "responder": "responder",
    "conversation": "speech-to-speech conversation",
    "turn": "end-of-turn detector",
}
#: The kinds a ``[conversation]`` provider replaces.
PIPELINE_KINDS: tuple[ProviderKind, ...] = ("stt", "tts", "responder")


@attrs.frozen
class ProviderChoice:
    """The provider chosen for one kind, with its parsed config.

    Attributes:
        kind: ``stt``, ``tts``, ``responder``, ``conversation`` or ``turn``.
        id: the provider id.
        provider: the provider object its plugin registered.
        plugin: the plugin (distribution) that registered it.
        config: its ``[<kind>.<id>]`` table parsed into ``provider.config_class``.
    """

    kind: ProviderKind
    id: str
    provider: Any
    plugin: str | None
    config: ProviderConfig


@attrs.frozen
class RuntimeConfig:
    """The settings and the chosen providers (None for a kind not asked for; with a
    ``conversation`` provider, ``stt``, ``tts`` and ``responder`` are None; ``turn`` is None
    unless ``[turn] provider`` is set)."""

    settings: Settings
    stt: ProviderChoice | None
    tts: ProviderChoice | None
    responder: ProviderChoice | None
    conversation: ProviderChoice | None = None
    turn: ProviderChoice | None = None

    @property
    def chosen(self) -> tuple[ProviderChoice, ...]:
        """The chosen providers, in kind order."""
        choices = (self.stt, self.tts, self.responder, self.conversation, self.turn)
        return tuple(choice for choice in choices if choice is not None)


def kind_table_problems(settings: Settings, host: PluginHost, kind: ProviderKind) -> list[str]:
    """What is wrong with the keys of ``[<kind>]`` itself: anything but ``provider`` and
    tables named by a loaded provider id of that kind (a table named like a disabled or failed
    plugin is left alone: its provider cannot be checked)."""
    where = settings.where
    problems = []
    registry = host.registry(kind)
    for key, value in settings.raw_table(kind).items():
        if key == "provider":
            continue
        if not isinstance(value, dict):
            problems.append(
                f"{where}: [{kind}] {key}: unknown key{did_you_mean(key, ['provider'])}"
            )
        elif key not in registry and not _unavailable_hint(host, key):
            loaded = ", ".join(sorted(registry)) or "none"
            problems.append(
                f"{where}: [{kind}.{key}]: no loaded {KIND_NAMES[kind]} provider {key!r}"
                f"{did_you_mean(key, registry)} (loaded: {loaded})"
            )
    return problems


def choose_provider(settings: Settings, host: PluginHost, kind: ProviderKind) -> ProviderChoice:
    """Resolve ``[<kind>] provider`` against the loaded plugins and parse its table.

    Raises:
        ConfigError: an unknown provider id (the message lists the loaded ids), a table of
            the wrong type, an unset variable the config needs, every problem its config
            class finds, or its ``is_configured`` refusing it.
    """
    table = settings.raw_table(kind)
    provider_id = table.get("provider", DEFAULT_PROVIDERS.get(kind))
    if not isinstance(provider_id, str) or not provider_id:
        raise ConfigError(
            f"{settings.where}: [{kind}] provider must be a provider id string, not {provider_id!r}"
        )
    registry = host.registry(kind)
    provider = registry.get(provider_id)
    if provider is None:
        loaded = ", ".join(sorted(registry)) or "none"
        hint = _unavailable_hint(host, provider_id) or did_you_mean(provider_id, registry)
        raise ConfigError(
            f"{settings.where}: [{kind}] provider = {provider_id!r} is not a loaded "
            f"{KIND_NAMES[kind]} provider (loaded: {loaded}){hint}"
        )
    config_class = getattr(provider, "config_class", ProviderConfig)
    if kind == "conversation" and not issubclass(config_class, ConversationConfig):
        raise ConfigError(
            f"{settings.where}: [{kind}] provider {provider_id!r}: its config_class "
            f"{config_class.__name__} must subclass voicehost.ConversationConfig"
        )
    if kind == "turn" and not issubclass(config_class, TurnConfig):
        raise ConfigError(
            f"{settings.where}: [{kind}] provider {provider_id!r}: its config_class "
            f"{config_class.__name__} must subclass voicehost.TurnConfig"
        )
    config = parse_settings_table(settings, config_class, kind, provider_id)
    if not provider.is_configured(config):
        raise ConfigError(
            f"{settings.where}: [{kind}.{provider_id}]: {KIND_NAMES[kind]} provider "
            f"{provider_id!r} is not configured"
        )
    return ProviderChoice(kind, provider_id, provider, host.owner(kind, provider_id), config)


def _unavailable_hint(host: PluginHost, provider_id: str) -> str:
    """``"; plugin X is disabled"`` when a plugin that was not loaded is named like
    ``provider_id`` (a disabled plugin was never imported, so its ids are unknown)."""
    for record in host.records.values():
        if record.status != "loaded":
            short = record.name.removeprefix("voicehost-").split("-")[0]
            if short == provider_id:
                return f"; plugin {record.name} is {record.status}"
    return ""


def resolve_providers(
    settings: Settings,
    host: PluginHost,
    kinds: tuple[ProviderKind, ...] = PROVIDER_KINDS,
) -> RuntimeConfig:
    """Choose every provider kind in ``kinds`` (others stay None). ``conversation`` is
    chosen only when ``[conversation] provider`` is set, and then the pipeline kinds
    (``stt``, ``tts``, ``responder``) are not. ``turn`` is chosen only when ``[turn]
    provider`` is set.

    Raises:
        ConfigError: every problem found in those kinds' tables, one line each.
    """
    chosen: dict[str, ProviderChoice] = {}
    problems: list[str] = []
    speech_to_speech = "conversation" in kinds and "provider" in settings.raw_table("conversation")
    for kind in kinds:
        problems += kind_table_problems(settings, host, kind)
        if kind == "conversation" and not speech_to_speech:
            continue
        if kind == "turn" and "provider" not in settings.raw_table("turn"):
            continue
        if kind in PIPELINE_KINDS and speech_to_speech:
            continue
        try:
            chosen[kind] = choose_provider(settings, host, kind)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("\n".join(problems), problems=problems)
    return RuntimeConfig(
        settings,
        chosen.get("stt"),
        chosen.get("tts"),
        chosen.get("responder"),
        chosen.get("conversation"),
        chosen.get("turn"),
    )
