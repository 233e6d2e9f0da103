"""``voicehost simulate AUDIO...``: be the caller. Plays WAV files into a call through the
Twilio simulator (:mod:`voicehost.testing.twilio`) and reports each turn with its timing.

Against a running server (``--url``, signing the voice webhook with ``--auth-token``) or an
in-process one built from ``plugins.toml`` exactly as ``voicehost serve`` builds it
(``--local``). Per call:

1. place the call (signed webhook → TwiML → WebSocket ``start``); wait for the greeting;
2. for each file: play it as 20 ms μ-law frames (``--realtime``: at real-time pace;
   ``--fast``: at once, then 1 s of silence at once for endpointing), wait until the bot's
   reply has played (its ``mark`` echoed) or ``--reply-timeout`` passes, then ``--pause-ms``;
   between files the caller line carries silence at real-time pace, as a phone line does;
3. send ``stop``; ``--out`` gets the bot's audio as a PCM16 8 kHz WAV.

Times are ms from the stream's start. The caller's final transcripts and the bot's reply text
come from the server's call records (``GET /api/calls/{call_sid}``, ``--api-token`` when the
server requires one); without records only the audio timings are shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import aiohttp
import click

from voicehost.cli_options import config_option
from voicehost.errors import VoicehostError
from voicehost.simulation import SimulationResult, Turn, format_turn, local_server, simulate_call
from voicehost.testing.twilio import TwilioSimulator
from voicehost.wavfile import WavError, read_wav_ulaw, write_ulaw_wav


class _Progress:
    """The one updating status line on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.text = ""

    def show(self, text: str) -> None:
        if self.enabled and text != self.text:
            self.text = text
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled and self.text:
            self.text = ""
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


async def _run(
    paths: list[str],
    *,
    url: str | None,
    config_path: str | None,
    auth_token: str | None,
    public_url: str | None,
    api_token: str | None,
    fast: bool,
    pause_ms: int,
    reply_timeout_s: float,
    out: str | None,
    progress: _Progress,
) -> SimulationResult:
    files = [(Path(p).name, read_wav_ulaw(p)) for p in paths]

    def on_turn(turn: Turn) -> None:
        progress.clear()
        for line in format_turn(turn):
            click.echo(line)

    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            url, server_settings = await stack.enter_async_context(local_server(config_path))
            auth_token = server_settings.auth_token or None
            public_url = server_settings.public_url
            webhook_path = server_settings.webhook_path
        else:
            webhook_path = "/voice/webhook"
        sim = await stack.enter_async_context(
            TwilioSimulator(
                url, auth_token=auth_token, public_url=public_url, webhook_path=webhook_path
            )
        )
        result = await simulate_call(
            sim,
            files,
            fast=fast,
            pause_ms=pause_ms,
            reply_timeout_s=reply_timeout_s,
            api_token=api_token,
            on_turn=on_turn,
            progress=progress.show,
        )
    progress.clear()
    if out:
        write_ulaw_wav(out, result.bot_audio)
    return result


#: Where `voicehost serve` listens by default.
DEFAULT_URL = "http://127.0.0.1:8080"


@click.command("simulate")
@click.argument("audio", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--url",
    help=f"Base URL of a running server [default: {DEFAULT_URL}, unless --local].",
)
@click.option("--local", is_flag=True, help="Run an in-process server built from plugins.toml.")
@click.option("--auth-token", envvar="TWILIO_AUTH_TOKEN", help="Sign the webhook with it.")
@click.option("--public-url", help="URL the server believes it has ([server] public_url).")
@click.option("--api-token", envvar="VOICEHOST_API_TOKEN", help="[records] api_token.")
@click.option("--realtime/--fast", default=True, help="Caller audio at real-time pace or at once.")
@click.option(
    "--pause-ms",
    default=1000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Silence between a reply and the next file (ms).",
)
@click.option(
    "--reply-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Give up waiting for a reply after this many seconds.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the bot's audio to a WAV.")
@click.option("--progress/--no-progress", default=None, help="Progress line (default: on a tty).")
@config_option
def simulate(
    audio: tuple[str, ...],
    url: str | None,
    local: bool,
    auth_token: str | None,
    public_url: str | None,
    api_token: str | None,
    realtime: bool,
    pause_ms: int,
    reply_timeout: float,
    out: str | None,
    progress: bool | None,
    config_path: str | None,
) -> None:
    """Play WAV files (any rate; sent as μ-law 8 kHz) as a caller and print each turn.

    Dials a running server (--url, default the one `voicehost serve` starts), or runs one
    in-process with --local. Times are ms from the start of the stream.
    """
    if url and local:
        raise click.UsageError("give either --url URL or --local, not both")
    if not local:
        url = url or DEFAULT_URL
    show = _Progress(sys.stderr.isatty() if progress is None else progress)
    try:
        result = asyncio.run(
            _run(
                list(audio),
                url=url,
                config_path=config_path,
                auth_token=auth_token,
                public_url=public_url,
                api_token=api_token,
                fast=not realtime,
                pause_ms=pause_ms,
                reply_timeout_s=reply_timeout,
                out=out,
                progress=show,
            )
        )
    except (WavError, VoicehostError, AssertionError) as exc:
        show.clear()
        raise click.ClickException(str(exc)) from exc
    except aiohttp.ClientError as exc:
        show.clear()
        raise click.ClickException(f"cannot reach the server: {exc}") from exc
    click.echo(
        f"call {result.call_sid} "
        + ("hung up by the bot" if result.hung_up_by_bot else "ended by the caller")
        + (f"; bot audio written to {out}" if out else "")
    )
    if not result.records_available:
        click.echo("(no call records from the server; transcripts not shown. --api-token?)")
