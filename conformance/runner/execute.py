"""Running one case against one SDK: setup, steps, then checks.

Each step's outcome is kept under its id; the server's request log is cut
into windows by step (the log's sequence numbers before and after each step),
so server checks can look at "what arrived while step X ran".
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import re
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from . import attestation, matchers
from .adapter import AdapterFailure, AdapterProcess
from .attestation import ISSUER_FOR_RUN
from .cases import REPLICA_NAMES, Case
from .database import DatabaseUnavailable, SharedCluster
from .mtls_peer import PeerError, Peers
from .sdks import ROOT, SDKS
from .server import ADMIN_ID, STOP_WAIT_SECONDS, TRUST_DOMAIN, Server, ServerError

DEFAULT_DEADLINE_SECONDS: Final = 30.0
#: How long the checks wait for requests of the case still being answered.
SETTLE_SECONDS: Final = 10.0
#: How long closing the pool waits for a spare server that is still starting.
STARTUP_JOIN_SECONDS: Final = 90.0
SHORT_OP_SECONDS: Final = 10.0
#: The bound of an mtls_call when the step gives none (the protocol's default).
MTLS_CALL_SECONDS: Final = 10.0
#: How often await_identity asks the client, and how long it waits by default.
AWAIT_POLL_SECONDS: Final = 0.2
AWAIT_DEFAULT_SECONDS: Final = 30.0
#: How often a stop step armed with after_request looks at the replica's log.
STOP_POLL_SECONDS: Final = 0.02
_VAR = re.compile(r"\$\{([a-z_]+)(?::([+-]?[0-9.]+|[a-z_][a-z0-9_.-]*))?\}")

PASSED: Final = "passed"
FAILED: Final = "failed"
UNSUPPORTED: Final = "unsupported"
ERROR: Final = "error"
#: Not run: the case needs a feature the SDK's client does not declare.
SKIPPED: Final = "skipped"


@dataclass
class CaseResult:
    """How one case went for one SDK (before the known-failing list is applied)."""

    case: Case
    sdk: str
    outcome: str
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    details: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED


def skip_reason(case: Case, sdk: str, features: frozenset[str]) -> str | None:
    """Why ``case`` cannot run against a client declaring ``features``, or None."""
    missing = sorted(case.features - features)
    if not missing:
        return None
    return (
        f"skipped: the {sdk} client does not declare the feature(s) {', '.join(missing)}"
        f" (it declares: {', '.join(sorted(features)) or 'none'})"
    )


def skipped(case: Case, sdk: str, reason: str) -> CaseResult:
    """The result of a case that is not run, with the reason in ``failures``."""
    return CaseResult(case=case, sdk=sdk, outcome=SKIPPED, failures=[reason])


class _Unsupported(Exception):
    pass


class ServerPool:
    """Fresh servers per case, or one reused server per worker thread for
    cases that declare ``share_server: true``.

    Most cases want a fresh server with the default settings. While a case
    runs, the pool starts the next such server in the background (up to
    ``spares`` of them wait ready), so a case does not wait for a start-up.
    A spare has served nothing: it is as fresh as one started on demand.
    """

    def __init__(self, spares: int = 0) -> None:
        self._local = threading.local()
        self._shared: list[Server] = []
        self._lock = threading.Lock()
        self._spares_wanted = spares
        self._spares: list[Server] = []
        self._starting = 0
        self._closed = False
        self._starters: list[threading.Thread] = []
        #: PostgreSQL for replica cases, started by the first one.
        self.cluster = SharedCluster()

    @contextmanager
    def servers_for(self, case: Case) -> Iterator[dict[str, Server]]:
        """The case's servers by name: ``{"a": server}``, or its replicas."""
        if not case.setup.get("replicas"):
            with self.server_for(case) as server:
                yield {"a": server}
            return
        with self.replicas_for(case) as replicas:
            yield replicas

    @contextmanager
    def replicas_for(self, case: Case) -> Iterator[dict[str, Server]]:
        """``setup.replicas`` servers on one new PostgreSQL database, a first.

        Replica a creates the schema, the CA and the KEK; each later replica
        starts from a copy of that KEK (it unseals the CA key and the secrets in
        the shared database) and makes its own admin identity and serving
        certificate, as an operator's second replica would.
        """
        settings = case.setup.get("server") or {}
        jwt = ISSUER_FOR_RUN if case.setup.get("attestation") == "jwt" else None
        try:
            dsn = self.cluster.new_database()
        except DatabaseUnavailable as exc:
            raise ServerError(str(exc)) from exc
        replicas: dict[str, Server] = {}
        try:
            for name in REPLICA_NAMES[: int(case.setup["replicas"])]:
                first = replicas.get("a")
                replicas[name] = Server(
                    settings,
                    jwt=jwt,
                    name=name,
                    database_dsn=dsn,
                    kek_from=first.kek_path if first is not None else None,
                ).start()
            yield replicas
        finally:
            for server in replicas.values():
                server.close()

    @contextmanager
    def server_for(self, case: Case) -> Iterator[Server]:
        if not case.share_server:
            settings = case.setup.get("server") or {}
            jwt = ISSUER_FOR_RUN if case.setup.get("attestation") == "jwt" else None
            server = self._take_spare() if not settings and jwt is None else None
            if server is None:
                server = Server(settings, jwt=jwt).start()
            self._top_up()
            try:
                yield server
            finally:
                server.close()
            return
        shared: Server | None = getattr(self._local, "server", None)
        if shared is None or not shared.alive:
            shared = Server().start()
            self._local.server = shared
            with self._lock:
                self._shared.append(shared)
        shared.reset()
        yield shared

    def _take_spare(self) -> Server | None:
        with self._lock:
            while self._spares:
                server = self._spares.pop(0)
                if server.alive:
                    return server
                server.close()
        return None

    def _top_up(self) -> None:
        """Start default servers in the background until ``spares`` are ready or starting."""
        with self._lock:
            missing = self._spares_wanted - len(self._spares) - self._starting
            if self._closed or missing <= 0:
                return
            self._starting += missing
            for _ in range(missing):
                thread = threading.Thread(target=self._start_spare, daemon=True)
                self._starters.append(thread)
                thread.start()

    def _start_spare(self) -> None:
        server: Server | None = None
        try:
            server = Server().start()
        except (ServerError, OSError):
            server = None  # a case that needs it starts its own and reports the error
        with self._lock:
            self._starting -= 1
            if server is not None and not self._closed:
                self._spares.append(server)
                server = None
        if server is not None:
            server.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            starters = list(self._starters)
        for thread in starters:
            thread.join(STARTUP_JOIN_SECONDS)
        with self._lock:
            servers = self._shared + self._spares
            self._shared, self._spares = [], []
        for server in servers:
            server.close()
        self.cluster.close()


