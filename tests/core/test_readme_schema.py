"""The README's configuration reference is what `voicehost config schema --markdown` prints
for the installed first-party plugins, so the docs cannot drift from the config classes."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from voicehost.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"<!-- config-schema:start -->\n(.*?)\n<!-- config-schema:end -->", re.S)


def test_readme_reference_matches_config_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no plugins.toml: every installed plugin loads
    for var in ("VOICEHOST_CONFIG", "VOICEHOST_LOAD_PLUGINS", "VOICEHOST_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["config", "schema", "--markdown"])
    assert result.exit_code == 0, result.output
    found = BLOCK.search(README.read_text())
    assert found is not None, "README.md lost its config-schema markers"
    assert found.group(1).strip() == result.stdout.strip(), (
        "README.md is out of date: paste `uv run voicehost config schema --markdown` "
        "between its config-schema markers"
    )
