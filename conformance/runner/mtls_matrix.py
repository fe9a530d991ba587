"""The cross-language mTLS matrix: every SDK as server against every SDK as client.

``python -m conformance.runner --mtls-matrix`` enrols two conformance
clients per SDK on one reference server, ``spiffe://<td>/w/mtls-matrix/<sdk>-server``
and ``...-client``. For each (server SDK, client SDK) pair the server client
serves (``mtls_serve``) with an authorizer for exactly the client's ID, and
the client client calls it (``mtls_call``) with an authorizer for exactly the
server's ID. A pair passes when the call is answered 200, the client verified
the server's ID, the server's handler read the client's ID, and the client
presented its current certificate. A pair whose SDK does not declare the
feature ``mtls`` is skipped with that reason.

It writes ``mtls-matrix.json`` and ``mtls-matrix.md`` to the report folder;
``--write-snapshot`` also writes ``docs/conformance/mtls-matrix.json``, which
the docs page (``docs/_ext/mtls_matrix.py``) shows when the checkout has no
run of its own.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from .adapter import AdapterFailure, AdapterProcess
from .execute import DEFAULT_DEADLINE_SECONDS, SHORT_OP_SECONDS
from .sdks import ROOT, SDKS
from .server import TRUST_DOMAIN, Server, ServerError

REPORT_VERSION: Final = 1
FEATURE: Final = "mtls"
JSON_NAME: Final = "mtls-matrix.json"
MARKDOWN_NAME: Final = "mtls-matrix.md"
SNAPSHOT: Final = Path("docs/conformance/mtls-matrix.json")
CALL_TIMEOUT_SECONDS: Final = 10.0
ROLES: Final = ("server", "client")

PASSED: Final = "passed"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"


@dataclass
class Pair:
    """One cell: ``server`` SDK serving, ``client`` SDK calling."""

    server: str
    client: str
    status: str = FAILED
    seconds: float = 0.0
    server_spiffe_id: str = ""
    client_spiffe_id: str = ""
    failures: list[str] = field(default_factory=list)
    skip_reason: str = ""


def spiffe_id(sdk: str, role: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/w/mtls-matrix/{sdk}-{role}"


class _Side:
    """One enrolled conformance client of one SDK in one role."""

    def __init__(self, sdk: str, role: str, server: Server) -> None:
        self.sdk = sdk
        self.role = role
        self.spiffe_id = spiffe_id(sdk, role)
        self.process = AdapterProcess(list(SDKS[sdk].command), ROOT)
        self.serial = ""
        self.problem = ""
        try:
            self.process.handshake()
            answer = self.process.request(
                "configure",
                SHORT_OP_SECONDS + DEFAULT_DEADLINE_SECONDS,
                server_url=server.url,
                bundle_pem=server.bundle_pem,
                join_token=server.join_token(self.spiffe_id),
                options={},
            )
        except AdapterFailure as exc:
            self.problem = f"the {sdk} {role} client: {exc}"
            return
        if not answer["ok"]:
            self.problem = f"the {sdk} {role} client did not enrol: {answer.get('error')}"
            return
        self.serial = str(answer["result"].get("serial") or "")

    def close(self) -> None:
        self.process.close()


def _run_pair(pair: Pair, server: _Side, client: _Side) -> None:
    """Serve, call, stop; the pair's failures (none: passed)."""
    for side in (server, client):
        if side.problem:
            pair.failures.append(side.problem)
    if pair.failures:
        return
    try:
        served = server.process.request(
            "mtls_serve",
            SHORT_OP_SECONDS,
            authorizer={"kind": "id", "id": client.spiffe_id},
        )
        if not served["ok"]:
            pair.failures.append(f"mtls_serve failed: {served.get('error')}")
            return
        port = int(served["result"]["port"])
        try:
            called = client.process.request(
                "mtls_call",
                CALL_TIMEOUT_SECONDS,
                url=f"https://127.0.0.1:{port}/mtls-matrix",
                authorizer={"kind": "id", "id": server.spiffe_id},
                timeout_seconds=CALL_TIMEOUT_SECONDS,
            )
        finally:
            stopped = server.process.request("mtls_stop", SHORT_OP_SECONDS)
        if not stopped["ok"]:
            pair.failures.append(f"mtls_stop failed: {stopped.get('error')}")
    except AdapterFailure as exc:
        pair.failures.append(f"adapter: {exc}")
        return
    pair.failures += _check_call(called, server, client)


