"""Observers (spec 14) against the real server: what they are told, and the
trace context the server receives."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import secinfra
from secinfra.errors import IdentityExpired, NotFound, TransportError
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log, header

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Recorder(secinfra.Observer):
    """Keeps every notification; returns ``trace`` (``{attempt}``: the number) if given."""

    def __init__(self, trace: str = "", tracestate: str = "") -> None:
        self.events: list[tuple[str, Any]] = []
        self._trace = trace
        self._tracestate = tracestate

    def call_started(self, event: secinfra.CallStarted) -> None:
        self.events.append(("call_started", event))

    def cache(self, event: secinfra.CacheLookup) -> None:
        self.events.append(("cache", event))

    def attempt_started(self, event: secinfra.AttemptStarted) -> secinfra.TraceContext | None:
        self.events.append(("attempt_started", event))
        if not self._trace:
            return None
        return secinfra.TraceContext(
            self._trace.replace("{attempt}", f"{event.attempt:016x}"), self._tracestate
        )

    def attempt_finished(self, event: secinfra.AttemptFinished) -> None:
        self.events.append(("attempt_finished", event))

    def call_finished(self, event: secinfra.CallFinished) -> None:
        self.events.append(("call_finished", event))

    def kinds(self, rpc: str | None = None) -> list[str]:
        return [kind for kind, event in self.events if rpc is None or event.rpc == rpc]

    def take(self) -> list[tuple[str, Any]]:
        taken, self.events = self.events, []
        return taken


class Failing(secinfra.Observer):
    """Fails at every notification."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *args: Any) -> Any:
        self.calls += 1
        raise RuntimeError("observer bug")

    call_started = cache = attempt_started = attempt_finished = call_finished = _fail


GET = "secinfra.v1.SecretsService/GetSecret"
PUT = "secinfra.v1.SecretsService/PutSecret"
WHO = "secinfra.v1.IdentityService/GetCallerIdentity"


def test_a_call_is_started_attempted_and_finished_in_order(
    server: ReferenceServer, unique: str
) -> None:
    recorder = Recorder()
    with server.admin_client(observers=[recorder]) as client:
        client.secrets.put_secret(name=f"{unique}/k", value=b"v")
    events = recorder.take()
    assert [kind for kind, _ in events] == [
        "call_started",
        "attempt_started",
        "attempt_finished",
        "call_finished",
    ]
    started, attempt, finished, ended = (event for _, event in events)
    assert {e.rpc for _, e in events} == {PUT}
    assert len({e.call_id for _, e in events}) == 1
    assert started.idempotency == "non_idempotent"
    assert (attempt.attempt, attempt.endpoint, attempt.http_method) == (1, server.url, "PUT")
    assert (finished.attempt, finished.status, finished.code) == (1, 200, None)
    assert ended.ok
    assert ended.code is None
    assert ended.error is None
    assert (ended.meta.attempts, ended.meta.status, ended.meta.endpoint) == (1, 200, server.url)


def test_the_cache_answers_miss_then_hit_then_revalidate(
    server: ReferenceServer, admin: secinfra.Client, unique: str
) -> None:
    name = f"{unique}/cached"
    admin.secrets.put_secret(name=name, value=b"v")
    recorder = Recorder()
    with server.admin_client(observers=[recorder]) as client:
        client.secrets.get_secret(name=name)
        client.secrets.get_secret(name=name)
        client.secrets.get_secret(name=name, call_options=secinfra.CallOptions(revalidate=True))
        client.secrets.get_secret(name=name, call_options=secinfra.CallOptions(use_cache=False))
    calls: list[list[tuple[str, Any]]] = []
    for kind, event in recorder.take():
        if kind == "call_started":
            calls.append([])
        calls[-1].append((kind, event))
    assert [[kind for kind, _ in call] for call in calls] == [
        ["call_started", "cache", "attempt_started", "attempt_finished", "call_finished"],
        ["call_started", "cache", "call_finished"],
        ["call_started", "cache", "attempt_started", "attempt_finished", "call_finished"],
        ["call_started", "attempt_started", "attempt_finished", "call_finished"],  # no cache
    ]
    assert [call[1][1].result for call in calls[:3]] == ["miss", "hit", "revalidate"]
    hit_end = calls[1][-1][1]
    assert hit_end.ok
    assert hit_end.meta.from_cache
    assert hit_end.meta.attempts == 0
    assert calls[2][3][1].status == 304
    assert calls[2][-1][1].meta.from_cache


def test_every_attempt_is_told_with_its_status_and_code(
    server: ReferenceServer, unique: str
) -> None:
    recorder = Recorder()
    server.script("PutSecret", {"status": 503}, {"status": 429})
    with server.admin_client(observers=[recorder]) as client:
        client.secrets.put_secret(name=f"{unique}/k", value=b"v")
    finished = [e for kind, e in recorder.take() if kind == "attempt_finished"]
    assert [(e.attempt, e.status, e.code) for e in finished] == [
        (1, 503, "unavailable"),
        (2, 429, "rate_limited"),
        (3, 200, None),
    ]


def test_a_failed_call_finishes_with_its_code_and_meta(
    server: ReferenceServer, unique: str
) -> None:
    recorder = Recorder()
    with server.admin_client(observers=[recorder]) as client, pytest.raises(NotFound) as caught:
        client.secrets.get_secret(name=f"{unique}/missing")
    kind, ended = recorder.take()[-1]
    assert kind == "call_finished"
    assert not ended.ok
    assert ended.code == "not_found"
    assert ended.error is caught.value
    assert (ended.meta.attempts, ended.meta.status) == (1, 404)


