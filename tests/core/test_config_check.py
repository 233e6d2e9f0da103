"""`voicehost config check` runs exactly the validation `voicehost serve` runs: on each broken
file both exit 1 with the same message, naming the file, the table, the key and the bad value;
`serve` never gets as far as listening."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from voicehost.app import serve as serve_module
from voicehost.cli import cli

#: (a broken plugins.toml, a line both commands must print). Built-in providers only: the
#: whisper/piper defaults, the scripted and webhook responders, deepgram for env variables.
BROKEN: list[tuple[str, str]] = [
    (
        '[server]\nwebhok_path = "/x"',
        "[server] webhok_path: unknown key (did you mean 'webhook_path'?)",
    ),
    ('[records]\npth = "x.db"', "[records] pth: unknown key (did you mean 'path'?)"),
    (
        '[twilio]\nauth_tokn = "x"',
        "[twilio] auth_tokn: unknown key (did you mean 'auth_token'?)",
    ),
    (
        "[server]\npre_start_timeout_ms = -5",
        "[server] pre_start_timeout_ms: must be greater than 0, not -5",
    ),
    (
        '[stt]\nprovder = "deepgram"',
        "[stt] provder: unknown key (did you mean 'provider'?)",
    ),
    (
        '[responder.scriptd]\ngreeting = "Hi"',
        "[responder.scriptd]: no loaded responder provider 'scriptd' (did you mean 'scripted'?)",
    ),
    ("[sever]\ngreeting = 'x'", "unknown table [sever] (did you mean 'server'?)"),
    (
        '[server]\npublic_url = "ftp://example.com"',
        "[server] public_url: must be an http(s) URL, not 'ftp://example.com'",
    ),
    ('[server]\nbarge_in = "yes"', "[server] barge_in: must be a valid boolean, not 'yes'"),
    ("[server]\nmax_connections = 0", "[server] max_connections: must be greater than 0, not 0"),
    ("[server]\ngreeting = 5", "[server] greeting: must be a valid string, not 5"),
    ("[records]\nenabled = 1", "[records] enabled: must be a valid boolean, not 1"),
    (
        '[twilio]\nskip_signature_verification = "true"',
        "[twilio] skip_signature_verification: must be a valid boolean, not 'true'",
    ),
    (
        '[tts]\nprovider = "nosuch"',
        "[tts] provider = 'nosuch' is not a loaded text-to-speech provider",
    ),
    (
        '[[responder.scripted.rules]]\nmatch = "("\nreply = "x"',
        "[responder.scripted] rules #1.match: not a valid regular expression",
    ),
    (
        '[[responder.scripted.rules]]\nmatch = "hi"\nreply = "Hello"\n'
        '[[responder.scripted.rules]]\nmatch = "bye"',
        "[responder.scripted] rules #2: needs a reply, a send_dtmf, a transfer or hangup = true",
    ),
    (
        '[responder.scripted]\nfallbak = "Pardon?"',
        "[responder.scripted] fallbak: unknown key (did you mean 'fallback'?)",
    ),
    ('[responder]\nprovider = "webhook"', "[responder.webhook] url: is required"),
    (
        '[responder]\nprovider = "webhook"\n[responder.webhook]\nurl = "/turn"',
        "[responder.webhook] url: must be an http(s):// URL, not '/turn'",
    ),
    (
        '[responder]\nprovider = "webhook"\n[responder.webhook]\n'
        'url = "http://127.0.0.1:9/turn"\ntimeout_s = -1',
        "[responder.webhook] timeout_s: must be greater than 0, not -1",
    ),
    ('[plugins]\nenabled = "voicehost-whisper-stt"', "[plugins] enabled: must be a valid list"),
    (
        '[plugins]\nenabled = ["a"]\ndisabled = ["b"]',
        "[plugins]: give enabled = [...] or disabled = [...], not both",
    ),
    (
        '[stt]\nprovider = "deepgram"',
        "environment variable DEEPGRAM_API_KEY is not set (needed by [stt.deepgram] api_key",
    ),
    (
        '[stt.whisper]\nmodle = "tiny.en"',
        "[stt.whisper] modle: unknown key (did you mean 'model'?)",
    ),
    ("[stt\nprovider = 1", "is not valid TOML"),
    (  # the responder's own check, run when it is made: a tool no plugin registered
        '[responder]\nprovider = "openai"\n[responder.openai]\napi_key = ""\n'
        'base_url = "http://127.0.0.1:9/v1"\ntools = ["hangup", "book_table"]',
        "book_table",
    ),
]


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in (
        "VOICEHOST_CONFIG",
        "VOICEHOST_LOAD_PLUGINS",
        "VOICEHOST_STRICT_PLUGINS",
        "DEEPGRAM_API_KEY",
        "TWILIO_AUTH_TOKEN",
        "VOICEHOST_PUBLIC_URL",
    ):
        monkeypatch.delenv(var, raising=False)

    def never(*_args, **_kwargs):
        raise AssertionError("serve started listening on a broken config")

    monkeypatch.setattr(serve_module, "run_app", never)
    monkeypatch.setattr(serve_module, "preload_providers", never)
    return CliRunner()


@pytest.mark.parametrize(("toml", "message"), BROKEN, ids=[m[:40] for _, m in BROKEN])
def test_config_check_and_serve_refuse_the_same_broken_file(runner, toml, message):
    path = Path("broken.toml")
    path.write_text(textwrap.dedent(toml) + "\n")
    check = runner.invoke(cli, ["config", "check", "--config", str(path)])
    assert check.exit_code == 1, check.output
    assert message in check.stderr
    assert "broken.toml" in check.stderr  # every message names the file
    served = runner.invoke(cli, ["serve", "--port", "0", "--config", str(path)])
    assert served.exit_code == 1, served.output
    assert message in served.stderr
    assert "Traceback" not in check.output + served.output


def test_every_problem_is_reported_at_once(runner):
    Path("many.toml").write_text(
        '[sever]\nx = 1\n[server]\nbarge_in = "no"\n[records]\npth = "a.db"\n'
        '[stt]\nprovder = "whisper"\n'
    )
    check = runner.invoke(cli, ["config", "check", "--config", "many.toml"])
    assert check.exit_code == 1
    errors = [line for line in check.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, check.stderr
    served = runner.invoke(cli, ["serve", "--config", "many.toml"])
    assert served.exit_code == 1
    for line in errors:
        assert line.removeprefix("error: ") in served.stderr


def test_the_shipped_plugins_toml_passes_both(runner, monkeypatch):
    shipped = Path(__file__).resolve().parents[2] / "plugins.toml"
    check = runner.invoke(cli, ["config", "check", "--config", str(shipped)])
    assert check.exit_code == 0, check.output
    assert check.stdout.rstrip().endswith("ok")


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_refuses_a_bad_port_cleanly(runner, port):
    served = runner.invoke(cli, ["serve", "--port", port])
    assert served.exit_code == 2
    assert "Invalid value for '--port'" in served.output
    assert "Traceback" not in served.output


def test_serve_with_a_token_on_a_public_address_needs_a_public_url(runner, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret-token-123")
    served = runner.invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert served.exit_code == 1
    assert "without a public URL" in served.stderr
    assert "--public-url" in served.stderr and "VOICEHOST_PUBLIC_URL" in served.stderr
    bad = runner.invoke(cli, ["serve", "--public-url", "voice.example.com", "--port", "0"])
    assert bad.exit_code == 1
    assert "--public-url must be an http(s) URL, not 'voice.example.com'" in bad.stderr


def test_serve_prints_the_webhook_url_to_paste_into_twilio(runner, monkeypatch):
    async def fake_run_app(app, host, port, *, stop=None, ready=None):
        ready(43210)  # what run_app does once listening

    monkeypatch.setattr(serve_module, "run_app", fake_run_app)
    monkeypatch.setattr(serve_module, "preload_providers", lambda *_a, **_k: None)
    Path("p.toml").write_text('[stt]\nprovider = "whisper"\n')
    derived = runner.invoke(cli, ["serve", "--port", "0", "--config", "p.toml"])
    assert derived.exit_code == 0, derived.output
    assert "Twilio voice webhook (POST): http://127.0.0.1:43210/voice/webhook" in derived.stderr
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret-token-123")
    monkeypatch.setenv("VOICEHOST_PUBLIC_URL", "https://voice.example.com/")
    public = runner.invoke(cli, ["serve", "--host", "0.0.0.0", "--config", "p.toml"])
    assert public.exit_code == 0, public.output
    assert "Twilio voice webhook (POST): https://voice.example.com/voice/webhook" in public.stderr
