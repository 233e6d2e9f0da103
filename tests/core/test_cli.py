"""The CLI: --version, list-plugins (text and --json), config check, config schema, lazy
commands and plugin commands."""

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
    assert set(good) == {
        "name", "version", "status", "entry_point", "providers", "tools", "hooks", "error"
    }  # fmt: skip
    assert good["tools"] == []
    assert good["status"] == "loaded"
    assert good["providers"]["stt"] == ["clistt"]
    assert good["providers"]["tts"] == ["clitts"]
    assert set(good["providers"]) == {"stt", "tts", "responder", "conversation", "turn"}
    assert good["providers"]["turn"] == []
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
    header = [
        "PLUGIN", "VERSION", "STATUS", "STT", "TTS", "RESPONDERS", "CONVERSATION", "TURN", "TOOLS",
        "ERROR",
    ]  # fmt: skip
    assert lines[0].split() == header
    good = next(line for line in lines if line.startswith("vh-cli-good"))
    assert good.split()[:9] == [
        "vh-cli-good", "1.0", "loaded", "clistt", "clitts", "-", "-", "-", "-"
    ]  # fmt: skip
    off = next(line for line in lines if line.startswith("vh-cli-off"))
    assert off.split()[:3] == ["vh-cli-off", "1.0", "disabled"]


def test_list_plugins_env_override(runner, make_dist, monkeypatch):
    make_dist("vh-cli-good", GOOD_PLUGIN, tts_id="clitts", stt_id="clistt")
    monkeypatch.setenv("VOICEHOST_LOAD_PLUGINS", "")
    result = runner.invoke(cli, ["list-plugins", "--json"])
    statuses = {e["name"]: e["status"] for e in json.loads(result.stdout)}
    assert statuses["vh-cli-good"] == "disabled"
    assert statuses["voicehost-deepgram-stt"] == "disabled"


KEYED_PLUGIN = """
from voicehost import Field, ProviderConfig, SpeechProvider, TranscriptionProvider, hookimpl

class KeyedConfig(ProviderConfig):
    api_key: str = Field("", description="The vendor key.")
    model: str = Field("m1", description="Which model.")

class Tts(SpeechProvider):
    id = "clitts"
    async def synthesize(self, text, config):
        yield b"\\xff" * 160

class Stt(TranscriptionProvider):
    id = "clistt"
    config_class = KeyedConfig
    def create_session(self, request):
        raise NotImplementedError

@hookimpl
def register_speech_providers(register):
    register(Tts())

@hookimpl
def register_transcription_providers(register):
    register(Stt())
"""


def test_config_check_ok_masks_secrets(runner, make_dist, monkeypatch):
    make_dist("vh-cli-good", KEYED_PLUGIN)
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
    make_dist("vh-cli-good", KEYED_PLUGIN)
    Path("vh.toml").write_text(
        '[stt]\nprovider = "nosuch"\n[tts]\nprovider = "clitts"\n'
        '[tts.clitts]\nkey = "${VH_CLI_UNSET_VAR}"\n'
    )
    result = runner.invoke(cli, ["config", "check", "--config", "vh.toml"])
    assert result.exit_code == 1
    assert "'nosuch' is not a loaded speech-to-text provider" in result.stderr
    assert "clistt" in result.stderr  # the loaded ids are listed
    assert "VH_CLI_UNSET_VAR is not set" in result.stderr


def test_config_schema_lists_core_tables_and_provider_keys(runner, make_dist):
    make_dist("vh-cli-good", KEYED_PLUGIN)
    result = runner.invoke(cli, ["config", "schema"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "[server]" in text and "[twilio]" in text and "[records]" in text
    assert "  pre_start_timeout_ms (int, default 5000): " in text
    assert '[stt.clistt]\n  api_key (str, default ""): The vendor key.' in text
    assert "[tts.clitts]\n  (no keys)" in text
    one = runner.invoke(cli, ["config", "schema", "clistt", "--json"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout) == {
        "stt.clistt": [
            {"name": "api_key", "type": "str", "default": '""', "doc": "The vendor key."},
            {"name": "model", "type": "str", "default": '"m1"', "doc": "Which model."},
        ]
    }
    missing = runner.invoke(cli, ["config", "schema", "nosuch"])
    assert missing.exit_code == 1 and "no loaded provider 'nosuch'" in missing.output


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
    make_dist("vh-cli-cmd", COMMAND_PLUGIN)
    try:
        result = runner.invoke(cli, ["vh-hello"])  # not built in: the plugins are loaded
        assert result.exit_code == 0, result.output
        assert result.output == "hello from a plugin\n"
    finally:
        cli.commands.pop("vh-hello", None)
        cli._plugins_loaded = False  # type: ignore[attr-defined]


def test_unknown_command_is_a_usage_error(runner):
    result = runner.invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output
    cli._plugins_loaded = False  # type: ignore[attr-defined]


LAZY_PROBE = """
import sys
from click.testing import CliRunner
from voicehost.cli import cli
args = sys.argv[1:]
result = CliRunner().invoke(cli, args)
assert result.exit_code == 0, result.output
heavy = [m for m in ("voicehost.server", "voicehost.plugins", "pydantic", "voicehost_whisper_stt",
         "voicehost_piper_tts",
         "voicehost_deepgram_stt", "deepgram", "openai", "elevenlabs", "faster_whisper",
         "piper", "numpy", "aiohttp") if m in sys.modules]
print(",".join(heavy))
"""


@pytest.mark.parametrize("args", [["--help"], ["calls", "list", "--db", "none.db"]])
def test_help_and_calls_import_no_plugin_sdk_or_server(tmp_path, args):
    """`voicehost --help` and `calls list` import no plugin, vendor SDK, model or server (nor
    the plugin host or pydantic: with no [records] table there is nothing to parse)."""
    import subprocess
    import sys

    if args[0] == "calls":  # an empty records database, so the command succeeds
        from voicehost.records import CallStore

        CallStore(tmp_path / "none.db").close()
    done = subprocess.run(
        [sys.executable, "-c", LAZY_PROBE, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
