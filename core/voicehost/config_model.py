"""The one typed-config mechanism: every ``plugins.toml`` table is a pydantic model.

Each table — ``[server]``, ``[twilio]``, ``[records]`` and every provider's ``[stt.<id>]`` /
``[tts.<id>]`` / ``[responder.<id>]`` — is declared once as a subclass of :class:`ConfigModel`
(a provider's as a subclass of :class:`ProviderConfig`), with a type, a default, a range and a
one-line ``description`` per key::

    class BeepConfig(ProviderConfig):
        tone_hz: int = Field(660, ge=100, le=3400, description="Beep pitch, Hz (phone band).")

The host parses a table once, at start-up, with :func:`parse_table`, and hands the resulting
frozen object to the provider; nothing is re-validated per call. Models are strict (TOML's
``"500"`` is not the number 500; an int is accepted where a float is asked) and forbid unknown
keys, so a typo never falls back to a default silently. :func:`parse_table` turns pydantic's
errors into one :class:`~voicehost.errors.ConfigError` whose lines name the file, the table,
the key and the bad value, with a "did you mean" for misspelt keys; nested keys are dotted
and list positions count from 1 (``rules #2.match``). :func:`describe` lists a model's keys
for ``voicehost config schema``.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticUndefined, to_jsonable_python

from voicehost.errors import ConfigError

__all__ = [
    "ConfigModel",
    "FieldDoc",
    "ModelT",
    "ProviderConfig",
    "default_config",
    "describe",
    "did_you_mean",
    "env_field",
    "env_reference",
    "field_defaults",
    "parse_table",
    "problem_lines",
]

ModelT = TypeVar("ModelT", bound="ConfigModel")


class ConfigModel(BaseModel):
    """Base of every typed config table: strict types, unknown keys refused, no ``inf`` or
    ``nan`` floats, frozen.

    Declare keys as annotated fields with ``pydantic.Field(default, description=..., ge=...,
    le=...)``; cross-key rules go in a ``@model_validator(mode="after")`` raising
    ``ValueError("<key> ...")``.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ProviderConfig(ConfigModel):
    """Base of a provider's config class (``config_class`` on the provider).

    The ``[<kind>.<id>]`` table is parsed into it once at start-up; ``${VAR}`` references in
    the table, and the environment variable of each key declared with :func:`env_field`
    (``api_key: str = env_field("VENDOR_API_KEY")``) that the table leaves out, are resolved
    before parsing. A provider with no keys keeps this empty class: any key is then refused.
    """


@attrs.frozen
class FieldDoc:
    """One key of a config table, for ``voicehost config schema`` and the README.

    Attributes:
        name: the key.
        type: its type as written in Python (``int``, ``list[str]``, ``str | None``).
        default: its default as TOML-ish text (``660``, ``"nova-3"``, ``[]``), or
            ``(required)``.
        doc: the one-line description, with the range when there is one.
    """

    name: str
    type: str
    default: str
    doc: str


def env_field(var: str, *, required: bool = True, description: str = "", **kwargs: Any) -> Any:
    """A string key whose default comes from environment variable ``var`` (an API key, an auth
    token): ``api_key: str = env_field("DEEPGRAM_API_KEY", description=...)``.

    When the table leaves the key out, the host reads ``${var}``: unset, a ``required`` key is
    a start-up error naming the variable and the key; an optional one is ``""``. Built
    directly (``MyConfig()``, tests) the default is ``""``; the environment is never read
    then.

    Args:
        var: the environment variable.
        required: whether an unset variable is an error.
        description: the key's one-line doc.
        kwargs: more ``pydantic.Field`` arguments.
    """
    extra = {"env": var, "env_required": required}
    return Field("", description=description, json_schema_extra=extra, **kwargs)


def env_reference(model: type[ConfigModel], name: str) -> str | None:
    """``"${VAR}"`` (``"${VAR:-}"`` when optional) for a key declared with :func:`env_field`,
    else None."""
    extra = model.model_fields[name].json_schema_extra
    if not isinstance(extra, dict) or not isinstance(extra.get("env"), str):
        return None
    return f"${{{extra['env']}}}" if extra.get("env_required") else f"${{{extra['env']}:-}}"