class _Run:
    def __init__(self, case: Case, sdk: str, servers: dict[str, Server]) -> None:
        self.case = case
        self.sdk = sdk
        #: The case's servers by replica name; ``a`` enrols the client and
        #: answers the runner's admin calls while it runs.
        self.servers = servers
        self.server = servers["a"]
        self.ns = case.full_name.replace("/", "-")
        self.jwt = case.setup.get("attestation") == "jwt"
        workload_path = str(case.setup.get("workload") or f"w/{self.ns}")
        if self.jwt:
            # The server maps the token's namespace and service account to this ID.
            workload_path = f"ns/{attestation.NAMESPACE}/sa/{self.ns}"
        self.vars = {
            "ns": self.ns,
            "trust_domain": TRUST_DOMAIN,
            "workload": f"spiffe://{TRUST_DOMAIN}/{workload_path}",
        }
        self.outcomes: dict[str, dict[str, Any]] = {}
        #: Per step, per replica: the log's last sequence number before and after.
        self.windows: dict[str, dict[str, tuple[int, int]]] = {}
        self.start_seq: dict[str, int] = {}
        self.end_seq: dict[str, int] = {}
        #: Stop steps armed with after_request, running beside the steps after them.
        self._stoppers: list[tuple[str, threading.Thread]] = []
        self.log: list[dict[str, Any]] = []
        self.client: AdapterProcess | None = None
        #: The runner's mTLS peer, made by the first step that needs it.
        self._peers: Peers | None = None
        #: The port the client's mtls_serve reported (peer_call's default).
        self.mtls_port: int | None = None
        #: Set by the watchdog when the case runs past its timeout_seconds.
        self.expired = threading.Event()
        self._client_lock = threading.Lock()

    # -- the case's time bound ------------------------------------------------------
    def expire(self) -> None:
        """The watchdog: the case ran out of time; kill the client (and its children)."""
        self.expired.set()
        with self._client_lock:
            client = self.client
        if client is not None:
            client.kill()

    def pause(self, seconds: float) -> None:
        """Sleep, but end the case at once when it runs out of time."""
        if self.expired.wait(seconds):
            raise AdapterFailure("the case ran out of time during a sleep")

    # -- substitution ---------------------------------------------------------------
    def subst(self, value: Any) -> Any:
        if isinstance(value, str):
            return _VAR.sub(self._var, value)
        if isinstance(value, list):
            return [self.subst(v) for v in value]
        if isinstance(value, dict):
            return {self.subst(k): self.subst(v) for k, v in value.items()}
        return value

    def _var(self, m: re.Match[str]) -> str:
        name, arg = m.group(1), m.group(2)
        if name == "http_date":
            return email.utils.formatdate(time.time() + float(arg or 0), usegmt=True)
        if name == "ref":
            value = self.ref(arg or "")
            if value is None or isinstance(value, dict | list):
                raise ValueError(f"${{ref:{arg}}} has no value (did that step run and succeed?)")
            return str(value)
        if name == "replica_url":
            if arg not in self.servers:
                raise ValueError(f"${{replica_url:{arg}}}: no replica {arg!r} in this case")
            return self.servers[str(arg)].url
        if name == "b64":
            raise ValueError("use value: in secrets; ${b64} is not a variable")
        if name not in self.vars:
            raise ValueError(
                f"unknown variable ${{{name}}} (known: {sorted(self.vars)}, http_date, ref)"
            )
        return self.vars[name]

    # -- setup ----------------------------------------------------------------------
    def setup(self) -> None:
        # Replica a's URL and port (refused_configure builds bad URLs from them).
        self.vars["server_url"] = self.server.url
        self.vars["server_port"] = self.server.url.rsplit(":", 1)[1]
        setup = self.subst(self.case.setup)
        for secret in setup.get("secrets") or []:
            request: dict[str, Any] = {
                "name": secret["name"],
                "value": base64.b64encode(str(secret.get("value", "")).encode()).decode(),
            }
            if secret.get("policy"):
                request["policy"] = secret["policy"]
            self.server.admin("PutSecret", request)
        writes = [
            {
                "user": grant.get("user") or f"workload:{self.vars['workload']}",
                "relation": grant["relation"],
                "object": grant["object"],
            }
            for grant in setup.get("grants") or []
        ]
        if writes:
            self.server.admin("WriteTuples", {"writes": writes})
        self.post_scripts(setup.get("scripts") or {})
        for name in setup.get("stopped") or []:
            self.servers[name].stop("KILL")
        self.start_seq = self.last_seqs()

    def last_seqs(self) -> dict[str, int]:
        """Each replica's last request-log sequence number."""
        return {name: server.last_seq() for name, server in self.servers.items()}

    def admin_server(self) -> Server:
        """The replica the runner's admin calls go to: the first one not stopped."""
        for server in self.servers.values():
            if not server.stopped:
                return server
        raise ServerError("every replica of the case is stopped: no admin calls possible")

    def post_scripts(self, scripts: dict[str, list[dict[str, Any]]], replica: str = "a") -> None:
        for rpc, steps in scripts.items():
            expanded: list[dict[str, Any]] = []
            for step in steps:
                times = int(step.get("times", 1))
                plain = {k: v for k, v in step.items() if k != "times"}
                expanded += [plain] * times
            self.servers[replica].script(rpc, expanded)

    # -- the client -----------------------------------------------------------------
    def start_client(self) -> None:
        client = AdapterProcess(list(SDKS[self.sdk].command), ROOT)
        with self._client_lock:
            self.client = client
        if self.expired.is_set():  # the watchdog fired while the process started
            client.kill()
        client.handshake()
        options = dict(self.case.setup.get("client") or {})
        attest: dict[str, str] = (
            {"jwt": ISSUER_FOR_RUN.token(self.ns)}
            if self.jwt
            else {"join_token": self.admin_server().join_token(self.vars["workload"])}
        )
        extra: dict[str, Any] = {}
        if self.case.setup.get("replicas"):
            extra["endpoints"] = [server.url for server in self.servers.values()]
        if "observer" in self.case.setup:
            # ObserverSetup: the client registers its recording observer (spec 14).
            extra["observer"] = self.subst(self.case.setup["observer"] or {})
        sent: dict[str, Any] = {
            "server_url": self.server.url,
            "bundle_pem": self.server.bundle_pem,
            "options": options,
            **extra,
            **attest,
        }
        refused = self.case.setup.get("refused_configure")
        if refused is not None:
            sent.update(self._refused_configure(refused))
        before = self.last_seqs()
        started = time.monotonic()
        answer = client.request("configure", SHORT_OP_SECONDS + DEFAULT_DEADLINE_SECONDS, **sent)
        self._raise_unsupported(answer)
        self.outcomes["configure"] = _outcome(answer, time.monotonic() - started)
        self.windows["configure"] = self._window(before)
        if refused is not None and answer["ok"]:
            raise AdapterFailure(
                "configure succeeded, but the case expects the client refused at creation"
            )
        if refused is None and not answer["ok"]:
            raise AdapterFailure(f"configure failed: {answer.get('error')}")

    def _refused_configure(self, refused: dict[str, Any]) -> dict[str, Any]:
        """What configure sends instead when the case expects it refused (refused_configure)."""
        refused = self.subst(refused)
        out: dict[str, Any] = {}
        if "options" in refused:
            out["options"] = dict(refused["options"])
        if "server_url" in refused:
            out["server_url"] = str(refused["server_url"])
        if "endpoints" in refused:
            out["endpoints"] = [str(e) for e in refused["endpoints"]]
        if "bundle_pem" in refused:
            out["bundle_pem"] = str(refused["bundle_pem"])
        kind = refused.get("join_token")
        if kind is not None:
            out.pop("jwt", None)
            out["join_token"] = self.admin_server().unusable_join_token(
                self.vars["workload"], str(kind)
            )
        return out

    @staticmethod
    def _raise_unsupported(answer: dict[str, Any]) -> None:
        error = answer.get("error") or {}
        if not answer["ok"] and error.get("type") == "Unsupported":
            raise _Unsupported(str(error.get("message", "")))
        if not answer["ok"] and error.get("type") == "AdapterError":
            raise AdapterFailure(f"the client reported an adapter error: {error.get('message')}")

    def _deadline(self, step: dict[str, Any]) -> float:
        opts = step.get("call_options") or {}
        client = self.case.setup.get("client") or {}
        return float(
            opts.get("deadline_seconds")
            or client.get("deadline_seconds")
            or DEFAULT_DEADLINE_SECONDS
        )

    # -- steps ----------------------------------------------------------------------
    def run_steps(self) -> None:
        assert self.client is not None
        for index, raw in enumerate(self.case.steps):
            step_id = self.case.step_ids[index]
            step = self.subst(raw)
            before = self.last_seqs()
            started = time.monotonic()
            self.outcomes[step_id] = self._run_step(step, started, step_id)
            self.windows[step_id] = self._window(before)
        for step_id, thread in self._stoppers:
            thread.join(STOP_WAIT_SECONDS + SHORT_OP_SECONDS)
            if thread.is_alive():
                raise AdapterFailure(f"stop step {step_id} did not finish")
        self.end_seq = self.last_seqs()

    def _window(self, before: dict[str, int]) -> dict[str, tuple[int, int]]:
        after = self.last_seqs()
        return {name: (before[name], after[name]) for name in self.servers}

    def _stop_step(self, step: dict[str, Any], started: float, step_id: str) -> dict[str, Any]:
        """Stop a replica now, or (``after_request``) once a request of that RPC
        from the client reaches it; the latter runs beside the next steps."""
        name, how = str(step["stop"]), str(step.get("signal", "KILL"))
        server = self.servers[name]
        outcome: dict[str, Any] = {"ok": True, "result": {"replica": name}, "elapsed": 0.0}
        rpc = step.get("after_request")
        if rpc is None:
            server.stop(how)
            outcome["elapsed"] = time.monotonic() - started
            return outcome
        since = server.last_seq()
        limit = float(step.get("within_seconds", self.case.timeout_seconds))

        def wait_then_stop() -> None:
            deadline = time.monotonic() + limit
            while not self.expired.is_set() and time.monotonic() < deadline:
                arrived = [
                    e
                    for e in server.requests_since(since)
                    if e["rpc"] == rpc and e.get("client_spiffe_id") != ADMIN_ID
                ]
                if arrived:
                    server.stop(how)
                    outcome["result"]["after_seq"] = arrived[0]["seq"]
                    outcome["elapsed"] = round(time.monotonic() - started, 4)
                    return
                time.sleep(STOP_POLL_SECONDS)
            outcome["ok"] = False
            outcome["error"] = {
                "type": "RunnerError",
                "message": f"no {rpc} request reached replica {name} within {limit:g} s",
            }

        thread = threading.Thread(target=wait_then_stop, daemon=True)
        thread.start()
        self._stoppers.append((step_id, thread))
        return outcome

    @property
    def peers(self) -> Peers:
        if self._peers is None:
            ttl = (self.case.setup.get("server") or {}).get("leaf_ttl_seconds")
            self._peers = Peers(self.server, leaf_ttl_seconds=ttl)
        return self._peers

    def close_peers(self) -> None:
        if self._peers is not None:
            self._peers.close()

    def _run_step(self, step: dict[str, Any], started: float, step_id: str) -> dict[str, Any]:
        assert self.client is not None
        if "stop" in step:
            return self._stop_step(step, started, step_id)
        mtls = self._mtls_step(step, started, step_id)
        if mtls is not None:
            return mtls
        if "call" in step:
            answer = self.client.request(
                "call",
                self._deadline(step),
                rpc=step["call"],
                request=step.get("request") or {},
                call_options=step.get("call_options") or {},
            )
            self._raise_unsupported(answer)
            return _outcome(answer, time.monotonic() - started)
        if "concurrent" in step:
            answer = self.client.request(
                "concurrent",
                self._deadline(step),
                rpc=step["concurrent"],
                count=step["count"],
                request=step.get("request") or {},
                call_options=step.get("call_options") or {},
            )
            self._raise_unsupported(answer)
            results = (answer.get("result") or {}).get("results")
            if not answer["ok"] or not isinstance(results, list):
                raise AdapterFailure(f"concurrent answered without results: {answer!r}")
            return {
                "ok": all(r.get("ok") for r in results),
                "outcomes": results,
                "elapsed": time.monotonic() - started,
            }
        if "repeat" in step:
            outcomes = []
            for i in range(int(step["times"])):
                if i and step.get("interval"):
                    self.pause(float(step["interval"]))
                t0 = time.monotonic()
                answer = self.client.request(
                    "call",
                    self._deadline(step),
                    rpc=step["repeat"],
                    request=step.get("request") or {},
                    call_options=step.get("call_options") or {},
                )
                self._raise_unsupported(answer)
                outcomes.append(_outcome(answer, time.monotonic() - t0))
            return {
                "ok": all(o["ok"] for o in outcomes),
                "outcomes": outcomes,
                "elapsed": time.monotonic() - started,
            }
        if "identity" in step or "events" in step:
            op = "identity" if "identity" in step else "events"
            answer = self.client.request(op, SHORT_OP_SECONDS)
            self._raise_unsupported(answer)
            return _outcome(answer, time.monotonic() - started)
        if "observations" in step:
            answer = self.client.request("observations", SHORT_OP_SECONDS)
            self._raise_unsupported(answer)
            outcome = _outcome(answer, time.monotonic() - started)
            outcome["by_rpc"] = by_rpc(answer.get("result") or {}) if answer["ok"] else None
            return outcome
        if "admin" in step:
            result = self.admin_server().admin(step["admin"], step.get("request") or {})
            return {"ok": True, "result": result, "elapsed": time.monotonic() - started}
        if "script" in step:
            self.post_scripts(step["script"], str(step.get("replica", "a")))
            return {"ok": True, "elapsed": 0.0}
        if "sleep" in step:
            self.pause(float(step["sleep"]))
            return {"ok": True, "elapsed": time.monotonic() - started}
        if "control" in step:
            spec = step["control"]
            target = self.servers[str(step.get("replica", "a"))]
            result = target.control(spec["method"], spec["path"], spec.get("body"))
            return {"ok": True, "result": result, "elapsed": time.monotonic() - started}
        raise AssertionError(f"unknown step {step!r}")  # validated in cases.py

    def _mtls_step(
        self, step: dict[str, Any], started: float, step_id: str
    ) -> dict[str, Any] | None:
        """The outcome of an mtls-suite step (conformance/README.md), None for another."""
        assert self.client is not None
        if "mtls_serve" in step:
            answer = self.client.request(
                "mtls_serve", SHORT_OP_SECONDS, authorizer=step["mtls_serve"]["authorizer"]
            )
            self._raise_unsupported(answer)
            if answer["ok"]:
                self.mtls_port = int((answer.get("result") or {}).get("port") or 0) or None
            return _outcome(answer, time.monotonic() - started)
        if "mtls_stop" in step:
            answer = self.client.request("mtls_stop", SHORT_OP_SECONDS)
            self._raise_unsupported(answer)
            self.mtls_port = None
            return _outcome(answer, time.monotonic() - started)
        if "mtls_call" in step:
            spec = step["mtls_call"]
            timeout = float(spec.get("timeout_seconds") or MTLS_CALL_SECONDS)
            seen_before = self.peers.seen_count()
            fields: dict[str, Any] = {"url": spec["url"], "authorizer": spec["authorizer"]}
            if "timeout_seconds" in spec:
                fields["timeout_seconds"] = timeout
            answer = self.client.request("mtls_call", timeout, **fields)
            self._raise_unsupported(answer)
            outcome = _outcome(answer, time.monotonic() - started)
            seen = self.peers.seen_since(seen_before)
            # What the runner's server saw of the client's certificate (the last request).
            outcome["seen"] = seen[-1] if seen else None
            return outcome
        if "peer_identity" in step:
            spec = step["peer_identity"]
            identity = self.peers.make_identity(step_id, spec["kind"], spec["spiffe_id"])
            if identity.kind == "expired":
                left = datetime.fromisoformat(identity.not_after).timestamp() - time.time()
                self.pause(max(0.0, left) + 1.0)  # handed out once it has expired
            return {"ok": True, "result": identity.summary(), "elapsed": 0.0}
        if "peer_serve" in step:
            result = self.peers.serve(step["peer_serve"])
            return {"ok": True, "result": result, "elapsed": time.monotonic() - started}
        if "peer_call" in step:
            port = step.get("port") or self.mtls_port
            if not port:
                raise PeerError("peer_call: no port given and the client serves nothing")
            outcome = self.peers.call(
                step["peer_call"], int(port), connection=step.get("connection")
            )
            return {**outcome, "elapsed": round(time.monotonic() - started, 4)}
        if "await_identity" in step:
            return self._await_identity(step, started)
        return None

    def _await_identity(self, step: dict[str, Any], started: float) -> dict[str, Any]:
        """Ask the client for its identity until the snapshot matches (or time runs out)."""
        assert self.client is not None
        wanted = step["await_identity"]
        deadline = started + float(step.get("timeout_seconds") or AWAIT_DEFAULT_SECONDS)
        ctx = matchers.Context(refs=self.ref)
        while True:
            answer = self.client.request("identity", SHORT_OP_SECONDS)
            self._raise_unsupported(answer)
            problems = matchers.match(wanted, answer.get("result"), ctx, "identity")
            if answer["ok"] and not problems:
                return _outcome(answer, time.monotonic() - started)
            if time.monotonic() >= deadline:
                return {
                    "ok": False,
                    "result": answer.get("result"),
                    "error": {
                        "type": "Timeout",
                        "message": f"the identity never matched: {'; '.join(problems)[:500]}",
                    },
                    "elapsed": time.monotonic() - started,
                }
            self.pause(AWAIT_POLL_SECONDS)

    # -- checks ---------------------------------------------------------------------
    def ref(self, path: str) -> Any:
        parts = path.split(".")
        value: Any = self.outcomes.get(parts[0])
        for part in parts[1:]:
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                return None
        return value

    def check_all(self) -> list[str]:
        self.log = [_normalise(e) for e in self._settled_log()]
        ctx = matchers.Context(refs=self.ref, issued=self._issued_request_id)
        failures: list[str] = []
        for index, raw in enumerate(self.case.checks):
            check = self.subst(raw)
            if "client" in check:
                label = f"checks[{index}] client {check['client']}"
                problems = self._client_check(check, ctx)
            else:
                label = f"checks[{index}] server {check['server']}"
                if check.get("during"):
                    label += f" during {check['during']}"
                problems = self._server_check(check, ctx)
            failures += [f"{label}: {p}" for p in problems]
        return failures

    def _settled_log(self) -> list[dict[str, Any]]:
        """The case's requests, once those still being answered have their status.

        A background request (a renewal, a bundle refresh) may arrive just before
        the last step ends and be answered just after: wait for its status (a
        bounded while) rather than check a half-written entry.
        """
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            entries: list[dict[str, Any]] = []
            for name, server in self.servers.items():
                entries += [
                    {**e, "replica": name}
                    for e in server.requests_since(self.start_seq[name])
                    if e["seq"] <= self.end_seq[name]
                ]
            # A stopped replica's entries are final: one it never answered stays null.
            pending = [
                e for e in entries if e["status"] is None and not self.servers[e["replica"]].stopped
            ]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if len(self.servers) > 1:
            # Replicas run on one machine: their monotonic clocks are one clock.
            entries.sort(key=lambda e: (e["received_monotonic"], e["replica"], e["seq"]))
        return entries

    def _issued_request_id(self, request_id: str) -> bool:
        return any(server.issued_request_id(request_id) for server in self.servers.values())

    def _client_check(self, check: dict[str, Any], ctx: matchers.Context) -> list[str]:
        outcome = self.outcomes.get(check["client"])
        if outcome is None:
            return ["the step did not run"]
        expected = {k: v for k, v in check.items() if k != "client"}
        if "ok" not in expected:
            if "error" in expected:
                expected["ok"] = False
            elif {"result", "meta", "by_rpc"} & set(expected):
                expected["ok"] = True
        problems = matchers.match(expected, outcome, ctx, "$")
        if problems and "ok" in expected and outcome.get("ok") != expected["ok"]:
            problems.append(f"(the call answered {_short(outcome)})")
        return problems

    def _entries(self, check: dict[str, Any]) -> list[dict[str, Any]]:
        during = check.get("during") or []
        windows = [self.windows[d] for d in ([during] if isinstance(during, str) else during)]
        replica = check.get("replica")
        out = []
        for entry in self.log:
            if replica is not None and entry["replica"] != replica:
                continue
            if windows and not any(
                w[entry["replica"]][0] < entry["seq"] <= w[entry["replica"]][1] for w in windows
            ):
                continue
            rpcs = check["server"] if isinstance(check["server"], list) else [check["server"]]
            if "*" not in rpcs and entry["rpc"] not in rpcs:
                continue
            if not check.get("include_admin") and entry.get("client_spiffe_id") == ADMIN_ID:
                continue
            out.append(entry)
        return out

    def _server_check(self, check: dict[str, Any], ctx: matchers.Context) -> list[str]:
        entries = self._entries(check)
        p: list[str] = []
        if "count" in check:
            p += matchers.match(check["count"], len(entries), ctx, "count")
        if "status" in check:
            p += matchers.match(check["status"], [e["status"] for e in entries], ctx, "status")
        if "attempts" in check:
            attempts = [_int(e["headers"].get("secinfra-attempt")) for e in entries]
            p += matchers.match(check["attempts"], attempts, ctx, "attempts")
        if "idempotency_key" in check:
            p += _key_rule(check["idempotency_key"], entries)
        if "headers" in check:
            wanted = {str(k).lower(): v for k, v in check["headers"].items()}
            for e in entries:
                p += matchers.match(wanted, e["headers"], ctx, f"seq {e['seq']} headers")
            if not entries:
                p.append("headers: no requests to check")
        if "entries" in check:
            p += matchers.match(check["entries"], entries, ctx, "entries")
        if "gaps" in check:
            gaps = [
                round(b["received_monotonic"] - a["received_monotonic"], 4)
                for a, b in itertools.pairwise(entries)
            ]
            p += matchers.match(check["gaps"], gaps, ctx, "gaps")
        for name in ("first", "last"):
            if name in check:
                if not entries:
                    p.append(f"{name}: no requests")
                else:
                    chosen = entries[0] if name == "first" else entries[-1]
                    p += matchers.match(check[name], chosen, ctx, name)
        if "no_return" in check:
            p += _no_return(str(check["no_return"]), entries)
        if check.get("sequential"):
            p += _sequential(entries)
        for fld, matcher in (check.get("distinct") or {}).items():
            values = {_lookup(e, str(fld)) for e in entries}
            values.discard(None)
            p += matchers.match(matcher, len(values), ctx, f"distinct {fld}")
        if p:
            p.append("requests seen: " + "; ".join(_brief(e) for e in entries[:12]))
        return p


