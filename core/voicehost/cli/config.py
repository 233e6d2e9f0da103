"""``voicehost config check`` and ``voicehost config schema``."""

from __future__ import annotations

import json
import sys

import attrs
import click

from voicehost.app.assembly import CORE_TABLES, load_app_config
from voicehost.cli.list_plugins import load_host
from voicehost.cli_options import config_option
from voicehost.config import KIND_NAMES, mask_secrets
from voicehost.config_model import ConfigModel, ProviderConfig, describe
from voicehost.errors import ConfigError
from voicehost.plugins import PROVIDER_KINDS, PluginsTable

__all__ = ["config_check", "config_group", "config_schema", "schema_markdown"]


@click.group("config")
def config_group() -> None:
    """Check plugins.toml, or show every table's keys."""


@config_group.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Validate plugins.toml exactly as `voicehost serve` does at start-up (every table, every
    chosen provider); print the chosen providers and their config with secrets masked. Exit 1
    with one line per problem."""
    try:
        config = load_app_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    click.echo(f"config: {config.settings.path or '(none: built-in defaults)'}")
    runtime = config.runtime
    for choice in runtime.chosen:
        if choice is None:
            continue
        click.echo(f"[{choice.kind}] {KIND_NAMES[choice.kind]}: {choice.id} (from {choice.plugin})")
        shown = mask_secrets(choice.config.model_dump(mode="json"))
        for line in json.dumps(shown, indent=2, sort_keys=True).splitlines():
            click.echo(f"    {line}")
    for record in config.host.sorted_records():
        if record.status == "failed":
            click.echo(f"warning: plugin {record.name} failed: {record.error}", err=True)
    click.echo("ok")


@config_group.command("schema")
@click.argument("provider", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--markdown", is_flag=True, help="Print Markdown tables (the README's reference).")
@config_option
def config_schema(
    provider: str | None, as_json: bool, markdown: bool, config_path: str | None
) -> None:
    """Print every table's keys with type, default and doc: the core tables and each loaded
    provider's [<kind>.<id>] (PROVIDER: only the providers with that id)."""
    tables: list[tuple[str, type[ConfigModel]]] = []
    if provider is None:
        tables += [("plugins", PluginsTable), *CORE_TABLES.items()]
    host = load_host(config_path)
    for kind in PROVIDER_KINDS:
        for provider_id, found in sorted(host.registry(kind).items()):
            if provider is None or provider_id == provider:
                model = getattr(found, "config_class", ProviderConfig)
                tables.append((f"{kind}.{provider_id}", model))
    if not tables:
        raise click.ClickException(f"no loaded provider {provider!r}")
    if as_json:
        data = {name: [attrs.asdict(doc) for doc in describe(model)] for name, model in tables}
        click.echo(json.dumps(data, indent=2))
        return
    if markdown:
        click.echo(schema_markdown(tables))
        return
    for index, (name, model) in enumerate(tables):
        if index:
            click.echo("")
        click.echo(f"[{name}]")
        docs = describe(model)
        if not docs:
            click.echo("  (no keys)")
        for doc in docs:
            click.echo(f"  {doc.name} ({doc.type}, default {doc.default}): {doc.doc}".rstrip())


def schema_markdown(tables: list[tuple[str, type[ConfigModel]]]) -> str:
    """One Markdown table per config table: key, type, default, meaning."""
    out: list[str] = []
    for name, model in tables:
        out += [f"#### `[{name}]`", ""]
        docs = describe(model)
        if not docs:
            out += ["No keys.", ""]
            continue
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for doc in docs:
            cells = (f"`{doc.name}`", f"`{doc.type}`", f"`{doc.default}`", doc.doc)
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        out.append("")
    return "\n".join(out).rstrip()