def default_config(provider: object | None) -> ProviderConfig:
    """``provider``'s config class with every default (a plain :class:`ProviderConfig` for
    None or a provider without one): what a provider gets when embedding code gives none.

    Raises:
        pydantic.ValidationError: the class has required keys.
    """
    model = getattr(provider, "config_class", ProviderConfig)
    return model()


def field_defaults(model: type[ConfigModel]) -> dict[str, Any]:
    """The defaults of ``model``'s keys that have one, as plain data (``${VAR}`` kept)."""
    defaults: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.default is not PydanticUndefined:
            defaults[name] = _plain(field.default)
        elif field.default_factory is not None:
            defaults[name] = _plain(field.default_factory())  # type: ignore[call-arg]
    return defaults


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):  # a nested table: the keys it sets
        return value.model_dump(mode="json", exclude_none=True)
    return to_jsonable_python(value)


def describe(model: type[ConfigModel]) -> list[FieldDoc]:
    """Every key of ``model`` with its type, default and doc, in declaration order."""
    defaults = field_defaults(model)
    docs = []
    for name, field in model.model_fields.items():
        limits = [
            f"{label} {getattr(meta, attr)}"
            for meta in field.metadata
            for attr, label in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
            if getattr(meta, attr, None) is not None
        ]
        doc = field.description or ""
        if limits:
            doc = f"{doc} ({', '.join(limits)})" if doc else ", ".join(limits)
        default = env_reference(model, name) or (
            _shown(defaults[name]) if name in defaults else "(required)"
        )
        docs.append(FieldDoc(name, _type_name(field.annotation), default, doc))
    return docs


def _shown(value: Any) -> str:
    """A default as TOML-ish JSON text; a long list or table as its size."""
    text = json.dumps(value)
    if len(text) <= 80 or isinstance(value, str):
        return text
    return f"[{len(value)} items]" if isinstance(value, list) else "{…}"


def _type_name(annotation: Any) -> str:
    """``int``, ``list[str]``, ``int | None``, ``"a" | "b"`` for a type annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\btyping\.|\bcollections\.abc\.", "", str(annotation))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_table(
    model: type[ModelT], data: Mapping[str, Any], *, table: str, file: str = "plugins.toml"
) -> ModelT:
    """Parse one table into ``model``.

    Args:
        model: the table's config class.
        data: the table as read from TOML (``${VAR}`` already resolved).
        table: its name for messages, without brackets (``"server"``, ``"stt.deepgram"``).
        file: the config file for messages.

    Raises:
        ConfigError: every problem found, one line each (see :func:`problem_lines`);
            ``problems`` holds the lines.
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        lines = problem_lines(exc, model, table=table, file=file)
        raise ConfigError("\n".join(lines), problems=lines) from None


def problem_lines(
    exc: ValidationError, model: type[ConfigModel], *, table: str, file: str
) -> list[str]:
    """One ``"<file>: [<table>] <key>: <problem>"`` line per error in ``exc``."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if part != "__root__"]
        key = _key_path(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            choices = _fields_at(model, loc[:-1])
            problem = f"unknown key{did_you_mean(str(loc[-1]), choices)}"
        elif kind == "missing":
            problem = "is required"
        else:
            problem = _message(error["msg"])
            # our validators name the value; pydantic's length messages give the length
            own_text = kind in ("value_error", "assertion_error", "too_short", "too_long")
            if "input" in error and not own_text and not isinstance(error["input"], Mapping):
                problem += f", not {error['input']!r}"
        where = f"[{table}] {key}: " if key else f"[{table}]: "
        lines.append(f"{file}: {where}{problem}")
    return lines


def _fields_at(model: type[BaseModel], path: list[Any]) -> list[str]:
    """The keys of the nested table at ``path`` inside ``model`` (through nested models and
    lists of them), or ``[]`` when it is not a model."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = field.annotation
        while typing.get_origin(current) in (list, typing.Union, types.UnionType):
            current = next((a for a in typing.get_args(current) if a is not type(None)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _key_path(loc: list[Any]) -> str:
    """``settings.speed``, ``rules #2.match``: nested keys joined by dots, list positions
    counted from 1."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f" #{part + 1}"
        elif isinstance(part, str) and not part.startswith(("function-", "tagged-union[")):
            text += f".{part}" if text else part
    return text


def _message(msg: str) -> str:
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    msg = msg.replace("Input should be", "must be").replace("input should be", "must be")
    return msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg
