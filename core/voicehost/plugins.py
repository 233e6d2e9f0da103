"""Plugin discovery and loading: entry points → pluggy → provider registries.

Follows simonw/llm ``llm/plugins.py`` (entry-point group, in-process registration for tests)
and tox 4 ``src/tox/plugin/manager.py`` (blocked plugins, ``check_pending()``), with the lesson
from simonw/llm #1280: one broken plugin must not take the host down.

A plugin is a module named by an entry point in the ``voicehost`` group; its name is the
name of the distribution that declares it. Discovery reads entry-point metadata first and
imports only the plugins that the selection allows, so disabled plugins are listed without
being imported.

Selection, strongest first:

1. ``VOICEHOST_LOAD_PLUGINS`` — comma-separated distribution names; the empty string loads none.
2. ``plugins.toml`` ``[plugins]`` — ``enabled = [...]`` (only these) or ``disabled = [...]``
   (all installed but these).
3. Otherwise every installed plugin loads.

Tools (``register_tools``) are collected into :attr:`PluginHost.tools`, by name.

A plugin that raises on import, fails pluggy's validation, implements an unknown hook, raises
inside a registration hook, or registers a provider id or tool name another plugin took (or
something that is not a :class:`~voicehost.Tool` as a tool) is recorded as ``failed`` with
its error, reported in one line on stderr, and skipped. ``VOICEHOST_STRICT_PLUGINS=1`` (or
``strict=True``) turns any of these into a :class:`~voicehost.errors.PluginError`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import attrs
import pluggy
from pydantic import Field, model_validator

from voicehost import hookspecs
from voicehost.config_model import ConfigModel, parse_table
from voicehost.contracts import Tool
from voicehost.errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "voicehost"
LOAD_ENV = "VOICEHOST_LOAD_PLUGINS"
STRICT_ENV = "VOICEHOST_STRICT_PLUGINS"

#: Modules of the core distribution registered like any plugin, always on (name ``voicehost``).
BUILTIN_MODULES: tuple[str, ...] = ("voicehost.responders.builtin",)
BUILTIN_NAME = "voicehost"

Status = Literal["loaded", "disabled", "failed"]
ProviderKind = Literal["stt", "tts", "responder", "conversation", "turn"]
#: Every provider kind, in the order the host chooses them.
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("stt", "tts", "responder", "conversation", "turn")
#: The ``plugins.toml`` table that selects plugins.
PLUGINS_TABLE = "plugins"


class PluginsTable(ConfigModel):
    """The ``[plugins]`` table: which installed plugins load (give one list, not both)."""

    enabled: list[str] | None = Field(
        None, description="Only these distributions load (every other one is disabled)."
    )
    disabled: list[str] | None = Field(None, description="Every installed plugin but these.")

    @model_validator(mode="after")
    def _one_list(self) -> PluginsTable:
        if self.enabled is not None and self.disabled is not None:
            raise ValueError("give enabled = [...] or disabled = [...], not both")
        return self


#: Hook that registers each provider kind.
KIND_HOOKS: dict[ProviderKind, str] = {
    "stt": "register_transcription_providers",
    "tts": "register_speech_providers",
    "responder": "register_responders",
    "conversation": "register_conversation_providers",
    "turn": "register_turn_detectors",
}
#: What a plugin registers: a provider kind, or ``"tool"`` (``register_tools``).
RegistryKind = ProviderKind | Literal["tool"]
TOOLS_HOOK = "register_tools"

_reported: set[str] = set()


def _no_providers() -> dict[str, list[str]]:
    return {kind: [] for kind in PROVIDER_KINDS}


@attrs.define
class PluginRecord:
    """What the host knows about one installed plugin.

    Attributes:
        name: distribution name (``voicehost-deepgram-stt``).
        version: distribution version.
        entry_point: ``"<entry point name> = <module[:attr]>"``.
        status: ``loaded``, ``disabled`` (not imported) or ``failed``.
        providers: provider ids it registered, by kind (``stt``, ``tts``, ``responder``,
            ``conversation``, ``turn``).
        tools: names of the tools it registered.
        hooks: names of the hooks it implements (empty unless imported).
        error: ``"ExceptionType: message"`` for a failed plugin.
    """

    name: str
    version: str
    entry_point: str
    status: Status = "loaded"
    providers: dict[str, list[str]] = attrs.field(factory=lambda: _no_providers())
    tools: list[str] = attrs.field(factory=list)
    hooks: list[str] = attrs.field(factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``list-plugins --json`` shape documented in the README."""
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "entry_point": self.entry_point,
            "providers": {kind: sorted(ids) for kind, ids in self.providers.items()},
            "tools": sorted(self.tools),
            "hooks": sorted(self.hooks),
            "error": self.error,
        }


