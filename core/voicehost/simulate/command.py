"""``voicehost simulate [AUDIO]... [--say TEXT]...``: be the caller. Plays audio files and
spoken text into a call through the Twilio simulator (:mod:`voicehost.testing.twilio`) and
reports each turn with its timing.

Against a running server (``--url``, signing the voice webhook with ``--auth-token``) or an
in-process one built from ``plugins.toml`` exactly as ``voicehost serve`` builds it
(``--local``). The caller's inputs, in command-line order:

* ``AUDIO`` files: any format libsndfile reads (WAV with integer, float or μ-law samples,
  FLAC, …), any rate, any channel count (mixed down), sent as μ-law 8 kHz
  (:mod:`voicehost.wavfile`);
* ``--say TEXT`` (repeatable): the text spoken by the offline TTS provider ``piper``
  (:mod:`.voice`), synthesized before the call is placed. ``hours.wav --say "who are you"
  bye.wav`` plays the file, the sentence, then the other file.

Per call:

1. place the call (signed webhook → TwiML → WebSocket ``start``); wait for the greeting
   (``--greeting-timeout``);
2. for each input: play it as 20 ms μ-law frames (``--realtime``: at real-time pace;
   ``--fast``: at once, then 1 s of silence at once for endpointing), wait until the bot's
   reply has played (its ``mark`` echoed) or ``--reply-timeout`` passes, then ``--pause-ms``;
   between inputs the caller line carries silence at real-time pace, as a phone line does;
3. send ``stop`` (unless the bot hung up); ``--out`` writes the call as a two-track WAV
   (PCM16 8 kHz, the caller left, the bot right) on the call's timeline
   (:mod:`.timeline`).

Times are ms from the stream's start (sample 0 of ``--out``). The caller's final transcripts
and the bot's reply text come from the server's call records (``GET /api/calls/{call_sid}``,
``--api-token`` when the server requires one); without records only the audio timings are
shown. ``--json`` prints one JSON document (:meth:`SimulationResult.as_json`) on stdout
instead of the text lines.

Exit status: 0 when the bot answered; 1 on an error (a bad audio file, a server that cannot
be reached or refuses the call, a bad config), with one line on stderr; 2 for a usage error
(click's); 3 (:data:`EXIT_NO_ANSWER`) when the call went through but the bot never answered:
no greeting and no reply audio at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Literal

import aiohttp
import click

from voicehost.cli_options import config_option
from voicehost.errors import VoicehostError
from voicehost.simulate.caller import (
    SimulationResult,
    Turn,
    format_turn,
    local_server,
    simulate_call,
)
from voicehost.simulate.voice import speak
from voicehost.testing.twilio import TwilioSimulator
from voicehost.wavfile import WavError, read_audio_ulaw

#: Where `voicehost serve` listens by default.
DEFAULT_URL = "http://127.0.0.1:8080"
#: Exit status when the bot never answered (no greeting, no reply audio).
EXIT_NO_ANSWER = 3
_ARGV_KEY = "voicehost.simulate.argv"

InputKind = Literal["file", "say"]


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


class _SimulateCommand(click.Command):
    """Keeps the raw arguments, so that files and ``--say`` texts play in the order given."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)


def input_order(args: list[str], command: click.Command) -> list[InputKind]:
    """``"file"`` / ``"say"`` for each caller input, in the order of the command line ``args``
    (positional arguments are files; ``--say X`` and ``--say=X`` are texts; the values of
    ``command``'s other options are skipped; everything after ``--`` is a file)."""
    takes_value: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag and not param.count:
            takes_value.update(param.opts)
    order: list[InputKind] = []
    tokens = iter(args)
    only_files = False
    for token in tokens:
        if only_files or token == "-" or not token.startswith("-"):
            order.append("file")
        elif token == "--":
            only_files = True
        else:
            name, equals, _ = token.partition("=")
            if name == "--say":
                order.append("say")
            if name in takes_value and not equals:
                next(tokens, None)
    return order


