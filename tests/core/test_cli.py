"""The CLI: --version, list-plugins (text and --json), config check."""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from voicehost.cli import cli

from .conftest import GOOD_PLUGIN

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "voicehost-example-tts"


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in ("VOICEHOST_CONFIG", "VOICEHOST_LOAD_PLUGINS", "VOICEHOST_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def by_name(output: str) -> dict[str, dict]:
    return {entry["name"]: entry for entry in json.loads(output)}


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"voicehost, version {version('voicehost')}"


def test_list_plugins_json_schema_and_order(runner, make_dist):
    make_dist("vh-cli-good", GOOD_PLUGIN, tts_id="clitts", stt_id="clistt")
    make_dist("vh-cli-broken", "raise ImportError('no such vendor sdk')")
    result = runner.invoke(cli, ["list-plugins", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    names = [e["name"] for e in entries]
    assert names == sorted(names)
    good = by_name(result.stdout)["vh-cli-good"]
    assert set(good) == {"name", "version", "status", "entry_point", "providers", "hooks", "error"}
    assert good["status"] == "loaded"
    assert good["providers"]["stt"] == ["clistt"]
    assert good["providers"]["tts"] == ["clitts"]
    assert good["entry_point"].startswith("vh-cli-good = vh_fake_vh_cli_good")
    broken = by_name(result.stdout)["vh-cli-broken"]
    assert broken["status"] == "failed"
    assert broken["error"] == "ImportError: no such vendor sdk"
    # First-party plugins are found through their real entry points too.
    assert "voicehost-deepgram-stt" in names


def test_list_plugins_text_table(runner, make_dist, monkeypatch):
    make_dist("vh-cli-good", GOOD_PLUGIN, tts_id="clitts", stt_id="clistt")
    make_dist("vh-cli-off", GOOD_PLUGIN, tts_id="offtts", stt_id="offstt")
    Path("plugins.toml").write_text('[plugins]\ndisabled = ["vh-cli-off"]\n')
    result = runner.invoke(cli, ["list-plugins"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PLUGIN", "VERSION", "STATUS", "STT", "TTS", "RESPONDERS", "ERROR"]
    good = next(line for line in lines if line.startswith("vh-cli-good"))
    assert good.split()[:5] == ["vh-cli-good", "1.0", "loaded", "clistt", "clitts"]
    off = next(line for line in lines if line.startswith("vh-cli-off"))
    assert off.split()[:3] == ["vh-cli-off", "1.0", "disabled"]


def test_list_plugins_env_override(runner, make_dist, monkeypatch):
    make_dist("vh-cli-good", GOOD_PLUGIN, tts_id="clitts", stt_id="clistt")
    monkeypatch.setenv("VOICEHOST_LOAD_PLUGINS", "")
    result = runner.invoke(cli, ["list-plugins", "--json"])
    statuses = {e["name"]: e["status"] for e in json.loads(result.stdout)}
    assert statuses["vh-cli-good"] == "disabled"
    assert statuses["voicehost-deepgram-stt"] == "disabled"


def test_config_check_ok_masks_secrets(runner, make_dist, monkeypatch):
    make_dist("vh-cli-good", GOOD_PLUGIN, tts_id="clitts", stt_id="clistt")
    monkeypatch.setenv("VH_CLI_SECRET", "sk-live-0123456789WXYZ")
    Path("plugins.toml").write_text(
        '[stt]\nprovider = "clistt"\n[stt.clistt]\napi_key = "${VH_CLI_SECRET}"\n'
        '[tts]\nprovider = "clitts"\n[responder]\nprovider = "scripted"\n'
    )
    result = runner.invoke(cli, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "clistt (from vh-cli-good)" in result.stdout
    assert '"api_key": "***WXYZ"' in result.stdout
    assert "sk-live" not in result.output


def test_config_check_fails_with_clear_messages(runner, make_dist):
    make_dist("vh-cli-good", GOOD_PLUGIN, tts_id="clitts", stt_id="clistt")
    Path("vh.toml").write_text(
        '[stt]\nprovider = "nosuch"\n[tts]\nprovider = "clitts"\n'
        '[tts.clitts]\nkey = "${VH_CLI_UNSET_VAR}"\n'
    )
    result = runner.invoke(cli, ["config", "check", "--config", "vh.toml"])
    assert result.exit_code == 1
    assert "'nosuch' is not a loaded speech-to-text provider" in result.stderr
    assert "clistt" in result.stderr  # the loaded ids are listed
    assert "VH_CLI_UNSET_VAR is not set" in result.stderr


def test_config_check_missing_file_and_bad_toml(runner):
    result = runner.invoke(cli, ["config", "check", "--config", "nope.toml"])
    assert result.exit_code == 1
    assert "nope.toml does not exist" in result.output
    Path("bad.toml").write_text("[stt")
    result = runner.invoke(cli, ["config", "check", "--config", "bad.toml"])
    assert result.exit_code == 1
    assert "not valid TOML" in result.output


def test_example_third_party_plugin_through_its_real_entry_point(runner, tmp_path, monkeypatch):
    """Install examples/voicehost-example-tts the way a wheel would (its declared entry
    point, its package on sys.path), then see it in list-plugins --json."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "example-site"
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    eps = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["voicehost"].items())
    (info / "entry_points.txt").write_text("[voicehost]\n" + eps)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    result = runner.invoke(cli, ["list-plugins", "--json"])
    assert result.exit_code == 0, result.output
    entry = by_name(result.stdout)["voicehost-example-tts"]
    assert entry["status"] == "loaded", entry
    assert entry["providers"]["tts"] == ["beep"]
    assert entry["hooks"] == ["register_speech_providers"]


COMMAND_PLUGIN = """
import click
from voicehost import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command(name="vh-hello")
    def hello():
        click.echo("hello from a plugin")
"""


def test_plugin_registers_a_command(runner, make_dist):
    from voicehost.cli import _register_plugin_commands

    make_dist("vh-cli-cmd", COMMAND_PLUGIN)
    try:
        _register_plugin_commands()
        result = runner.invoke(cli, ["vh-hello"])
        assert result.exit_code == 0, result.output
        assert result.output == "hello from a plugin\n"
    finally:
        cli.commands.pop("vh-hello", None)


def test_example_plugin_speaks_a_beep_per_word():
    import sys

    sys.path.insert(0, str(EXAMPLE))
    try:
        from voicehost_example_tts import BeepSpeechProvider
    finally:
        sys.path.remove(str(EXAMPLE))

    async def collect():
        provider = BeepSpeechProvider()
        return [c async for c in provider.synthesize("one two three", provider.default_config)]

    import asyncio

    chunks = asyncio.run(collect())
    assert len(chunks) == 3
    assert all(len(c) == 8000 * (120 + 80) // 1000 for c in chunks)
    beep_bytes = 8000 * 120 // 1000
    assert chunks[0][beep_bytes:] == b"\xff" * (8000 * 80 // 1000)  # the gap is μ-law silence
    assert len(set(chunks[0][:beep_bytes])) > 10  # the beep is a tone, not silence