@attrs.frozen
class PluginSelection:
    """Which distributions may load. ``enabled=None`` means all but ``disabled``.

    Attributes:
        enabled: the only names allowed, or None.
        disabled: names never loaded.
        source: where the selection came from, for messages.
    """

    enabled: frozenset[str] | None = None
    disabled: frozenset[str] = frozenset()
    source: str = "default"

    @classmethod
    def from_config(
        cls,
        plugins_table: Mapping[str, Any] | None,
        environ: Mapping[str, str] | None = None,
        *,
        file: str = "plugins.toml",
    ) -> PluginSelection:
        """Build the selection from ``[plugins]`` and the environment override.

        Raises:
            PluginError: a key other than ``enabled``/``disabled``, one that is not a list of
                strings, or both given; the message names ``file``.
        """
        environ = os.environ if environ is None else environ
        if LOAD_ENV in environ:
            names = [n.strip() for n in environ[LOAD_ENV].split(",") if n.strip()]
            return cls(enabled=frozenset(names), source=LOAD_ENV)
        try:
            table = parse_table(PluginsTable, plugins_table or {}, table=PLUGINS_TABLE, file=file)
        except ConfigError as exc:
            raise PluginError(str(exc)) from None
        if table.enabled is not None:
            return cls(enabled=frozenset(table.enabled), source="[plugins] enabled")
        if table.disabled is not None:
            return cls(disabled=frozenset(table.disabled), source="[plugins] disabled")
        return cls()

    def allows(self, name: str) -> bool:
        """True when distribution ``name`` may load."""
        if name in self.disabled:
            return False
        return self.enabled is None or name in self.enabled


