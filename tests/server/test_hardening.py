"""Defects found by fuzzing the running server from outside (issue 9, item 7): whatever a
client sends, no request ends in a 500 or a traceback in the log, and no connection is held
for longer than the configured bounds.

Raw sockets on 127.0.0.1 play the misbehaving clients.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import select
import socket
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from voicehost.server import ServerSettings, build_app
from voicehost.server.http import ClientErrorLogger
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import parse_stream_twiml, random_sid

FORM = "application/x-www-form-urlencoded"


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def _until(predicate, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def _raw(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def _read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:  # noqa: ASYNC109
    """Everything the server sends until it closes the connection (EOF or reset)."""
    chunks = []

    async def read() -> None:
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    await asyncio.wait_for(read(), timeout)
    return b"".join(chunks)


# --- a. malformed webhook bodies --------------------------------------------------------------

MALFORMED_BODIES = [
    # (Content-Type, body, expected status)
    (f"{FORM}; charset=bogus", b"CallSid=CA1", 415),
    (f"{FORM}; charset=utf-16", "CallSid=CA1".encode("utf-16"), 415),
    (FORM, "CallSid=CA1".encode("utf-16"), 400),  # a BOM and NULs: not UTF-8
    (FORM, b"CallSid=CA1&From=\xff\xfe\xfa", 400),  # invalid UTF-8 bytes
    (FORM, b"CallSid=CA1&From=%ff%fe", 400),  # escapes decoding to invalid UTF-8
    (FORM, b"CallSid=CA1&From=%ed%a0%80", 400),  # an escaped lone surrogate
    (FORM, "&".join(f"k{i}=v" for i in range(500)).encode(), 400),  # too many fields
    ("multipart/form-data", b"--x\r\n\r\nCA1\r\n--x--\r\n", 415),  # no boundary
    (
        "multipart/form-data; boundary=x",
        b"--x\r\nContent-Disposition: form-data\r\n\r\nCA1\r\n--x--\r\n",  # no field name
        415,
    ),
    ("application/json", b'{"CallSid": "CA1"}', 415),
    ("text/plain", b"CallSid=CA1", 415),
    (f"{FORM}; charset*=utf-8''x", b"CallSid=CA1", 415),  # an RFC 2231 parameter
    (";;;", b"CallSid=CA1", 415),
    (FORM, b"CallSid=\x00\x01&CallSid=%00", 400),  # decodes, but no valid CallSid
]


@pytest.mark.parametrize("path", ["/voice/webhook", "/voice/status"])
@pytest.mark.parametrize(("content_type", "body", "status"), MALFORMED_BODIES)
async def test_malformed_unsigned_body_is_4xx_without_a_traceback(
    make_server, caplog, path, content_type, body, status
):
    """Signature checks off (no auth token): the body itself is refused, 415 or 400."""
    caplog.set_level(logging.INFO)
    h = await make_server(twilio={})
    async with aiohttp.ClientSession() as session:
        reply = await session.post(
            h.base_url + path, data=body, headers={"Content-Type": content_type}
        )
    assert reply.status == status, await reply.text()
    assert h.live.stored_calls() == 0 and len(h.live.tokens) == 0
    _no_errors(caplog)


@pytest.mark.parametrize("path", ["/voice/webhook", "/voice/status"])
@pytest.mark.parametrize(("content_type", "body", "status"), MALFORMED_BODIES[:6])
async def test_malformed_body_with_signature_checks_on(
    harness, caplog, path, content_type, body, status
):
    """Without a signature: 403 before the body is looked at; with a (forged) one: the
    body is refused before it is decoded, so the signature is never checked over it."""
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as session:
        unsigned = await session.post(
            harness.base_url + path, data=body, headers={"Content-Type": content_type}
        )
        signed = await session.post(
            harness.base_url + path,
            data=body,
            headers={"Content-Type": content_type, "X-Twilio-Signature": "Zm9yZ2Vk"},
        )
    assert unsigned.status == 403
    assert signed.status == status
    _no_errors(caplog)


async def test_twilio_charset_utf8_is_accepted(make_server):
    h = await make_server(twilio={})
    body = b"CallSid=CA1234&From=%2B15551230000&CallStatus=ringing&To=caf%C3%A9"
    async with aiohttp.ClientSession() as session:
        for content_type in (FORM, f"{FORM}; charset=UTF-8", f"{FORM}; charset=utf8"):
            reply = await session.post(
                h.base_url + "/voice/webhook", data=body, headers={"Content-Type": content_type}
            )
            assert reply.status == 200, content_type
    record = await h.live.get_call("CA1234")
    assert (record.from_, record.to) == ("+15551230000", "café")


async def test_status_callback_for_an_unknown_call_is_harmless(make_server):
    h = await make_server(twilio={})
    async with aiohttp.ClientSession() as session:
        reply = await session.post(
            h.base_url + "/voice/status",
            data={"CallSid": "CA999", "CallStatus": "completed\x00\x1b[31m"},
        )
    assert reply.status == 204


# --- b. dtmf digits -----------------------------------------------------------------------


async def test_dtmf_outside_the_sixteen_keys_is_malformed_and_never_reaches_the_handler(
    make_server, caplog
):
    caplog.set_level(logging.INFO)
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        for digit in ("\\ud800", "1" * 20_000, "", "12", "E"):
            await call.send_raw('{"event":"dtmf","dtmf":{"digit":"' + digit + '"}}')
        await call.send_json({"event": "dtmf", "dtmf": {"digit": 5}})
        await call.dtmf("#")
        await handler.wait_for("dtmf")
        live = handler.calls[0]
        await _until(lambda: live.malformed["field"] == 6)
        assert not call.ws.closed
        await call.stop()
        await handler.wait_for("end")
    assert [e[2] for e in handler.events if e[0] == "dtmf"] == ["#"]
    malformed = [r.getMessage() for r in caplog.records if "malformed message (" in r.getMessage()]
    assert len(malformed) == 1  # logged once per kind
    assert len(malformed[0]) < 400
    malformed[0].encode("utf-8")  # the lone surrogate never reaches a log handler
    _no_errors(caplog)


# --- c. replayed webhooks and second streams for a live call --------------------------------


async def test_replayed_webhook_for_a_live_call_is_409_and_issues_no_token(make_server, caplog):
    handler = RecordingHandler(greeting="hello")
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        assert await h.live.is_live(call.call_sid)
        replay = await sim.post_form("/voice/webhook", sim.webhook_params(call.call_sid))
        assert replay.status == 409
        assert "Connect" not in replay.text
        assert len(h.live.tokens) == 0
        await call.stop()
        await handler.wait_for("end")
    assert handler.names().count("start") == 1
    assert not await h.live.is_live(call.call_sid)
    _no_errors(caplog)


async def test_second_stream_for_a_live_call_sid_is_closed_1008(make_server):
    """Even with a valid token (a webhook raced the first stream's start), a second start
    for a call SID that is live is refused; the first call goes on."""
    handler = RecordingHandler(greeting="hello")
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        first = await sim.start_call()
        await handler.wait_for("start")
        token = await h.live.issue_token(first.call_sid)
        second = await sim.open_stream(call_sid=first.call_sid)
        second.stream_sid = random_sid("MZ")
        await second.send_start(token=token)
        assert await second.wait_closed() == 1008
        assert not first.ws.closed
        assert list(h.server.calls) == [first.call_sid]
        await first.dtmf("1")
        await handler.wait_for("dtmf")
        await first.stop()
        await handler.wait_for("end")
    assert handler.names().count("start") == 1
    assert handler.names().count("end") == 1
    assert len(h.plugin.tts.syntheses) == 1  # one greeting


async def test_after_the_call_ended_its_sid_is_free_again(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await call.stop()
        await handler.wait_for("end")
        reply = await sim.post_form("/voice/webhook", sim.webhook_params(call.call_sid))
    assert reply.status == 200
    assert parse_stream_twiml(reply.text)[1]["token"]


# --- d. outbound backlog: the connection is aborted ----------------------------------------


def _small_receive_buffer(addr_info) -> socket.socket:
    """A client socket whose kernel takes little before the window closes, so a peer that
    stops reading leaves the server's backlog in the server, as a stalled Twilio does."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_stream_closed_for_backlog_is_reset_when_the_peer_never_reads(make_server):
    handler = RecordingHandler(greeting="x" * 3000)  # 60 s of audio
    h = await make_server(
        handler=handler,
        playback_lead_ms=600_000,  # no pacing: everything goes out at once
        max_outbound_buffer_bytes=256 * 1024,
    )
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        h.simulator(session=session) as sim,
    ):
        call_sid = random_sid("CA")
        reply = await sim.post_form("/voice/webhook", sim.webhook_params(call_sid))
        token = parse_stream_twiml(reply.text)[1]["token"]
        call = await sim.open_stream(call_sid=call_sid)
        client = call.ws._response.connection.transport
        client_sock = client.get_extra_info("socket")
        client.pause_reading()  # Twilio stops reading, and never starts again
        await call.send_start(token=token)
        await _until(lambda: len(h.server.sockets) == 1)
        stream = next(iter(h.server.sockets))
        server_sock = stream.request.transport.get_extra_info("socket")
        end = await handler.wait_for("end", timeout=20)
        ended = time.monotonic()
        assert end[2] == "error"
        assert stream.close_code == 1013
        # the server lets go of the socket, and the peer sees the connection reset after
        # the 2 s grace, without reading a byte
        poller = select.poll()
        poller.register(client_sock.fileno(), select.POLLERR | select.POLLHUP)
        await _until(lambda: bool(poller.poll(0)), timeout=6)  # (poll(0) never blocks)
        assert server_sock.fileno() == -1
        assert time.monotonic() - ended < 4
        await _until(lambda: not h.server.sockets)
        error = client_sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        assert error == errno.ECONNRESET