def test_a_connection_failure_is_an_attempt_without_status() -> None:
    recorder = Recorder()
    with (
        ReferenceServer() as server,
        server.admin_client(
            observers=[recorder],
            retry_policy=secinfra.RetryPolicy(max_attempts=2, deadline=5.0),
        ) as client,
    ):
        server.stop()
        with pytest.raises(TransportError):
            client.identity.get_caller_identity()
    finished = [e for kind, e in recorder.take() if kind == "attempt_finished"]
    assert [(e.attempt, e.status, e.code) for e in finished] == [
        (1, None, "unavailable"),
        (2, None, "unavailable"),
    ]


def test_enrolment_and_the_bundle_fetch_are_observed(server: ReferenceServer, unique: str) -> None:
    recorder = Recorder()
    with server.enrol(f"spiffe://{TRUST_DOMAIN}/{unique}", observers=[recorder]):
        pass
    rpcs = [e.rpc for kind, e in recorder.events if kind == "call_finished"]
    assert "secinfra.v1.IdentityService/IssueCertificate" in rpcs
    assert all(e.ok for kind, e in recorder.events if kind == "call_finished")


def test_the_trace_context_goes_out_on_each_attempt(
    server: ReferenceServer, log: Log, unique: str
) -> None:
    recorder = Recorder(f"00-{TRACE_ID}-{{attempt}}-01", "vendor=1")
    server.script("PutSecret", {"status": 503})
    with server.admin_client(observers=[recorder]) as client:
        client.secrets.put_secret(name=f"{unique}/k", value=b"v")
    entries = log.entries("PutSecret")
    assert [header(e, "traceparent") for e in entries] == [
        f"00-{TRACE_ID}-0000000000000001-01",
        f"00-{TRACE_ID}-0000000000000002-01",
    ]
    assert [header(e, "tracestate") for e in entries] == ["vendor=1", "vendor=1"]


@pytest.mark.parametrize(
    "traceparent",
    [
        f"01-{TRACE_ID}-00f067aa0ba902b7-01",  # another version
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # upper case
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # zero parent id
        f"00-{TRACE_ID}-00f067aa0ba902b7-01\r\nX-Evil: 1",  # a header split
        f"00-{TRACE_ID}-00f067aa0ba902b7",  # no flags
    ],
)
def test_an_invalid_traceparent_is_not_sent_nor_its_tracestate(
    server: ReferenceServer, log: Log, traceparent: str
) -> None:
    with server.admin_client(observers=[Recorder(traceparent, "vendor=1")]) as client:
        client.identity.get_caller_identity()
    [entry] = log.entries("GetCallerIdentity")
    assert header(entry, "traceparent") is None
    assert header(entry, "tracestate") is None


def test_the_first_valid_trace_context_registered_wins(server: ReferenceServer, log: Log) -> None:
    first = Recorder("00-not-valid")
    second = Recorder(f"00-{TRACE_ID}-00000000000000aa-01")
    third = Recorder(f"00-{TRACE_ID}-00000000000000bb-01")
    with server.admin_client(observers=[first, second, third]) as client:
        client.identity.get_caller_identity()
    [entry] = log.entries("GetCallerIdentity")
    assert header(entry, "traceparent") == f"00-{TRACE_ID}-00000000000000aa-01"
    assert first.kinds() == second.kinds() == third.kinds()


def test_no_observer_sends_no_trace_context(admin: secinfra.Client, log: Log) -> None:
    admin.identity.get_caller_identity()
    [entry] = log.entries("GetCallerIdentity")
    assert header(entry, "traceparent") is None
    assert header(entry, "tracestate") is None


def test_a_failing_observer_changes_nothing_and_is_logged_once_per_kind(
    server: ReferenceServer, log: Log, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    failing = Failing()
    recorder = Recorder(f"00-{TRACE_ID}-{{attempt}}-01")
    server.script("PutSecret", {"status": 503})
    with (
        caplog.at_level(logging.WARNING, logger="secinfra.observe"),
        server.admin_client(observers=[failing, recorder]) as client,
    ):
        for n in range(3):
            client.secrets.put_secret(name=f"{unique}/k{n}", value=b"v")
        with pytest.raises(NotFound):
            client.secrets.get_secret(name=f"{unique}/missing")
    assert failing.calls > 10
    assert recorder.kinds().count("call_finished") == 4
    # The recording observer's trace context still goes out.
    assert header(log.entries("PutSecret")[0], "traceparent") == f"00-{TRACE_ID}-{1:016x}-01"
    logged = [r for r in caplog.records if r.name == "secinfra.observe"]
    assert sorted(r.getMessage().split(" failed at ")[1].split(";")[0] for r in logged) == [
        "attempt_finished",
        "attempt_started",
        "cache",
        "call_finished",
        "call_started",
    ]
    assert all("Failing" in r.getMessage() for r in logged)


def test_a_call_without_identity_is_started_and_finished_without_attempts(
    server: ReferenceServer,
) -> None:
    recorder = Recorder()
    source = secinfra.StaticIdentity(secinfra.load_bundle(server.bundle_file.read_bytes()))
    with (
        secinfra.Client(server.url, source, observers=[recorder]) as client,
        pytest.raises(IdentityExpired),
    ):
        client.identity.get_caller_identity()
    assert [(kind, event.rpc) for kind, event in recorder.events] == [
        ("call_started", WHO),
        ("call_finished", WHO),
    ]
    assert recorder.events[-1][1].code == "identity_expired"
