"""``voicehost serve`` as a user runs it: the cloud STT vendor is chosen in ``plugins.toml``
alone, the key comes from the environment, and a missing key stops start-up (not a call)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.openai_tts import FakeOpenAITTS

from voicehost.cli import cli
from voicehost.testing.twilio import TwilioSimulator

AUTH_TOKEN = "serve-test-auth-token-0123456789"


@pytest.mark.parametrize(
    ("provider", "var"), [("openai", "OPENAI_API_KEY"), ("deepgram", "DEEPGRAM_API_KEY")]
)
def test_serve_refuses_to_start_without_the_key(tmp_path, monkeypatch, provider, var):
    path = tmp_path / "plugins.toml"
    path.write_text(f'[stt]\nprovider = "{provider}"\n')
    monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--config", str(path)])
    assert result.exit_code == 1
    assert var in result.output
    assert "listening" not in result.output


async def _collect(stream: asyncio.StreamReader, into: list[bytes]) -> None:
    while line := await stream.readline():
        into.append(line)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_serve_uses_the_configured_vendor(tmp_path: Path, openai_fake, clips):
    """``[stt] provider = "openai"`` + ``OPENAI_API_KEY``: a call's words reach the fake
    Realtime API, its transcript reaches the responder, whose reply is spoken."""
    port = free_port()
    async with FakeOpenAITTS(api_key="sk-test") as tts_fake:
        path = tmp_path / "plugins.toml"
        path.write_text(
            f"""
[plugins]
enabled = ["voicehost-openai-stt", "voicehost-openai-tts"]
[twilio]
auth_token = "{AUTH_TOKEN}"
[stt]
provider = "openai"
[stt.openai]
base_url = "{openai_fake.base_url}"
[tts]
provider = "openai"
[tts.openai]
base_url = "{tts_fake.base_url}"
[responder]
provider = "scripted"
[responder.scripted]
greeting = ""
fallback = ""
rules = [{{ match = "book a table", reply = "Booked." }}]
"""
        )
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "VOICEHOST_CONFIG": str(path)}
        env.pop("VOICEHOST_LOAD_PLUGINS", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from voicehost.cli import main; main()",
            "serve",
            "--port",
            str(port),
            env=env,
            cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            async with asyncio.timeout(30):
                while b"listening on" not in (line := await proc.stderr.readline()):
                    assert line, "voicehost serve exited before listening"
            log: list[bytes] = []
            drain = asyncio.create_task(_collect(proc.stderr, log))  # keep the pipe flowing
            base = f"http://127.0.0.1:{port}"
            async with TwilioSimulator(base, auth_token=AUTH_TOKEN, speed=10.0) as sim:
                call = await sim.start_call()
                await call.play(clips.spoken("hello"))
                await openai_fake.wait_for(lambda: openai_fake.finals_sent != [], within=20)
                await call.wait_for_audio(seconds=0.2, timeout=20)  # the spoken reply
                await call.stop()
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
        await drain
        assert b"Traceback" not in b"".join(log)
        assert [text for _, text in openai_fake.finals_sent] == [clips.text("hello")]
        assert openai_fake.audio == clips.spoken("hello")
        assert openai_fake.current.headers["authorization"] == "Bearer sk-test"
        spoken = [r.body["input"] for r in tts_fake.requests if r.body]
        assert spoken == ["Booked."]