async def test_backlog_close_is_graceful_for_a_peer_that_reads_again(make_server):
    """The peer's kernel took the whole backlog (or it resumes reading within the grace):
    it gets the 1013 close frame, and the server's socket is closed, not reset."""
    handler = RecordingHandler(greeting="x" * 3000)
    h = await make_server(
        handler=handler, playback_lead_ms=600_000, max_outbound_buffer_bytes=64 * 1024
    )
    async with h.simulator() as sim:
        call_sid = random_sid("CA")
        reply = await sim.post_form("/voice/webhook", sim.webhook_params(call_sid))
        token = parse_stream_twiml(reply.text)[1]["token"]
        call = await sim.open_stream(call_sid=call_sid)
        client = call.ws._response.connection.transport
        client.pause_reading()
        await call.send_start(token=token)
        await _until(lambda: len(h.server.sockets) == 1)
        stream = next(iter(h.server.sockets))
        server_sock = stream.request.transport.get_extra_info("socket")
        await handler.wait_for("end", timeout=20)
        await _until(lambda: server_sock.fileno() == -1, timeout=6)
        client.resume_reading()
        assert await call.wait_closed(10) == 1013


# --- e. slow heads and bodies ----------------------------------------------------------------


async def test_unfinished_request_heads_are_closed_after_the_header_timeout(make_server, caplog):
    caplog.set_level(logging.INFO)
    # 2 s: all 200 connections must be open before the first is closed, even on a busy machine
    h = await make_server(request_header_timeout_s=2.0)
    started = time.monotonic()
    heads = [b"", b"POST /voice/webhook HTTP/1.1\r\nHost: x\r\n", b"GET /healthz HTTP/1.1\r\nX: "]
    conns = [await _raw(h.port, heads[i % 3]) for i in range(200)]
    await _until(lambda: len(h.runner.server.connections) == 200, timeout=10)
    results = await asyncio.gather(*(_read_until_closed(r, 10) for r, _ in conns))
    elapsed = time.monotonic() - started
    assert all(result == b"" for result in results)  # closed, nothing answered
    assert 1.6 < elapsed < 8
    await _until(lambda: not h.runner.server.connections, timeout=5)
    for _, writer in conns:
        writer.close()
    _no_errors(caplog)