def strict_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``VOICEHOST_STRICT_PLUGINS`` is set to 1/true/yes."""
    value = (os.environ if environ is None else environ).get(STRICT_ENV, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


class PluginHost:
    """The loaded plugins and the providers they registered.

    Attributes:
        pm: the pluggy ``PluginManager`` (project ``voicehost``).
        records: one :class:`PluginRecord` per installed or registered plugin, by name.
        transcription_providers: STT providers by id.
        speech_providers: TTS providers by id.
        responders: responder providers by id.
        conversation_providers: speech-to-speech conversation providers by id.
        turn_detectors: end-of-turn detector providers by id.
        tools: tools by name (``register_tools``), for the responder (``use_tools``).
        strict: raise :class:`PluginError` instead of recording a failure.
    """

    def __init__(self, *, strict: bool = False, report: Callable[[str], None] | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.records: dict[str, PluginRecord] = {}
        self.transcription_providers: dict[str, Any] = {}
        self.speech_providers: dict[str, Any] = {}
        self.responders: dict[str, Any] = {}
        self.conversation_providers: dict[str, Any] = {}
        self.turn_detectors: dict[str, Any] = {}
        self.tools: dict[str, Tool] = {}
        self._owners: dict[tuple[RegistryKind, str], str] = {}
        self._report = report or _report_stderr

    # -- registries --------------------------------------------------------------------

    def registry(self, kind: RegistryKind) -> dict[str, Any]:
        """The id → provider mapping of ``kind`` (``"tool"``: name → tool)."""
        return {
            "stt": self.transcription_providers,
            "tts": self.speech_providers,
            "responder": self.responders,
            "conversation": self.conversation_providers,
            "turn": self.turn_detectors,
            "tool": self.tools,
        }[kind]

    def owner(self, kind: RegistryKind, provider_id: str) -> str | None:
        """The plugin name that registered provider ``provider_id`` of ``kind`` (or the tool
        named ``provider_id``, for ``"tool"``)."""
        return self._owners.get((kind, provider_id))

    # -- loading -----------------------------------------------------------------------

    def load_builtins(self) -> None:
        """Register the core distribution's own hook modules under the name ``voicehost``."""
        from voicehost import __version__

        for module_name in BUILTIN_MODULES:
            record = PluginRecord(BUILTIN_NAME, __version__, f"(builtin) {module_name}")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue  # that part of the core is not installed
                self._fail(record, exc)
                continue
            self._register(module, record)

    def load_entry_points(
        self,
        selection: PluginSelection | None = None,
        eps: Iterable[EntryPoint] | None = None,
    ) -> None:
        """Discover, select, import and register entry-point plugins.

        Args:
            selection: which distributions may load (default: all).
            eps: entry points to use instead of the installed ones (tests).

        Raises:
            PluginError: in strict mode, the first plugin that fails.
        """
        selection = selection or PluginSelection()
        found = entry_points(group=ENTRY_POINT_GROUP) if eps is None else list(eps)
        for ep in sorted(found, key=lambda e: (_dist_name(e), e.name)):
            name = _dist_name(ep)
            record = PluginRecord(
                name=name,
                version=_dist_version(ep),
                entry_point=f"{ep.name} = {ep.value}",
            )
            if name in self.records:
                duplicate = PluginError(f"{name} declares more than one voicehost entry point")
                self._fail(record, duplicate)
                continue
            if not selection.allows(name):
                record.status = "disabled"
                self.records[name] = record
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(record, exc)
                continue
            self._register(plugin, record)

    def register(self, plugin: object, name: str, version: str = "0") -> PluginRecord:
        """Register an in-process plugin (a module or object with ``@hookimpl`` methods)
        exactly as an entry point would be; used by tests and embedding applications.

        Returns:
            its record (``failed`` with an error when it did not register).
        """
        record = PluginRecord(name, version, f"(in-process) {type(plugin).__name__}")
        self._register(plugin, record)
        return record

    def _register(self, plugin: object, record: PluginRecord) -> None:
        self.records[record.name] = record
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:
            self._fail(record, exc)
            return
        try:
            # A hook implementation with no spec (a misspelled hook name) fails loudly here.
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self._fail(record, exc)
            return
        record.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        kinds: list[tuple[RegistryKind, str]] = [*KIND_HOOKS.items(), ("tool", TOOLS_HOOK)]
        for kind, hook_name in kinds:
            if not self._collect(plugin, record, kind, hook_name):
                return

    def _collect(self, plugin: object, record: PluginRecord, kind: RegistryKind, hook: str) -> bool:
        caller = getattr(self.pm.hook, hook)
        registry = self.registry(kind)
        added: list[str] = []

        def register(provider: Any) -> None:
            provider_id = _registered_id(kind, provider)
            owner = self._owners.get((kind, provider_id))
            if owner is not None or provider_id in added:
                what = "tool name" if kind == "tool" else f"{kind} provider id"
                raise PluginError(
                    f"{what} {provider_id!r} is registered by both "
                    f"{owner or record.name} and {record.name}"
                )
            added.append(provider_id)
            registry[provider_id] = provider
            self._owners[(kind, provider_id)] = record.name

        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                impl.function(register=register)
            except Exception as exc:
                for provider_id in added:
                    registry.pop(provider_id, None)
                    self._owners.pop((kind, provider_id), None)
                self._fail(record, exc)
                return False
        if kind == "tool":
            record.tools = sorted(added)
        else:
            record.providers[kind] = sorted(added)
        return True

    def _fail(self, record: PluginRecord, exc: BaseException) -> None:
        """Mark ``record`` failed, drop what it registered, report it in one line."""
        record.status = "failed"
        record.error = _error_text(exc)
        self.records[record.name] = record
        # imported here, on failure only: list-plugins must not pay for prometheus-client
        from voicehost import metrics

        metrics.count_plugin_load_failure()
        for (kind, provider_id), owner in list(self._owners.items()):
            if owner == record.name:
                self.registry(kind).pop(provider_id, None)
                del self._owners[(kind, provider_id)]
        record.providers = _no_providers()
        record.tools = []
        plugin = self.pm.get_plugin(record.name)
        if plugin is not None:
            self.pm.unregister(plugin)
        if self.strict:
            raise PluginError(f"plugin {record.name} failed: {record.error}") from exc
        self._report(f"voicehost: plugin {record.name} failed and was skipped: {record.error}")

    # -- other hooks -------------------------------------------------------------------

    def call_each(self, hook: str, **kwargs: Any) -> None:
        """Call ``hook`` on each loaded plugin separately, so one that raises is recorded
        as failed (or, strict, raises) without stopping the others."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:
                record = self.records.get(impl.plugin_name)
                if record is None:
                    raise
                self._fail(record, exc)

    def sorted_records(self) -> list[PluginRecord]:
        """Records sorted by plugin name."""
        return [self.records[name] for name in sorted(self.records)]


def _registered_id(kind: RegistryKind, item: Any) -> str:
    """The id of a provider (its ``id``) or the name of a tool a hook registered.

    Raises:
        PluginError: a provider without a string ``id``, or a tool that is not a ``Tool``.
    """
    if kind == "tool":
        if not isinstance(item, Tool):
            raise PluginError(f"register_tools takes a voicehost.Tool, not {type(item).__name__}")
        return item.name
    provider_id = getattr(item, "id", None)
    if not isinstance(provider_id, str) or not provider_id:
        raise PluginError(f"{type(item).__name__} has no string 'id'")
    return provider_id


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else ep.name


def _dist_version(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else "unknown"


def _report_stderr(line: str) -> None:
    if line not in _reported:  # the CLI may load twice (for commands, then for --config)
        _reported.add(line)
        print(line, file=sys.stderr)


def load_plugin_host(
    settings: Any | None = None,
    *,
    strict: bool | None = None,
    environ: Mapping[str, str] | None = None,
    eps: Iterable[EntryPoint] | None = None,
) -> PluginHost:
    """Load the built-in and the selected entry-point plugins.

    Args:
        settings: a :class:`voicehost.config.Settings` (its ``[plugins]`` table), or None.
        strict: fail on the first broken plugin; default from ``VOICEHOST_STRICT_PLUGINS``.
        environ: environment to read the overrides from (default ``os.environ``).
        eps: entry points to use instead of the installed ones (tests).

    Raises:
        PluginError: a malformed ``[plugins]`` table, or (strict) a broken plugin.
    """
    plugins_table = settings.raw_table(PLUGINS_TABLE) if settings is not None else None
    file = settings.where if settings is not None else "plugins.toml"
    selection = PluginSelection.from_config(plugins_table, environ, file=file)
    host = PluginHost(strict=strict_from_env(environ) if strict is None else strict)
    host.load_builtins()
    host.load_entry_points(selection, eps)
    return host
