"""The fair inference scheduler (stand-in jobs, no model) and final-transcript bookkeeping."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from voicehost_whisper_stt.engine import Transcript
from voicehost_whisper_stt.events import UtteranceEnded
from voicehost_whisper_stt.finals import PendingFinal
from voicehost_whisper_stt.scheduler import FairScheduler, Job, Outcome, Ticket

WAIT_S = 10.0


class Harness:
    """Records the order jobs ran in and every outcome; can hold the workers on a gate."""

    def __init__(self, workers: int = 1) -> None:
        self.scheduler = FairScheduler(workers=workers, name="test")
        self.ran: list[str] = []
        self.outcomes: dict[str, Outcome] = {}
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    def job(
        self,
        label: str,
        kind: str = "final",
        run: Callable[[], object] | None = None,
        stale: Callable[[], bool] = lambda: False,
    ) -> Job:
        def body() -> object:
            with self.lock:
                self.ran.append(label)
            return run() if run else label

        def on_done(outcome: Outcome) -> None:
            with self.done:
                self.outcomes[label] = outcome
                self.done.notify_all()

        return Job(kind, body, on_done, stale)  # type: ignore[arg-type]

    def hold(self, ticket: Ticket) -> threading.Event:
        """Occupy one worker until the returned event is set."""
        gate, started = threading.Event(), threading.Event()

        def wait() -> None:
            started.set()
            assert gate.wait(WAIT_S)

        self.scheduler.submit(ticket, self.job(f"gate{id(gate)}", run=wait))
        assert started.wait(WAIT_S)
        return gate

    def wait_for(self, *labels: str) -> None:
        with self.done:
            assert self.done.wait_for(lambda: all(x in self.outcomes for x in labels), WAIT_S)


def test_finals_first_then_round_robin_over_calls() -> None:
    h = Harness()
    gate_ticket, a, b, c = (h.scheduler.open() for _ in range(4))
    gate = h.hold(gate_ticket)
    h.scheduler.submit(a, h.job("a-partial", "partial"))
    h.scheduler.submit(a, h.job("a-final1"))
    h.scheduler.submit(a, h.job("a-final2"))
    h.scheduler.submit(b, h.job("b-final1"))
    h.scheduler.submit(c, h.job("c-partial", "partial"))
    gate.set()
    h.wait_for("a-partial", "a-final1", "a-final2", "b-final1", "c-partial")
    assert h.ran[1:] == ["a-final1", "b-final1", "a-final2", "c-partial", "a-partial"]


def test_a_newer_partial_replaces_the_pending_one() -> None:
    h = Harness()
    gate_ticket, a = h.scheduler.open(), h.scheduler.open()
    gate = h.hold(gate_ticket)
    h.scheduler.submit(a, h.job("p1", "partial"))
    h.scheduler.submit(a, h.job("p2", "partial"))
    assert h.outcomes["p1"].skipped  # dropped at once, never queued
    gate.set()
    h.wait_for("p2")
    assert "p1" not in h.ran
    assert h.outcomes["p2"].result == "p2"


def test_stale_partial_is_skipped_when_its_turn_comes() -> None:
    h = Harness()
    a = h.scheduler.open()
    h.scheduler.submit(a, h.job("old", "partial", stale=lambda: True))
    h.wait_for("old")
    assert h.outcomes["old"].skipped
    assert h.ran == []


def test_one_job_per_call_at_a_time_but_calls_run_in_parallel() -> None:
    h = Harness(workers=2)
    a, b = h.scheduler.open(), h.scheduler.open()
    release = threading.Event()
    a_started, b_started = threading.Event(), threading.Event()

    def a_first() -> None:
        a_started.set()
        assert release.wait(WAIT_S)

    def b_only() -> None:
        b_started.set()

    h.scheduler.submit(a, h.job("a1", run=a_first))
    h.scheduler.submit(a, h.job("a2"))
    assert a_started.wait(WAIT_S)
    h.scheduler.submit(b, h.job("b1", run=b_only))
    assert b_started.wait(WAIT_S)  # the second worker serves call b
    h.wait_for("b1")
    assert "a2" not in h.ran  # call a's second job waits for its first
    release.set()
    h.wait_for("a1", "a2")
    assert h.ran.index("a2") > h.ran.index("a1")


def test_an_error_is_reported_and_the_worker_goes_on() -> None:
    h = Harness()
    a = h.scheduler.open()

    def boom() -> None:
        raise RuntimeError("model exploded")

    h.scheduler.submit(a, h.job("bad", run=boom))
    h.scheduler.submit(a, h.job("good"))
    h.wait_for("bad", "good")
    assert isinstance(h.outcomes["bad"].error, RuntimeError)
    assert h.outcomes["good"].result == "good"


def test_close_skips_the_pending_partial_but_runs_queued_finals() -> None:
    h = Harness()
    gate_ticket, a = h.scheduler.open(), h.scheduler.open()
    gate = h.hold(gate_ticket)
    h.scheduler.submit(a, h.job("partial", "partial"))
    h.scheduler.submit(a, h.job("final"))
    h.scheduler.close(a)
    assert h.outcomes["partial"].skipped
    with pytest.raises(RuntimeError, match="closed"):
        h.scheduler.submit(a, h.job("late"))
    gate.set()
    h.wait_for("final")
    assert h.outcomes["final"].result == "final"
    assert h.scheduler.queued == 0


def _ended(utterance: int = 1, samples: int = 16000) -> UtteranceEnded:
    return UtteranceEnded(
        utterance=utterance,
        audio=np.zeros(samples, dtype=np.float32),
        start_ms=0,
        speech_end_ms=1000,
        endpoint_ms=1500,
        reason="silence",
    )


def test_a_speculative_final_is_reported_only_after_both_decode_and_endpoint() -> None:
    done = Outcome(result=Transcript("hello there", inference_ms=300.0), queued_ms=20.0)
    # Decode first, endpoint second: the endpoint gets the outcome.
    early = PendingFinal(1, 16000, submitted_ms=1250, speculative=True)
    assert early.finish(done) is False
    assert early.confirm(_ended()) is done
    # Endpoint first, decode second: the decode learns it was confirmed.
    late = PendingFinal(1, 16000, submitted_ms=1250, speculative=True)
    assert late.confirm(_ended()) is None
    assert late.finish(done) is True
    # Only the same utterance with the same audio length confirms a speculation.
    assert early.matches(_ended()) and not early.matches(_ended(samples=15488))
    assert not early.matches(_ended(utterance=2))


def test_final_latency_is_the_later_of_endpoint_and_decode() -> None:
    done = Outcome(result=Transcript("hi", inference_ms=300.0), queued_ms=20.0)
    fast = PendingFinal(1, 16000, submitted_ms=1250, speculative=True)
    fast.finish(done)
    fast.confirm(_ended())
    # The decode (1250 + 320 = 1570 ms) ends after the endpoint (1500 ms).
    assert fast.timing().latency_ms == 1570 - 1000
    slow = PendingFinal(1, 16000, submitted_ms=1500, speculative=False)
    slow.finish(done)
    slow.confirm(_ended())
    assert slow.timing().latency_ms == 1500 + 320 - 1000