def _ordered(
    kinds: list[InputKind], files: list[tuple[str, bytes]], said: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """Files and spoken texts interleaved as ``kinds`` says (files first, then texts, should
    ``kinds`` not match the counts)."""
    if kinds.count("file") != len(files) or kinds.count("say") != len(said):
        return files + said
    next_file, next_said = iter(files), iter(said)
    return [next(next_file) if kind == "file" else next(next_said) for kind in kinds]


async def _run(
    paths: list[str],
    texts: list[str],
    kinds: list[InputKind],
    *,
    url: str | None,
    config_path: str | None,
    auth_token: str | None,
    public_url: str | None,
    api_token: str | None,
    fast: bool,
    pause_ms: int,
    reply_timeout_s: float,
    greeting_timeout_s: float,
    out: str | None,
    as_json: bool,
    progress: _Progress,
) -> SimulationResult:
    files = [(Path(p).name, read_audio_ulaw(p)) for p in paths]
    if texts:
        progress.show(f"voicing {len(texts)} --say text(s) with the offline TTS")
    said = [(f'"{text}"', ulaw) for text, ulaw in zip(texts, await speak(texts), strict=True)]
    inputs = _ordered(kinds, files, said)

    def on_turn(turn: Turn) -> None:
        if as_json:
            return
        progress.clear()
        for line in format_turn(turn):
            click.echo(line)

    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            progress.show("starting the local server")
            url, config = await stack.enter_async_context(local_server(config_path))
            auth_token = config.twilio.auth_token or None
            public_url = config.server.public_url
            webhook_path = config.server.webhook_path
        else:
            webhook_path = "/voice/webhook"
        sim = await stack.enter_async_context(
            TwilioSimulator(
                url, auth_token=auth_token, public_url=public_url, webhook_path=webhook_path
            )
        )
        result = await simulate_call(
            sim,
            inputs,
            fast=fast,
            pause_ms=pause_ms,
            reply_timeout_s=reply_timeout_s,
            greeting_timeout_s=greeting_timeout_s,
            api_token=api_token,
            on_turn=on_turn,
            progress=progress.show,
        )
    progress.clear()
    if out and result.audio is not None:
        result.audio.write(out)
    return result


@click.command("simulate", cls=_SimulateCommand)
@click.argument("audio", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--say",
    "texts",
    multiple=True,
    metavar="TEXT",
    help="Speak TEXT as the caller (offline Piper voice); repeatable, played in command-line "
    "order among the AUDIO files.",
)
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
    help="Silence between a reply and the next input (ms).",
)
@click.option(
    "--reply-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Give up waiting for a reply after this many seconds.",
)
@click.option(
    "--greeting-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Give up waiting for the greeting after this many seconds.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write the call to a WAV: PCM16 8 kHz stereo, the caller left, the bot right.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the turns as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress line (default: on a tty).")
@config_option
def simulate(
    audio: tuple[str, ...],
    texts: tuple[str, ...],
    url: str | None,
    local: bool,
    auth_token: str | None,
    public_url: str | None,
    api_token: str | None,
    realtime: bool,
    pause_ms: int,
    reply_timeout: float,
    greeting_timeout: float,
    out: str | None,
    as_json: bool,
    progress: bool | None,
    config_path: str | None,
) -> None:
    """Call a voicehost server as a caller and print each turn.

    The caller plays the AUDIO files (WAV/FLAC: any rate, bit depth, μ-law or float, stereo
    mixed down; sent as μ-law 8 kHz) and speaks each --say TEXT, in command-line order.
    Dials a running server (--url, default the one `voicehost serve` starts), or runs one
    in-process with --local. Times are ms from the start of the stream.

    Exit status: 0 when the bot answered, 1 on an error, 2 when the bot never answered
    (no greeting and no reply audio).
    """
    if not audio and not texts:
        raise click.UsageError("give at least one AUDIO file or --say TEXT")
    if url and local:
        raise click.UsageError("give either --url URL or --local, not both")
    if not local:
        url = url or DEFAULT_URL
    ctx = click.get_current_context()
    kinds = input_order(ctx.meta.get(_ARGV_KEY, []), ctx.command)
    show = _Progress(sys.stderr.isatty() if progress is None else progress)
    try:
        result = asyncio.run(
            _run(
                list(audio),
                list(texts),
                kinds,
                url=url,
                config_path=config_path,
                auth_token=auth_token,
                public_url=public_url,
                api_token=api_token,
                fast=not realtime,
                pause_ms=pause_ms,
                reply_timeout_s=reply_timeout,
                greeting_timeout_s=greeting_timeout,
                out=out,
                as_json=as_json,
                progress=show,
            )
        )
    except (WavError, VoicehostError, AssertionError) as exc:
        show.clear()
        raise click.ClickException(str(exc)) from exc
    except aiohttp.ClientError as exc:
        show.clear()
        raise click.ClickException(f"cannot reach the server: {exc}") from exc
    if as_json:
        document: dict[str, Any] = {**result.as_json(), "out": out}
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        click.echo(
            f"call {result.call_sid} "
            + ("hung up by the bot" if result.hung_up_by_bot else "ended by the caller")
            + (f"; call audio written to {out} (caller left, bot right)" if out else "")
        )
        if not result.records_available:
            click.echo("(no call records from the server; transcripts not shown. --api-token?)")
    if not result.bot_answered:
        click.echo(
            "voicehost simulate: the bot never answered (no greeting, no reply audio)", err=True
        )
        ctx.exit(EXIT_NO_ANSWER)
