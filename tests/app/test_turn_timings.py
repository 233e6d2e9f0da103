"""Per-turn timings: measured during a simulated call (fake STT/TTS through the real plugin
host, the scripted responder, the real server), stored with the caller's turn, shown by
``voicehost calls show``, summed up by ``voicehost calls stats``, and counted in the
Prometheus histograms served at ``/metrics``.

No test times anything: they check the order of the stored times, which latencies exist,
and that the histograms moved (deltas: the metrics registry is process-global).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import sqlite3

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from voicehost import metrics
from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.cli import cli
from voicehost.config import Settings
from voicehost.contracts import MULAW_8K, Responder, TranscriptionRequest
from voicehost.conversation import ResponderCallHandler
from voicehost.plugins import PluginHost
from voicehost.records import CallStore, TurnTimings, read_call
from voicehost.records.schema import SCHEMA_V1, connect
from voicehost.records.stats import call_stats, percentile
from voicehost.server import SERVER_KEY, ReplyStatus
from voicehost.server.call_stt import CallTranscription
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeProvidersPlugin, FakeTranscriptionProvider

SCRIPT = {
    "greeting": "Hello there.",
    "fallback": "Pardon?",
    "rules": [
        {"match": r"\bhours\b", "reply": "Nine to five."},
        {"match": r"\bbye\b", "reply": "Goodbye.", "hangup": True},
    ],
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _metrics_on():
    metrics.set_enabled(True)
    yield
    metrics.set_enabled(True)


@pytest.fixture
async def rig(tmp_path):
    """A running server with fakes + scripted responder + records; yields
    (fakes, simulator, db, server)."""
    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    db = tmp_path / "calls.db"
    settings = Settings.from_dict(
        {
            "stt": {"provider": "fake"},
            "tts": {"provider": "fake", "fake": {"ms_per_char": 10}},
            "responder": {"provider": "scripted", "scripted": SCRIPT},
            "records": {"path": str(db)},
        }
    )
    app = build_serve_app(load_app_config(settings=settings, host=host))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
        yield fakes, sim, db, server
    await server.close()


async def scrape(sim: TwilioSimulator, server: TestServer) -> Samples:
    async with sim.session.get(server.make_url("/metrics")) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def finished(server: TestServer, call, db) -> dict:
    """The call's record once the server ended it and every write is committed."""
    call_server = server.app[SERVER_KEY]
    live = call_server.calls.get(call.call_sid)
    if live is not None:
        await live.wait_ended()
    handler = getattr(call_server.handler, "inner", call_server.handler)
    assert isinstance(handler, ResponderCallHandler) and handler.store is not None
    # The ``ended`` lifecycle event reaches the handler after on_call_end: once it is
    # stored, so is everything before it.
    for _ in range(500):
        await handler.store.flush()
        record = read_call(db, call.call_sid)
        if any(event["event"] == "ended" for event in record["events"]):
            return record
        await asyncio.sleep(0.01)
    raise AssertionError("the call's end was never recorded")


async def test_a_call_stores_each_answered_turns_timings_and_moves_the_histograms(rig):
    fakes, sim, db, server = rig
    before = await scrape(sim, server)
    call = await sim.start_call()
    stt = await fakes.stt.wait_for_session()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")

    stt.speech_start()
    await asyncio.sleep(0.3)  # the caller speaks (and the speech end is after the start)
    stt.speech_end(0.25)  # the caller went quiet 250 ms ago (the STT's endpointing wait)
    stt.final("what are your hours")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    stt.final("ok bye")  # no speech end reported: timed from the final's arrival
    assert await call.wait_closed(timeout=15) == 1000
    record = await finished(server, call, db)

    finals = [t for t in record["turns"] if t["kind"] == "final"]
    assert [t["text"] for t in finals] == ["what are your hours", "ok bye"]
    others = [t for t in record["turns"] if t["kind"] != "final"]
    assert others and all(t["timings"] is None for t in others)

    hours = finals[0]["timings"]
    times = [hours[k] for k in ("speech_end_ms", "final_ms", "first_token_ms", "first_audio_ms")]
    assert None not in times and times == sorted(times)
    assert hours["final_ms"] - hours["speech_end_ms"] >= 249  # the reported silence
    latency = hours["latency_ms"]
    assert latency["turn"] == hours["first_audio_ms"] - hours["speech_end_ms"]
    assert latency["stt_final"] == hours["final_ms"] - hours["speech_end_ms"]
    assert latency["responder_first_token"] == hours["first_token_ms"] - hours["final_ms"]
    assert latency["tts_first_audio"] == hours["first_audio_ms"] - hours["first_token_ms"]

    bye = finals[1]["timings"]
    assert bye["speech_end_ms"] is None and bye["latency_ms"]["stt_final"] is None
    assert bye["first_audio_ms"] is not None
    assert bye["latency_ms"]["turn"] == bye["first_audio_ms"] - bye["final_ms"]

    async with sim.session.get(server.make_url(f"/api/calls/{call.call_sid}")) as response:
        assert (await response.json())["turns"] == record["turns"]

    after = await scrape(sim, server)
    turn = "voicehost_turn_latency_seconds_count"
    assert value(after, turn) - value(before, turn) == 2
    stt_final = "voicehost_stt_final_latency_seconds_count"
    assert value(after, stt_final, provider="fake") - value(before, stt_final, provider="fake") == 1
    first = "voicehost_responder_first_token_seconds_count"
    moved = value(after, first, provider="scripted") - value(before, first, provider="scripted")
    assert moved == 3  # the greeting and both answers
    total = "voicehost_stt_final_latency_seconds_sum"
    assert value(after, total, provider="fake") - value(before, total, provider="fake") >= 0.25


