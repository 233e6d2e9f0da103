"""``voicehost call TO``: place an outbound call through Twilio's REST API.

``plugins.toml`` is read and checked as ``voicehost serve`` reads it
(:func:`voicehost.app.assembly.load_app_config`): ``[twilio] account_sid`` / ``auth_token``
(or ``$TWILIO_ACCOUNT_SID`` / ``$TWILIO_AUTH_TOKEN``) authenticate the request,
``[twilio] api_base_url`` says where Twilio's API is, ``[twilio] from_number`` is the caller ID
unless ``--from`` is given. The call's webhook and status callback URLs are built from the
public URL the running ``voicehost serve`` is reached at: ``--public-url`` /
``$VOICEHOST_PUBLIC_URL``, else ``[server] public_url``.

In conversation mode (the default) the answered call streams to the server and hears its
greeting; ``--notify TEXT`` says ``TEXT`` and hangs up (the text rides in the signed webhook
URL, so the server needs no shared state). ``--machine-detection`` asks Twilio for
answering-machine detection (``MachineDetection=DetectMessageEnd``).

Prints the new call SID on stdout (and a line about the call on stderr); any problem (a bad
number, no caller ID, no credentials, Twilio's refusal such as error 21211) is one line on
stderr and exit status 1.
"""

from __future__ import annotations

import asyncio

import click

from voicehost.app.assembly import load_app_config
from voicehost.app.serve import PUBLIC_URL_ENV, resolve_public_url
from voicehost.cli_options import config_option
from voicehost.errors import VoicehostError
from voicehost.server.dialer import DialRequest, dial_request, send_dial_request
from voicehost.server.rest import RestCall, TwilioRest

__all__ = ["call_command"]


@click.command("call")
@click.argument("to")
@click.option(
    "--from",
    "from_",
    metavar="NUMBER",
    help="Caller ID (E.164); default: [twilio] from_number.",
)
@click.option("--notify", metavar="TEXT", help="Say TEXT, then hang up (no conversation).")
@click.option(
    "--machine-detection",
    is_flag=True,
    help="Ask Twilio to detect answering machines (AnsweredBy reaches the call handler).",
)
@click.option(
    "--public-url",
    envvar=PUBLIC_URL_ENV,
    help=f"The https URL Twilio reaches the server at (overrides [server] public_url) "
    f"[env: {PUBLIC_URL_ENV}].",
)
@config_option
def call_command(
    to: str,
    from_: str | None,
    notify: str | None,
    machine_detection: bool,
    public_url: str | None,
    config_path: str | None,
) -> None:
    """Place a call to TO (E.164 number, sip: URI or client:) and print its call SID."""
    try:
        config = load_app_config(config_path)
        explicit = "public_url" in config.server.model_fields_set
        server = resolve_public_url(config.server, "127.0.0.1", 0, flag=public_url, explicit=True)
        dial = dial_request(
            server,
            config.twilio,
            to=to,
            from_=from_,
            mode="notify" if notify is not None else "conversation",
            message=notify,
            machine_detection=machine_detection,
        )
        rest = TwilioRest.from_settings(config.twilio)
        if rest is None:
            raise click.ClickException(
                "Twilio's REST API is not configured: set [twilio] account_sid and auth_token "
                "(or TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)"
            )
        if not public_url and not explicit:
            click.echo(
                f"voicehost: WARNING: no public URL set (--public-url, ${PUBLIC_URL_ENV} or "
                f"[server] public_url): Twilio will be sent to {server.public_url}",
                err=True,
            )
        placed = asyncio.run(_place(rest, dial))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"voicehost: placed {dial.mode} call {placed.sid} from {dial.from_} to {dial.to} "
        f"({placed.status or 'status unknown'})",
        err=True,
    )
    click.echo(placed.sid)


async def _place(rest: TwilioRest, dial: DialRequest) -> RestCall:
    async with rest:
        return await send_dial_request(rest, dial)
