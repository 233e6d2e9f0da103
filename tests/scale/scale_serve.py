"""Real ``voicehost serve`` processes for the scale-out tests: the fake STT/TTS installed as an
entry-point plugin (as in ``tests/server/test_serve.py``), ``[state]`` in a shared Redis and
``[records]`` in a shared PostgreSQL, driven by the Twilio simulator.

Importable as ``scale_serve`` (``tests/scale`` is put on ``sys.path`` by its conftest).
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from voicehost.testing.twilio import SimulatedCall, TwilioSimulator, parse_stream_twiml
from voicehost.testing.twilio_stream import random_sid

TOKEN = "scale-test-token-123"
PUBLIC = "https://bot.example.test"
GREETING = "Hello from the deployment."
REPLY = "We are open nine to five."
#: The fake STT hears this after 10 non-silent frames (200 ms of tone).
HEARD = "what are your opening hours"

_PLUGIN = """
from voicehost.testing.providers import FakeProvidersPlugin

plugin = FakeProvidersPlugin()
"""


def install_fake_plugin(root: Path) -> None:
    """A distribution ``voicehost-test-fakes`` with a ``voicehost`` entry point in ``root``."""
    if (root / "voicehost_test_fakes_plugin.py").exists():
        return
    (root / "voicehost_test_fakes_plugin.py").write_text(_PLUGIN)
    info = root / "voicehost_test_fakes-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: voicehost-test-fakes\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[voicehost]\nfakes = voicehost_test_fakes_plugin:plugin\n"
    )


def write_config(path: Path, *, redis_url: str, prefix: str, pg_url: str, grace_s: float) -> Path:
    """A plugins.toml for one instance of the deployment."""
    path.write_text(
        textwrap.dedent(
            f"""
            [plugins]
            enabled = ["voicehost-test-fakes"]

            [server]
            public_url = "{PUBLIC}"
            shutdown_grace_s = {grace_s}

            [twilio]
            auth_token = "{TOKEN}"

            [stt]
            provider = "fake"

            [stt.fake]
            final_after_frames = 10
            final_text = "{HEARD}"

            [tts]
            provider = "fake"

            [tts.fake]
            ms_per_char = 10

            [responder.scripted]
            greeting = "{GREETING}"
            fallback = ""

            [[responder.scripted.rules]]
            match = 'hours'
            reply = "{REPLY}"

            [state]
            url = "{redis_url}"
            prefix = "{prefix}"
            live_ttl_s = 3

            [records]
            url = "{pg_url}"
            """
        )
    )
    return path


class Serve:
    """A running ``voicehost serve`` subprocess (its stderr lines are kept)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
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
        assert self.base_url, f"{self.name} did not start:\n" + "\n".join(self.lines)
        return self.base_url

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return rc

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def simulator(self) -> TwilioSimulator:
        return TwilioSimulator(self.base_url, auth_token=TOKEN, public_url=PUBLIC)

    async def get_json(self, sim: TwilioSimulator, path: str) -> tuple[int, Any]:
        async with sim.session.get(self.base_url + path) as resp:
            return resp.status, await resp.json(content_type=None)

    async def post_json(self, sim: TwilioSimulator, path: str, body: Any = None) -> tuple[int, Any]:
        async with sim.session.post(self.base_url + path, json=body) as resp:
            return resp.status, await resp.json(content_type=None)


async def spawn(root: Path, name: str, config: Path) -> Serve:
    """Start ``voicehost serve --port 0`` with ``config`` in ``root`` (not waiting for it)."""
    install_fake_plugin(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEHOST_", "TWILIO_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from voicehost.cli import main; main()",
        "serve",
        "--port",
        "0",
        "--config",
        str(config),
        cwd=root,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Serve(name, proc)


async def split_call(webhook: TwilioSimulator, stream: TwilioSimulator) -> SimulatedCall:
    """A call whose voice webhook is answered by one instance and whose media stream opens
    on another (what a round-robin load balancer does)."""
    call_sid = random_sid("CA")
    reply = await webhook.post_form(webhook.webhook_path, webhook.webhook_params(call_sid))
    assert reply.status == 200, reply
    url, params = parse_stream_twiml(reply.text)
    call = await stream.open_stream(stream.local_stream_url(url), call_sid=call_sid)
    call.twiml, call.stream_url = reply.text, url
    call.token = params.get("token")
    call.custom_parameters = dict(params)
    await call.send_connected()
    await call.send_start()
    return call


async def until(check: Any, timeout: float = 30.0, every: float = 0.1) -> Any:  # noqa: ASYNC109
    """Poll the coroutine function ``check`` until it returns something truthy."""

    async def loop() -> Any:
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(every)

    return await asyncio.wait_for(loop(), timeout)


def free_port_url() -> str:
    """A ``redis://`` URL where nothing listens."""
    from scale_servers import free_port

    return f"redis://127.0.0.1:{free_port()}/0"