async def test_calls_show_prints_the_latencies_and_stats_sums_them_up(rig):
    fakes, sim, db, server = rig
    call = await sim.start_call()
    stt = await fakes.stt.wait_for_session()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    stt.speech_end(0.1)
    stt.final("what are your hours")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    await call.stop()
    record = await finished(server, call, db)
    timings = next(t for t in record["turns"] if t["kind"] == "final")["timings"]

    shown = CliRunner().invoke(cli, ["calls", "show", call.call_sid, "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith("what are your hours"))
    latency = timings["latency_ms"]
    secs = {name: f"{ms / 1000:.2f}s" for name, ms in latency.items()}
    assert lines[at + 1].strip() == (
        f"latency  turn {secs['turn']}  (stt {secs['stt_final']}, "
        f"responder {secs['responder_first_token']}, tts {secs['tts_first_audio']})"
    )

    stats = CliRunner().invoke(cli, ["calls", "stats", "--db", str(db), "--json"])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.output)
    assert data["calls"] == 1 and data["answered_turns"] == 1
    for name, ms in latency.items():
        assert data["latency_ms"][name] == {"count": 1, "p50": ms, "p95": ms}
    assert data["barge_ins"] == 0
    assert data["errors"] == {"calls": 0, "tools": 0, "transfers": 0}

    table = CliRunner().invoke(cli, ["calls", "stats", "--db", str(db), "--last", "5"])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0] == "last 1 calls, 1 answered caller turns"
    row = next(line for line in table.output.splitlines() if line.startswith("turn ("))
    turn = f"{latency['turn'] / 1000:.2f}s"
    assert row.split()[-3:] == ["1", turn, turn]


def test_stats_percentiles_counts_and_the_last_n_calls(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    for n in range(1, 21):  # 20 calls, one answered turn each; turn latency n * 100 ms
        sid = f"CA{n:032d}"
        store.start_call(sid, started_at=f"2026-11-30T10:00:{n:02d}.000+00:00")
        timings = TurnTimings(speech_end_ms=1000, final_ms=1200, first_token_ms=1250)
        seq = store.add_turn(sid, "caller", "final", "hello", 1200, timings=timings)
        timings.first_audio_ms = 1000 + n * 100
        store.set_turn_timings(sid, seq, timings)
        if n % 5 == 0:
            store.add_turn(sid, "event", "barge_in", "reply cut off", 1500)
        if n == 20:
            store.add_turn(sid, "event", "tool_result", "error: boom", 1600)
            store.add_turn(sid, "event", "transfer", "failed: no REST", 1700)
        store.end_call(sid, "error" if n in (3, 20) else "caller-hangup")
    store.close()

    data = call_stats(store.path, last=1000)
    assert (data["calls"], data["answered_turns"]) == (20, 20)
    assert data["latency_ms"]["turn"] == {"count": 20, "p50": 1000, "p95": 1900}
    assert data["latency_ms"]["stt_final"] == {"count": 20, "p50": 200, "p95": 200}
    assert data["latency_ms"]["responder_first_token"] == {"count": 20, "p50": 50, "p95": 50}
    assert data["barge_ins"] == 4
    assert data["errors"] == {"calls": 2, "tools": 1, "transfers": 1}

    last = call_stats(store.path, last=4)  # calls 17–20
    assert last["calls"] == 4 and last["latency_ms"]["turn"]["p50"] == 1800
    assert last["barge_ins"] == 1 and last["errors"]["calls"] == 1


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5], 95) == 5
    assert percentile([4, 1, 3, 2], 50) == 2
    assert percentile(list(range(1, 101)), 95) == 95


def test_an_old_database_gets_the_timing_columns_and_reads_without_them(tmp_path):
    path = tmp_path / "old.db"
    conn = connect(path)
    conn.executescript(SCHEMA_V1)
    conn.execute("INSERT INTO calls (call_sid, started_at) VALUES ('CA1', '2026-01-01T00:00:00')")
    conn.execute(
        "INSERT INTO turns (call_sid, seq, role, kind, text, at_ms)"
        " VALUES ('CA1', 1, 'caller', 'final', 'hi', 10)"
    )
    conn.close()
    assert read_call(path, "CA1")["turns"][0]["timings"] is None  # read as it is
    assert call_stats(path)["answered_turns"] == 0

    store = CallStore(path)  # migrates
    store.add_turn("CA1", "caller", "final", "again", 20, timings=TurnTimings(final_ms=20))
    store.close()
    check = sqlite3.connect(path)
    names = {row[1] for row in check.execute("PRAGMA table_info(turns)")}
    check.close()
    assert {"speech_end_ms", "final_ms", "first_token_ms", "first_audio_ms"} <= names
    turns = read_call(path, "CA1")["turns"]
    assert turns[0]["timings"] is None
    assert turns[1]["timings"]["final_ms"] == 20
    assert turns[1]["timings"]["latency_ms"]["turn"] is None  # no audio yet