def _check_call(called: dict[str, Any], server: _Side, client: _Side) -> list[str]:
    if not called["ok"]:
        return [f"the {client.sdk} client's call failed: {called.get('error')}"]
    result = called.get("result") or {}
    problems = []
    if result.get("status") != 200:
        problems.append(f"status {result.get('status')}, expected 200")
    if result.get("peer_spiffe_id") != server.spiffe_id:
        problems.append(
            f"the {client.sdk} client verified the server as {result.get('peer_spiffe_id')!r},"
            f" expected {server.spiffe_id}"
        )
    try:
        body = json.loads(str(result.get("body") or ""))
    except ValueError:
        body = None
    seen = body.get("peer_spiffe_id") if isinstance(body, dict) else None
    if seen != client.spiffe_id:
        problems.append(
            f"the {server.sdk} server's handler read the client as {seen!r},"
            f" expected {client.spiffe_id} (body {str(result.get('body'))[:200]!r})"
        )
    if result.get("presented_serial") != client.serial:
        problems.append(
            f"the {client.sdk} client presented serial {result.get('presented_serial')!r},"
            f" its identity is {client.serial!r}"
        )
    return problems


def run(sdks: Sequence[str], features: dict[str, frozenset[str]]) -> tuple[bool, list[Pair], float]:
    """Every pair of ``sdks``; (ok, pairs in server-then-client order, wall seconds)."""
    started = time.monotonic()
    pairs = [Pair(server=s, client=c) for s in sdks for c in sdks]
    capable = [sdk for sdk in sdks if FEATURE in features[sdk]]
    for pair in pairs:
        pair.server_spiffe_id = spiffe_id(pair.server, "server")
        pair.client_spiffe_id = spiffe_id(pair.client, "client")
        lacking = sorted({pair.server, pair.client} - set(capable))
        if lacking:
            pair.status = SKIPPED
            pair.skip_reason = "skipped: " + "; ".join(
                f"the {sdk} client does not declare the feature mtls" for sdk in lacking
            )
    sides: dict[tuple[str, str], _Side] = {}
    reference: Server | None = None
    try:
        if capable:
            reference = Server().start()
            for sdk in capable:
                for role in ROLES:
                    sides[(sdk, role)] = _Side(sdk, role, reference)
        for pair in pairs:
            if pair.status == SKIPPED:
                continue
            t0 = time.monotonic()
            _run_pair(pair, sides[(pair.server, "server")], sides[(pair.client, "client")])
            pair.status = FAILED if pair.failures else PASSED
            pair.seconds = round(time.monotonic() - t0, 3)
    except ServerError as exc:
        for pair in pairs:
            if pair.status != SKIPPED and pair.status != PASSED:
                pair.failures.append(f"runner: {exc}")
    finally:
        for side in sides.values():
            side.close()
        if reference is not None:
            reference.close()
    ok = not any(p.status == FAILED for p in pairs)
    return ok, pairs, round(time.monotonic() - started, 3)


def report(ok: bool, pairs: Sequence[Pair], wall_seconds: float) -> dict[str, Any]:
    summary: dict[str, int] = {}
    for pair in pairs:
        summary[pair.status] = summary.get(pair.status, 0) + 1
    return {
        "report_version": REPORT_VERSION,
        "ok": ok,
        "wall_seconds": wall_seconds,
        "sdks": sorted({p.server for p in pairs}),
        "summary": summary,
        "pairs": [asdict(p) for p in pairs],
    }


def markdown(data: dict[str, Any]) -> str:
    """The matrix as a Markdown table (rows: server SDK, columns: client SDK)."""
    sdks: list[str] = data["sdks"]
    cells = {(p["server"], p["client"]): p for p in data["pairs"]}
    text = {PASSED: "pass", FAILED: "**FAIL**", SKIPPED: "skipped"}
    lines = [
        "| server \\ client | " + " | ".join(sdks) + " |",
        "| --- | " + " | ".join("---" for _ in sdks) + " |",
    ]
    for server in sdks:
        marks = [text.get(cells[(server, c)]["status"], "?") for c in sdks]
        lines.append(f"| **{server}** | " + " | ".join(marks) + " |")
    notes = [
        f"- {p['server']} serving, {p['client']} calling ({p['status']}): "
        + " ".join((p["skip_reason"] or "; ".join(p["failures"])).split()).replace("|", "\\|")
        for p in data["pairs"]
        if p["status"] != PASSED
    ]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def write(data: dict[str, Any], report_dir: Path) -> list[Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path = report_dir / JSON_NAME
    json_path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    md_path = report_dir / MARKDOWN_NAME
    md_path.write_text("# mTLS matrix\n\n" + markdown(data), encoding="utf-8")
    return [json_path, md_path]


def write_snapshot(data: dict[str, Any], command: str) -> Path:
    """``docs/conformance/mtls-matrix.json``: this run, with the commit it ran at."""

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed read-only git commands
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    snapshot = {
        "ran_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": command,
        "report": data,
    }
    target = ROOT / SNAPSHOT
    target.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return target
