"""One SDK's conformance client process, spoken to over the adapter protocol.

docs/conformance/adapter-protocol.md is the contract; this is the runner side.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any, Final

PROTOCOL: Final = 1
HELLO_TIMEOUT_SECONDS: Final = 60.0
#: Added to an op's own time bound before the runner gives up on the answer.
ANSWER_GRACE_SECONDS: Final = 30.0
STDERR_LINES_KEPT: Final = 400


class AdapterFailure(RuntimeError):
    """The client broke the protocol, timed out, or exited."""


def _with_defaults(op: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with the values its proto gives fields that were left out.

    Proto3 JSON may leave out an empty list, and encoders do (Go's
    ``omitempty``), as they may an empty Struct: a successful call's result
    that is an empty message. Checks then see ``[]`` and ``{}``, as the
    client meant, rather than null.
    """
    if not answer["ok"]:
        return answer
    if op in ("call", "configure", "identity", "shutdown"):
        return {**answer, "result": answer.get("result") or {}}
    result = answer.get("result") or {}
    if op in ("events", "observations"):
        return {**answer, "result": {**result, op: result.get(op) or []}}
    if op == "concurrent" and isinstance(result.get("results"), list):
        outcomes = [
            {**o, "result": o.get("result") or {}} if isinstance(o, dict) and o.get("ok") else o
            for o in result["results"]
        ]
        return {**answer, "result": {**result, "results": outcomes}}
    return answer


class AdapterProcess:
    """A running conformance client.

    The client runs in a process group of its own, so that `kill` also ends
    what it started (``go run`` and ``mvn exec`` run the client as a child).
    Construct it, then call `handshake` for the hello line.
    """

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - argv from the runner's SDK table
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._next_id = 1
        self.transcript: list[str] = []
        self.hello: dict[str, Any] = {}
        self.features: frozenset[str] = frozenset()
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def handshake(self) -> None:
        """Read and check the hello line (AdapterFailure if it is wrong or late)."""
        hello = self._read(HELLO_TIMEOUT_SECONDS, "hello")
        info = hello.get("hello") if isinstance(hello, dict) else None
        if not isinstance(info, dict):
            raise AdapterFailure(f"the first line must be a hello message, got {hello!r}")
        if info.get("protocol") != PROTOCOL:
            raise AdapterFailure(
                f"the client speaks protocol {info.get('protocol')!r};"
                f" this runner speaks {PROTOCOL}"
            )
        features = info.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise AdapterFailure(
                f"hello.features must be a list of feature names, got {features!r}"
            )
        self.hello = info
        self.features = frozenset(features)

    @classmethod
    def probe(cls, argv: list[str], cwd: Path) -> frozenset[str]:
        """Start a client only for its hello; the features it declares."""
        client = cls(argv, cwd)
        try:
            client.handshake()
            return client.features
        finally:
            client.close()

    def _pump_stdout(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line)

    def stderr_tail(self, lines: int = 30) -> str:
        return "".join(list(self._stderr)[-lines:])

    def _read(self, timeout: float, what: str) -> Any:
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AdapterFailure(f"no answer to {what} within {timeout:g} s") from None
            if line is None:
                code = self._process.wait(5)
                raise AdapterFailure(
                    f"the client exited (status {code}) while the runner waited for {what}"
                )
            self.transcript.append("< " + line.rstrip())
            if not line.strip():
                continue
            try:
                return json.loads(line)
            except ValueError as exc:
                raise AdapterFailure(f"not a JSON line on stdout: {line[:200]!r}") from exc

    def request(self, op: str, timeout: float, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its answer (requests are sequential)."""
        ident = self._next_id
        self._next_id += 1
        line = json.dumps({"id": ident, "op": op, **fields}, separators=(",", ":"))
        self.transcript.append("> " + line)
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()
        except OSError as exc:
            raise AdapterFailure(f"cannot write to the client: {exc}") from exc
        answer = self._read(timeout + ANSWER_GRACE_SECONDS, f"{op} (id {ident})")
        if not isinstance(answer, dict) or answer.get("id") != ident:
            raise AdapterFailure(f"expected the answer to id {ident}, got {answer!r}")
        if not isinstance(answer.get("ok"), bool):
            raise AdapterFailure(f"answer {ident} has no boolean 'ok'")
        return _with_defaults(op, answer)

    def kill(self) -> None:
        """Kill the client and everything in its process group, now."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(10)

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(AdapterFailure):
                self.request("shutdown", 5)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        # Whatever the client left running in its group (a child it started).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
