"""``voicehost serve`` speaks through a cloud TTS vendor with only ``plugins.toml`` and a key:
the installed plugin is found through its entry point, the ``[tts]`` table and
``${ELEVENLABS_API_KEY}`` are resolved at start-up, and a simulated call hears the vendor's
audio byte for byte (the scripted responder's greeting)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from fakes.elevenlabs import FakeElevenLabs
from tts_call import padded
from tts_helpers import closed_port

from voicehost.testing.twilio import TwilioSimulator

TOKEN = "serve-test-auth-token-0123456789"


async def _listening_port(stderr: asyncio.StreamReader) -> int:
    async with asyncio.timeout(60):
        while line := await stderr.readline():
            if match := re.search(rb"listening on http://127\.0\.0\.1:(\d+)", line):
                return int(match.group(1))
    raise AssertionError("voicehost serve exited before listening")


async def test_serve_speaks_through_elevenlabs(tmp_path: Path, elevenlabs_fake: FakeElevenLabs):
    config = tmp_path / "plugins.toml"
    config.write_text(
        # STT points at a closed port: the call goes on without it (TTS still works).
        f'[stt]\nprovider = "deepgram"\n[stt.deepgram]\n'
        f'base_url = "http://127.0.0.1:{closed_port()}"\n'
        f'[tts]\nprovider = "elevenlabs"\n[tts.elevenlabs]\nvoice_id = "voice123"\n'
        f'base_url = "{elevenlabs_fake.base_url}"\n'
        f'[responder]\nprovider = "scripted"\n[responder.scripted]\ngreeting = "Hello there."\n'
    )
    env = {
        **os.environ,
        "VOICEHOST_CONFIG": str(config),
        "ELEVENLABS_API_KEY": "xi-test",
        "DEEPGRAM_API_KEY": "dg-test",
        "TWILIO_AUTH_TOKEN": TOKEN,
    }
    env.pop("VOICEHOST_LOAD_PLUGINS", None)
    voicehost = Path(sys.executable).with_name("voicehost")
    proc = await asyncio.create_subprocess_exec(
        str(voicehost),
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    drain: asyncio.Task[bytes] | None = None
    try:
        assert proc.stderr is not None
        port = await _listening_port(proc.stderr)
        drain = asyncio.create_task(proc.stderr.read())  # keep the pipe from filling up
        base_url = f"http://127.0.0.1:{port}"
        async with TwilioSimulator(base_url, auth_token=TOKEN, speed=4.0) as sim:
            call = await sim.start_call()
            expected = padded(elevenlabs_fake.audio)
            await call.wait_for_audio(len(expected), timeout=30)
            await call.wait_for(lambda: "reply-1" in call.echoed_marks, timeout=30)
            assert bytes(call.received_audio) == expected
            assert call.protocol_errors == []
            await call.stop()
        [request] = elevenlabs_fake.requests
        assert request.body["text"] == "Hello there."
        assert request.headers["xi-api-key"] == "xi-test"
        assert request.path == "/v1/text-to-speech/voice123/stream"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
        if drain is not None:
            await drain