async def test_with_a_plain_runner_heads_are_still_bounded_by_the_keepalive_timeout():
    """A runner other than ``make_runner`` (``TestServer``, a plain ``web.AppRunner``) still
    gets the app's keep-alive timeout, which aiohttp also applies to a head in progress."""
    app = build_app(ServerSettings(keepalive_timeout_s=0.5, request_header_timeout_s=60))
    async with TestServer(app, host="127.0.0.1") as server:
        started = time.monotonic()
        reader, writer = await _raw(server.port, b"POST /voice/webhook HTTP/1.1\r\nHo")
        assert await _read_until_closed(reader, 10) == b""
        assert time.monotonic() - started < 3
        writer.close()


async def test_a_partial_head_after_keep_alive_is_closed_but_idle_keep_alive_is_not(make_server):
    h = await make_server(request_header_timeout_s=0.3)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    idle_r, idle_w = await _raw(h.port, request)
    slow_r, slow_w = await _raw(h.port, request)
    for reader in (idle_r, slow_r):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    slow_w.write(b"GET /healthz HTTP/1.1\r\nHo")
    await asyncio.sleep(1.0)  # well past the header timeout
    assert await _read_until_closed(slow_r, 5) == b""
    idle_w.write(request)  # the idle kept-alive connection still serves
    assert (await idle_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    idle_w.close()
    slow_w.close()


async def test_the_header_timeout_never_cuts_a_live_call(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler, request_header_timeout_s=0.2)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await asyncio.sleep(0.8)  # a call four header timeouts long
        await call.dtmf("1")
        await handler.wait_for("dtmf")
        assert not call.ws.closed
        await call.stop()
        assert call.close_code == 1000


async def test_short_body_under_a_huge_content_length_is_answered_and_closed(make_server, caplog):
    caplog.set_level(logging.INFO)
    h = await make_server(request_body_timeout_s=0.5)
    huge = (
        b"POST /voice/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: " + FORM.encode() + b"\r\n"
        b"Content-Length: 99999999999999\r\n\r\nCallSid=CA1"
    )
    short = (
        b"POST /voice/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: " + FORM.encode() + b"\r\n"
        b"Content-Length: 1000\r\n\r\nCallSid=CA1"
    )
    started = time.monotonic()
    conns = [await _raw(h.port, huge if i % 2 else short) for i in range(200)]
    results = await asyncio.gather(*(_read_until_closed(r, 15) for r, _ in conns))
    elapsed = time.monotonic() - started
    statuses = {result.split(b" ", 2)[1] for result in results}
    assert statuses == {b"408", b"413"}
    assert elapsed < 0.5 + 2.0 + 3  # body timeout + lingering + slack
    await _until(lambda: not h.runner.server.connections, timeout=5)
    for _, writer in conns:
        writer.close()
    _no_errors(caplog)


async def test_a_body_that_breaks_off_leaves_no_traceback(make_server, caplog):
    caplog.set_level(logging.INFO)
    h = await make_server(twilio={})
    head = b"POST /voice/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: " + FORM.encode()
    _, writer = await _raw(h.port, head + b"\r\nContent-Length: 100\r\n\r\nCallSid=")
    await asyncio.sleep(0.1)
    writer.transport.abort()
    _, writer = await _raw(
        h.port, head + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nCallSid=CA1\r\n0\r\n\r\n"
    )
    await asyncio.sleep(0.3)
    writer.close()
    await _until(lambda: not h.runner.server.connections, timeout=5)
    _no_errors(caplog)


# --- f. garbage request lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE \xff\xfe\r\n\r\n",  # 2nd request
    ],
)
async def test_garbage_request_is_400_with_one_warning_line(make_server, caplog, garbage):
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.INFO)
    h = await make_server()
    reader, writer = await _raw(h.port, garbage)
    answer = await _read_until_closed(reader, 5)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"400"
    _no_errors(caplog)
    (line,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert line.levelno == logging.WARNING
    assert "from 127.0.0.1" in line.getMessage()
    assert "\n" not in line.getMessage()


def test_client_error_logger_keeps_tracebacks_of_our_own_errors(caplog):
    logger = ClientErrorLogger(logging.getLogger("test.aiohttp.server"))
    try:
        raise RuntimeError("a bug of ours")
    except RuntimeError as exc:
        logger.exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info


# --- no 500 whatever is sent --------------------------------------------------------------


async def test_fuzzed_requests_never_answer_500(make_server, caplog):
    caplog.set_level(logging.INFO)
    h = await make_server()
    bodies = [b"", b"\xff" * 100, b"CallSid=" + b"A" * 10_000, b"%", b"=&=&", b"a=%zz", b"\x00"]
    headers = [
        {},
        {"Content-Type": FORM},
        {"Content-Type": FORM, "X-Twilio-Signature": "\u00e9t\u00e9"},
        {"Content-Type": "multipart/form-data; boundary=--"},
        {"Content-Type": FORM, "Content-Encoding": "gzip"},
    ]
    paths = ["/voice/webhook", "/voice/status", "/voice/stream", "/healthz", "/nope", "/%ff"]
    async with aiohttp.ClientSession() as session:
        for path in paths:
            for method in ("GET", "POST", "PUT", "OPTIONS"):
                for body in bodies:
                    for header in headers:
                        async with session.request(
                            method, h.base_url + path, data=body, headers=header
                        ) as reply:
                            assert reply.status < 500, (
                                method,
                                path,
                                body[:20],
                                header,
                                reply.status,
                            )
                            await reply.read()
    _no_errors(caplog)


async def test_stream_start_with_odd_fields_is_refused_without_errors(make_server, caplog):
    caplog.set_level(logging.INFO)
    h = await make_server(pre_start_timeout_ms=300)
    odd_starts = [
        {"event": "start", "start": {"callSid": "CA\ud800", "streamSid": "MZ1"}},
        {"event": "start", "start": {"callSid": ["CA1"], "streamSid": "MZ1"}},
        {"event": "start", "start": {"callSid": "CA1", "streamSid": "MZ1", "customParameters": 5}},
        {"event": "start", "start": "nope"},
    ]
    async with h.simulator() as sim:
        for start in odd_starts:
            stream = await sim.open_stream()
            await stream.send_raw(json.dumps(start))
            assert await stream.wait_closed() == 1008
    _no_errors(caplog)