def _outcome(answer: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
        "ok": answer["ok"],
        "result": answer.get("result"),
        "meta": answer.get("meta"),
        "error": answer.get("error"),
        "elapsed": round(elapsed, 4),
    }


def by_rpc(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """An observations result's notifications by RPC name (``GetSecret``), oldest first.

    A case checks one call's notifications as an exact list this way, whatever
    the client did on its own meanwhile (a renewal, a bundle refresh). The key
    is the part of the full name after the slash; the entries keep ``rpc``.
    """
    grouped: dict[str, list[dict[str, Any]]] = {}
    for observation in result.get("observations") or []:
        if not isinstance(observation, dict):
            continue
        name = str(observation.get("rpc") or "").rsplit("/", 1)[-1]
        grouped.setdefault(name, []).append(observation)
    return grouped


def _normalise(entry: dict[str, Any]) -> dict[str, Any]:
    entry = dict(entry)
    entry["headers"] = {str(k).lower(): v for k, v in (entry.get("headers") or {}).items()}
    # Derived: how long the presented client certificate had left when the
    # request arrived (server clock), or None without a certificate.
    entry["client_cert_seconds_left"] = None
    if entry.get("client_not_after") and entry.get("received_at"):
        left = datetime.fromisoformat(entry["client_not_after"]) - datetime.fromisoformat(
            entry["received_at"]
        )
        entry["client_cert_seconds_left"] = round(left.total_seconds(), 3)
    return entry


def _no_return(field_name: str, entries: list[dict[str, Any]]) -> list[str]:
    """A value, once followed by another, never comes back (e.g. an old serial)."""
    runs: list[Any] = []
    for entry in entries:
        value = _lookup(entry, field_name)
        if value is not None and (not runs or runs[-1] != value):
            runs.append(value)
    back = [v for i, v in enumerate(runs) if v in runs[:i]]
    if back:
        return [f"no_return {field_name}: {back[0]!r} came back after a newer value: {runs}"]
    return []


def _sequential(entries: list[dict[str, Any]]) -> list[str]:
    """No entry arrived before the server had finished the one before it (spec 3.1.2)."""
    if len(entries) < 2:
        return [f"sequential: needs two requests or more to compare, got {len(entries)}"]
    out = []
    for before, after in itertools.pairwise(entries):
        finished = before.get("finished_monotonic")
        if finished is None or after["received_monotonic"] < finished:
            out.append(
                f"sequential: seq {after['seq']} arrived at {after['received_monotonic']:.3f},"
                f" before seq {before['seq']} was finished ({finished})"
            )
    return out


def _int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _lookup(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        value = (
            value.get(part.lower() if value is entry.get("headers") else part)
            if isinstance(value, dict)
            else None
        )
    return value


def _key_rule(rule: str, entries: list[dict[str, Any]]) -> list[str]:
    keys = [e["headers"].get("idempotency-key") for e in entries]
    if not entries:
        return [f"idempotency_key {rule}: no requests to check"]
    if rule == "absent":
        return (
            [] if all(k is None for k in keys) else [f"idempotency_key: expected none, got {keys}"]
        )
    if any(not k for k in keys):
        return [f"idempotency_key {rule}: some requests carry none: {keys}"]
    if rule == "same" and len(set(keys)) != 1:
        return [f"idempotency_key: expected one key on every attempt, got {keys}"]
    if rule == "distinct" and len(set(keys)) != len(keys):
        return [f"idempotency_key: expected a different key per call, got {keys}"]
    return []


def _brief(e: dict[str, Any]) -> str:
    h = e["headers"]
    parts = [
        f"#{e['seq']}@{e.get('replica', 'a')} {e['rpc']} {e['status']}",
        f"attempt={h.get('secinfra-attempt')}",
    ]
    if h.get("idempotency-key"):
        parts.append(f"key={str(h['idempotency-key'])[:8]}")
    if h.get("if-none-match"):
        parts.append("if-none-match")
    parts.append(f"t={e['received_monotonic']:.3f}")
    return " ".join(parts)


def _short(outcome: dict[str, Any]) -> str:
    if outcome.get("ok"):
        return f"ok, meta {outcome.get('meta')}"
    error = outcome.get("error") or {}
    return f"error {error.get('type')} {error.get('code')}: {str(error.get('message'))[:200]}"


def run_case(case: Case, sdk: str, pool: ServerPool) -> CaseResult:
    """Run one case; never raises (problems become a failed or errored result)."""
    started = time.monotonic()
    result = CaseResult(case=case, sdk=sdk, outcome=ERROR)
    run: _Run | None = None
    watchdog: threading.Timer | None = None
    try:
        with pool.servers_for(case) as servers:
            run = _Run(case, sdk, servers)
            try:
                run.setup()
                # timeout_seconds bounds the client's part: from its start to the
                # last step (server start-up and the checks do not count).
                watchdog = threading.Timer(case.timeout_seconds, run.expire)
                watchdog.daemon = True
                watchdog.start()
                run.start_client()
                run.run_steps()
                watchdog.cancel()
                if run.expired.is_set():
                    raise AdapterFailure("the case ran out of time")
                failures = run.check_all()
                result.outcome = FAILED if failures else PASSED
                result.failures = failures
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                if run.client is not None:
                    result.details = _details(run)
                    run.client.close()
                run.close_peers()
    except _Unsupported as exc:
        result.outcome = UNSUPPORTED
        result.failures = [f"the client does not support: {exc}"]
    except AdapterFailure as exc:
        result.outcome = FAILED
        result.failures = [f"adapter: {exc}"]
        if run is not None and run.expired.is_set():
            result.failures = [
                f"timed out: the case ran past its timeout_seconds"
                f" ({case.timeout_seconds:g} s); the client was killed ({exc})"
            ]
        if run is not None and run.client is not None:
            result.details += "\nclient stderr:\n" + run.client.stderr_tail()
    except (ServerError, PeerError, ValueError, OSError) as exc:
        result.outcome = ERROR
        result.failures = [f"runner: {type(exc).__name__}: {exc}"]
        result.details += traceback.format_exc(limit=5)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _details(run: _Run) -> str:
    assert run.client is not None
    transcript = run.client.transcript[-40:]
    return "protocol transcript (last lines):\n" + "\n".join(line[:400] for line in transcript)
