"""``voicehost serve`` as a user runs it: a subprocess with a plugins.toml, the fake providers
installed as a real entry-point plugin, answering simulated calls; SIGTERM drains."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from voicehost.app.serve import check_bind
from voicehost.cli import cli
from voicehost.errors import ConfigError
from voicehost.server import TwilioSettings
from voicehost.server.settings import is_loopback
from voicehost.testing.providers import tone
from voicehost.testing.twilio import TwilioSimulator, random_sid

TOKEN = "serve-test-token-123"
PUBLIC = "https://bot.example.test"

PLUGIN = """
from voicehost.testing.providers import FakeProvidersPlugin

plugin = FakeProvidersPlugin()
"""


def _install_fake_plugin(root: Path) -> None:
    """A distribution ``voicehost-test-fakes`` with a ``voicehost`` entry point."""
    (root / "voicehost_test_fakes_plugin.py").write_text(PLUGIN)
    info = root / "voicehost_test_fakes-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: voicehost-test-fakes\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[voicehost]\nfakes = voicehost_test_fakes_plugin:plugin\n"
    )


def _config(
    root: Path, grace_s: float, token: str | None = TOKEN, public_url: str | None = PUBLIC
) -> Path:
    path = root / "plugins.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [plugins]
            enabled = ["voicehost-test-fakes"]

            [server]
            {f'public_url = "{public_url}"' if public_url else ""}
            greeting = "Hello from serve."
            shutdown_grace_s = {grace_s}

            [twilio]
            {f'auth_token = "{token}"' if token else ""}

            [stt]
            provider = "fake"

            [tts]
            provider = "fake"

            [responder.scripted]
            greeting = "Hello from serve."

            [records]
            enabled = false
            """
        )
    )
    return path