def test_turn_timings_latencies_skip_unknown_and_negative_spans():
    timings = TurnTimings(final_ms=100, first_token_ms=90, first_audio_ms=400)
    assert timings.latencies() == {
        "turn": 300,  # from the final: no speech end
        "stt_final": None,
        "responder_first_token": None,  # before the final: not a latency
        "tts_first_audio": 310,
    }


async def test_the_stt_session_pairs_each_final_with_the_speech_end_before_it():
    provider = FakeTranscriptionProvider()
    got: list[str] = []
    transcription = CallTranscription(
        "CA1",
        "MZ1",
        provider,
        None,
        on_partial=lambda text: None,
        on_transcript=got.append,
        on_speech_start=lambda: None,
    )
    transcription.open()
    session = provider.sessions[0]
    assert isinstance(session.request, TranscriptionRequest)
    assert session.request.input_format == MULAW_8K
    before = metrics_count()

    session.speech_end(0.5)
    session.final("one")
    session.final("two")  # no speech end before it
    session.speech_end()  # called without the silence: just now
    session.final("three")
    assert got == ["one", "two", "three"]

    one = transcription.take_final("one")
    assert one is not None and one.final_at - one.speech_end_at >= 0.5
    three = transcription.take_final("three")  # "two" was never taken: dropped
    assert three is not None and three.speech_end_at is not None
    assert transcription.take_final("two") is None
    assert transcription.take_final("never said") is None
    assert metrics_count() - before == 2
    await transcription.close()


def metrics_count() -> float:
    """``voicehost_stt_final_latency_seconds_count{provider="fake"}`` now."""
    for family in text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode()):
        for sample in family.samples:
            if sample.name == "voicehost_stt_final_latency_seconds_count" and sample.labels == {
                "provider": "fake"
            }:
                return sample.value
    return 0.0


class Answer(Responder):
    """Answers every transcript with one sentence."""

    async def reply(self, call, transcript):
        yield "Nine to five."


class QuietStore:
    """The part of ``CallStore`` the conversation uses: ``turns`` holds (role, kind, text,
    timings), timings set later replace those given with the turn."""

    def __init__(self) -> None:
        self.turns: list[list] = []

    def start_call(self, call_sid, **numbers) -> None:
        pass

    def add_turn(self, call_sid, role, kind, text, at_ms, timings=None):
        self.turns.append([role, kind, text, timings])
        written: concurrent.futures.Future[int] = concurrent.futures.Future()
        written.set_result(len(self.turns))
        return written

    def set_turn_timings(self, call_sid, seq, timings) -> None:
        self.turns[seq.result() - 1][3] = timings

    def end_call(self, call_sid, reason) -> None:
        pass


class Played:
    """A reply that has played and sent no frame (as on the ``<Say>`` fallback)."""

    status = ReplyStatus.PLAYED
    first_audio_at = None

    def __await__(self):
        async def done():
            return ReplyStatus.PLAYED

        return done().__await__()


class StreamlessCall:
    """A call without an STT session (the ``<Gather>`` fallback's finals)."""

    def __init__(self) -> None:
        self.call_sid, self.stream_sid = "CA" + "9" * 32, ""
        self.from_, self.to, self.direction, self.answered_by = "", "", "inbound", ""
        self.state: dict = {}
        self.end_reason = None

    def say(self, text: str) -> Played:
        return Played()


async def test_a_final_without_an_stt_timing_is_timed_from_its_arrival():
    store = QuietStore()
    handler = ResponderCallHandler(Answer(), store)  # type: ignore[arg-type]
    call = StreamlessCall()
    await handler.on_call_start(call)  # type: ignore[arg-type]
    await handler.on_transcript(call, "when are you open")  # type: ignore[arg-type]
    await handler.on_call_end(call, "caller-hangup")  # type: ignore[arg-type]
    assert [turn[:3] for turn in store.turns] == [
        ["caller", "final", "when are you open"],  # Responder.greeting says nothing
        ["bot", "reply", "Nine to five."],
    ]
    final = next(turn for turn in store.turns if turn[1] == "final")
    timings = final[3]
    assert isinstance(timings, TurnTimings)
    assert timings.speech_end_ms is None and timings.final_ms is not None
    assert timings.first_token_ms is not None and timings.first_token_ms >= timings.final_ms
    assert timings.first_audio_ms is None  # no frame went out: no turn latency
    assert timings.latencies()["turn"] is None
    assert all(turn[3] is None for turn in store.turns if turn[1] != "final")