class Serve:
    """A running ``voicehost serve`` subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.base_url = ""
        self._ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if "listening on http://" in line and not self.base_url:
                self.base_url = line.rsplit(" ", 1)[1]
                self._ready.set()
        self._ready.set()

    async def ready(self) -> str:
        await asyncio.wait_for(self._ready.wait(), 60)
        assert self.base_url, "\n".join(self.lines)
        return self.base_url

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return rc

    def simulator(self, token: str | None = TOKEN, public_url: str | None = PUBLIC):
        return TwilioSimulator(self.base_url, auth_token=token, public_url=public_url)


@pytest.fixture
async def start_serve(tmp_path):
    procs: list[asyncio.subprocess.Process] = []
    _install_fake_plugin(tmp_path)

    async def start(
        grace_s: float = 10.0,
        token: str | None = TOKEN,
        public_url: str | None = PUBLIC,
        extra_env: dict[str, str] | None = None,
    ) -> Serve:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEHOST_", "TWILIO_"))}
        env.update(extra_env or {})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from voicehost.cli import main; main()",
            "serve",
            "--port",
            "0",
            "--config",
            str(_config(tmp_path, grace_s, token, public_url)),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        serve = Serve(proc)
        await serve.ready()
        return serve

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_answers_a_simulated_call_end_to_end(start_serve):
    serve = await start_serve()
    async with serve.simulator() as sim:
        call = await sim.start_call()
        audio = await call.wait_for_audio(seconds=0.3, timeout=30)
        assert set(audio) - {0xFF}  # the greeting tone, not silence
        await call.wait_for_event("mark", timeout=30)
        await call.play(tone(0.2))
        await call.dtmf("1")
        health = await (await sim.session.get(serve.base_url + "/healthz")).json()
        assert health["active_calls"] == 1
        await call.stop()
        assert call.close_code == 1000
        assert call.protocol_errors == []
        bad = await sim.post_form(
            "/voice/webhook", sim.webhook_params(random_sid("CA")), signature="forged"
        )
        assert bad.status == 403
    serve.proc.send_signal(signal.SIGTERM)
    assert await serve.wait(30) == 0


async def test_sigterm_drains_live_calls_then_exits(start_serve):
    serve = await start_serve(grace_s=30)
    async with serve.simulator() as sim:
        call = await sim.start_call()
        await call.wait_for_audio(seconds=0.1, timeout=30)
        serve.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(_until_draining(sim, serve.base_url), 10)
        reply = await sim.post_form("/voice/webhook", sim.webhook_params(random_sid("CA")))
        assert reply.status == 503  # no new calls
        assert not call.ws.closed  # the live call goes on
        await call.play(tone(0.1))
        await call.stop()
        assert call.close_code == 1000
    assert await serve.wait(15) == 0
    assert any("stopped" in line for line in serve.lines)


async def test_sigterm_ends_calls_after_the_grace_period(start_serve):
    serve = await start_serve(grace_s=0.5)
    async with serve.simulator() as sim:
        call = await sim.start_call()
        await call.wait_for_audio(seconds=0.1, timeout=30)
        serve.proc.send_signal(signal.SIGTERM)
        assert await call.wait_closed(15) == 1001
    assert await serve.wait(15) == 0


async def test_a_second_sigterm_ends_calls_at_once(start_serve):
    serve = await start_serve(grace_s=60)
    async with serve.simulator() as sim:
        call = await sim.start_call()
        await call.wait_for_audio(seconds=0.1, timeout=30)
        serve.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(_until_draining(sim, serve.base_url), 10)
        serve.proc.send_signal(signal.SIGTERM)
        assert await call.wait_closed(15) == 1001
    assert await serve.wait(15) == 0


async def test_without_a_token_serve_warns_and_skips_signatures(start_serve):
    serve = await start_serve(token=None, public_url=None)
    warning = [line for line in serve.lines if "signature checks are OFF" in line]
    assert warning and "loopback only" in warning[0]
    async with serve.simulator(token=None, public_url=None) as sim:
        call = await sim.start_call()  # unsigned webhook accepted
        # with no public_url, the stream URL names the port really bound (--port 0)
        assert call.stream_url == serve.base_url.replace("http", "ws") + "/voice/stream"
        await call.wait_for_audio(seconds=0.1, timeout=30)
        await call.stop()
    serve.proc.send_signal(signal.SIGINT)
    assert await serve.wait(15) == 0


async def test_start_up_prints_the_webhook_url_to_paste_into_twilio(start_serve):
    serve = await start_serve()
    assert f"Twilio voice webhook (POST): {PUBLIC}/voice/webhook" in "\n".join(serve.lines)
    serve.proc.send_signal(signal.SIGTERM)
    assert await serve.wait(15) == 0


async def test_voicehost_public_url_overrides_the_file(start_serve):
    other = "https://other.example.test/bot"
    serve = await start_serve(extra_env={"VOICEHOST_PUBLIC_URL": other})
    assert f"Twilio voice webhook (POST): {other}/voice/webhook" in "\n".join(serve.lines)
    async with serve.simulator(public_url=other) as sim:
        call = await sim.start_call()  # signed over the overriding URL: accepted
        assert call.stream_url == "wss://other.example.test/bot/voice/stream"
        await call.stop()
    serve.proc.send_signal(signal.SIGTERM)
    assert await serve.wait(15) == 0


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_bad_port_is_a_clean_error(tmp_path, monkeypatch, port):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--port", port])
    assert result.exit_code == 2
    assert "--port" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bad_public_url_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VOICEHOST_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--public-url", "ftp://x"])
    assert result.exit_code == 1
    assert "--public-url must be an http(s) URL" in result.output


def test_non_loopback_bind_with_a_token_needs_a_public_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    monkeypatch.delenv("VOICEHOST_CONFIG", raising=False)
    monkeypatch.delenv("VOICEHOST_PUBLIC_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "--public-url" in result.output and "VOICEHOST_PUBLIC_URL" in result.output


async def _until_draining(sim: TwilioSimulator, base_url: str) -> None:
    while True:
        resp = await sim.session.get(base_url + "/healthz")
        if resp.status == 503:
            return
        await asyncio.sleep(0.02)  # polling the server's own health endpoint


def test_non_loopback_bind_without_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("VOICEHOST_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0" in result.output
    assert "TWILIO_AUTH_TOKEN" in result.output


def test_check_bind():
    no_token = TwilioSettings()
    check_bind("127.0.0.1", no_token, public_url_set=False)
    check_bind("::1", no_token, public_url_set=False)
    check_bind("localhost", no_token, public_url_set=False)
    with pytest.raises(ConfigError, match="refusing"):
        check_bind("192.0.2.10", no_token, public_url_set=True)
    check_bind("0.0.0.0", TwilioSettings(auth_token="x"), public_url_set=True)
    with pytest.raises(ConfigError, match="--public-url"):
        check_bind("0.0.0.0", TwilioSettings(auth_token="x"), public_url_set=False)
    assert is_loopback("127.0.0.2") and not is_loopback("example.com")
