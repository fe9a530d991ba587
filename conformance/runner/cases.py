"""Loading and validating case files (``conformance/cases/<suite>.yaml``).

The schema is documented in ``conformance/README.md``; every problem is
reported with the file, the case and the path of the bad field, and all
problems of a file are reported together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from . import matchers
from .server import ROUTES_BY_RPC

CASES_DIR: Final = Path(__file__).resolve().parent.parent / "cases"

NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]*$")
#: A subsection "N.M" or a requirement "N.M.K" (every section has subsections).
SPEC_RE: Final = re.compile(r"^(1[01]|[1-9])(\.[1-9][0-9]*){1,2}$")
DEFAULT_TIMEOUT_SECONDS: Final = 60.0
#: The implicit first step: the client is created and enrols (checks may name it).
CONFIGURE_STEP: Final = "configure"

CASE_KEYS: Final = {
    "name",
    "spec",
    "description",
    "share_server",
    "timeout_seconds",
    "setup",
    "steps",
    "checks",
}
SETUP_KEYS: Final = {
    "server",
    "client",
    "workload",
    "attestation",
    "secrets",
    "grants",
    "scripts",
}
#: How the client enrols: a one-time join token (default) or a reusable JWT.
ATTESTATIONS: Final = {"join_token", "jwt"}
SERVER_SETTINGS: Final = {
    "leaf_ttl_seconds",
    "server_cert_ttl_seconds",
    "bundle_refresh_hint_seconds",
    "authz_check_max_age_seconds",
    "join_token_default_ttl_seconds",
    "max_in_flight",
    "ca_auto_rotate",
    "header_timeout_seconds",
}
CLIENT_OPTIONS: Final = {
    "max_attempts",
    "deadline_seconds",
    "attempt_timeout_seconds",
    "cache_size",
}
CALL_OPTIONS: Final = {
    "max_attempts",
    "deadline_seconds",
    "attempt_timeout_seconds",
    "idempotency_key",
    "use_cache",
}
SCRIPT_STEP_KEYS: Final = {"status", "headers", "body", "delay_ms", "reset", "pass", "times"}
#: Step actions and the other keys each allows (``id`` is allowed on all).
STEP_ACTIONS: Final[dict[str, set[str]]] = {
    "call": {"request", "call_options"},
    "concurrent": {"request", "call_options", "count"},
    "repeat": {"request", "call_options", "times", "interval"},
    "admin": {"request"},
    "script": set(),
    "sleep": set(),
    "control": set(),
    "identity": set(),
    "events": set(),
}
CLIENT_CHECK_KEYS: Final = {"client", "ok", "result", "meta", "error", "elapsed", "outcomes"}
SERVER_CHECK_KEYS: Final = {
    "server",
    "during",
    "include_admin",
    "count",
    "status",
    "attempts",
    "idempotency_key",
    "headers",
    "entries",
    "gaps",
    "distinct",
    "first",
    "last",
    "no_return",
}
IDEMPOTENCY_KEY_RULES: Final = {"same", "distinct", "present", "absent"}


class CaseError(ValueError):
    """One or more case files are invalid; the message lists every problem."""


@dataclass(frozen=True)
class Case:
    suite: str
    name: str
    spec: str
    description: str
    setup: dict[str, Any]
    steps: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    share_server: bool = False
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    source: str = ""
    step_ids: list[str] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.suite}/{self.name}"


def load_all(directory: Path = CASES_DIR) -> list[Case]:
    """Every case of every ``*.yaml`` file, sorted by file; CaseError on any problem."""
    cases: list[Case] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            cases += load_file(path)
        except CaseError as exc:
            problems.append(str(exc))
    seen: set[str] = set()
    for case in cases:
        if case.full_name in seen:
            problems.append(f"{case.source}: case {case.full_name} is defined twice")
        seen.add(case.full_name)
    if problems:
        raise CaseError("\n".join(problems))
    return cases


def load_file(path: Path) -> list[Case]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CaseError(f"{path}: not valid YAML: {exc}") from exc
    return parse_document(doc, path.stem, str(path))


def parse_document(doc: Any, suite: str, source: str) -> list[Case]:
    """Cases from a parsed YAML document; CaseError listing every problem."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise CaseError(f"{source}: the file must be a mapping with 'suite' and 'cases'")
    unknown = set(doc) - {"suite", "cases"}
    if unknown:
        problems.append(f"{source}: unknown top-level keys {sorted(unknown)}")
    if doc.get("suite") != suite:
        problems.append(
            f"{source}: 'suite' must be {suite!r} (the file name), got {doc.get('suite')!r}"
        )
    raw_cases = doc.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        problems.append(f"{source}: 'cases' must be a non-empty list")
        raw_cases = []
    cases: list[Case] = []
    for index, raw in enumerate(raw_cases):
        label = f"{source}: cases[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label = f"{source}: case {suite}/{raw['name']}"
        found = _check_case(raw, label)
        problems += found
        if not found:
            steps = raw["steps"]
            cases.append(
                Case(
                    suite=suite,
                    name=raw["name"],
                    spec=str(raw["spec"]),
                    description=" ".join(str(raw["description"]).split()),
                    setup=dict(raw.get("setup") or {}),
                    steps=steps,
                    checks=raw["checks"],
                    share_server=bool(raw.get("share_server", False)),
                    timeout_seconds=float(raw.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
                    source=source,
                    step_ids=[_step_id(step, i) for i, step in enumerate(steps)],
                )
            )
    if problems:
        raise CaseError("\n".join(problems))
    return cases


def _step_id(step: dict[str, Any], index: int) -> str:
    if "id" in step:
        return str(step["id"])
    for label_action in ("identity", "events"):
        if label_action in step and isinstance(step[label_action], str):
            return str(step[label_action])
    return f"step{index + 1}"


def _check_case(raw: Any, label: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{label}: a case is a mapping"]
    p: list[str] = []
    unknown = set(raw) - CASE_KEYS
    if unknown:
        p.append(f"{label}: unknown keys {sorted(unknown)} (allowed: {sorted(CASE_KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        p.append(f"{label}: 'name' must match {NAME_RE.pattern}, got {name!r}")
    spec = raw.get("spec")
    if not isinstance(spec, str) or not SPEC_RE.match(spec):
        p.append(
            f"{label}: 'spec' must cite a spec subsection as a quoted string like \"3.4\""
            f' or "3.4.2" (sections 1-11), got {spec!r}'
        )
    if not isinstance(raw.get("description"), str) or not raw["description"].strip():
        p.append(f"{label}: 'description' is required: say what the case proves")
    timeout = raw.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if not isinstance(timeout, int | float) or not 1 <= timeout <= 600:
        p.append(f"{label}: 'timeout_seconds' must be a number from 1 to 600")
    share = raw.get("share_server", False)
    if not isinstance(share, bool):
        p.append(f"{label}: 'share_server' must be true or false")
    p += _check_setup(raw.get("setup") or {}, f"{label}: setup", shared=share is True)
    steps = raw.get("steps")
    ids: list[str] = [CONFIGURE_STEP]
    if not isinstance(steps, list) or not steps:
        p.append(f"{label}: 'steps' must be a non-empty list")
    else:
        for i, step in enumerate(steps):
            p += _check_step(step, f"{label}: steps[{i}]", shared=share is True)
            if isinstance(step, dict):
                ids.append(_step_id(step, i))
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            p.append(
                f"{label}: step ids must be unique ({CONFIGURE_STEP!r} is the implicit"
                f" enrolment step), repeated: {dupes}"
            )
    checks = raw.get("checks")
    if not isinstance(checks, list) or not checks:
        p.append(f"{label}: 'checks' must be a non-empty list (every case checks something)")
    else:
        for i, check in enumerate(checks):
            p += _check_check(check, f"{label}: checks[{i}]", ids)
    return p


def _check_setup(setup: Any, where: str, *, shared: bool) -> list[str]:
    if not isinstance(setup, dict):
        return [f"{where}: must be a mapping"]
    p: list[str] = []
    unknown = set(setup) - SETUP_KEYS
    if unknown:
        p.append(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(SETUP_KEYS)})")
    server = setup.get("server") or {}
    if not isinstance(server, dict):
        p.append(f"{where}.server: must be a mapping of server settings")
    else:
        for key in set(server) - SERVER_SETTINGS:
            p.append(f"{where}.server: unknown setting {key!r} (known: {sorted(SERVER_SETTINGS)})")
        if server and shared:
            p.append(f"{where}.server: a case with share_server: true cannot change the server")
    attestation = setup.get("attestation", "join_token")
    if attestation not in ATTESTATIONS:
        p.append(f"{where}.attestation: one of {sorted(ATTESTATIONS)}, got {attestation!r}")
    elif attestation == "jwt" and shared:
        p.append(f"{where}.attestation: a case with share_server: true cannot use jwt")
    elif attestation == "jwt" and "workload" in setup:
        p.append(
            f"{where}.workload: a jwt case's SPIFFE ID comes from its token"
            " (ns/conformance/sa/<suite>-<case>); leave workload out"
        )
    client = setup.get("client") or {}
    if not isinstance(client, dict):
        p.append(f"{where}.client: must be a mapping")
    else:
        for key in set(client) - CLIENT_OPTIONS:
            p.append(f"{where}.client: unknown option {key!r} (known: {sorted(CLIENT_OPTIONS)})")
    for i, secret in enumerate(setup.get("secrets") or []):
        w = f"{where}.secrets[{i}]"
        if not isinstance(secret, dict) or not isinstance(secret.get("name"), str):
            p.append(f"{w}: give at least a 'name'")
            continue
        for key in set(secret) - {"name", "value", "policy"}:
            p.append(f"{w}: unknown key {key!r} (allowed: name, value, policy)")
        if shared and not secret["name"].startswith("${ns}/"):
            p.append(f"{w}: shared-server cases must name secrets '${{ns}}/...'")
    for i, grant in enumerate(setup.get("grants") or []):
        w = f"{where}.grants[{i}]"
        if not isinstance(grant, dict) or not {"relation", "object"} <= set(grant):
            p.append(f"{w}: give 'relation' and 'object' (and optionally 'user')")
        elif set(grant) - {"relation", "object", "user"}:
            p.append(f"{w}: unknown keys {sorted(set(grant) - {'relation', 'object', 'user'})}")
    p += _check_scripts(setup.get("scripts") or {}, f"{where}.scripts")
    return p


def _check_scripts(scripts: Any, where: str) -> list[str]:
    if not isinstance(scripts, dict):
        return [f"{where}: must map RPC names to lists of steps"]
    p: list[str] = []
    for rpc, steps in scripts.items():
        if rpc not in ROUTES_BY_RPC:
            p.append(f"{where}: unknown RPC {rpc!r}")
        if not isinstance(steps, list) or not steps:
            p.append(f"{where}.{rpc}: give a non-empty list of steps")
            continue
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                p.append(f"{where}.{rpc}[{i}]: a step is a mapping")
                continue
            for key in set(step) - SCRIPT_STEP_KEYS:
                p.append(
                    f"{where}.{rpc}[{i}]: unknown key {key!r} (allowed: {sorted(SCRIPT_STEP_KEYS)})"
                )
            times = step.get("times", 1)
            if not isinstance(times, int) or not 1 <= times <= 1000:
                p.append(f"{where}.{rpc}[{i}].times: an integer from 1 to 1000")
    return p


def _check_step(step: Any, where: str, *, shared: bool) -> list[str]:
    if not isinstance(step, dict):
        return [f"{where}: a step is a mapping"]
    actions = [k for k in step if k in STEP_ACTIONS]
    if len(actions) != 1:
        return [
            f"{where}: give exactly one action of {sorted(STEP_ACTIONS)}, got {actions or 'none'}"
        ]
    action = actions[0]
    p: list[str] = []
    extra = set(step) - {action, "id"} - STEP_ACTIONS[action]
    if extra:
        p.append(f"{where}: {action} does not take {sorted(extra)}")
    value = step[action]
    if action in ("call", "concurrent", "repeat", "admin") and value not in ROUTES_BY_RPC:
        p.append(f"{where}.{action}: unknown RPC {value!r}")
    if action == "call" and "request" in step and not isinstance(step["request"], dict):
        p.append(f"{where}.request: must be a mapping (the request's wire JSON)")
    if "call_options" in step:
        opts = step["call_options"]
        if not isinstance(opts, dict):
            p.append(f"{where}.call_options: must be a mapping")
        else:
            for key in set(opts) - CALL_OPTIONS:
                p.append(
                    f"{where}.call_options: unknown option {key!r} (known: {sorted(CALL_OPTIONS)})"
                )
    if action == "concurrent":
        count = step.get("count")
        if not isinstance(count, int) or not 2 <= count <= 256:
            p.append(f"{where}.count: an integer from 2 to 256")
    if action == "repeat":
        times = step.get("times")
        if not isinstance(times, int) or not 1 <= times <= 1000:
            p.append(f"{where}.times: an integer from 1 to 1000")
        if not isinstance(step.get("interval", 0), int | float):
            p.append(f"{where}.interval: seconds between calls")
    if action == "sleep" and (not isinstance(value, int | float) or not 0 < value <= 120):
        p.append(f"{where}.sleep: seconds, more than 0 and at most 120")
    if action == "script":
        p += _check_scripts(value, f"{where}.script")
    if action == "control":
        if not isinstance(value, dict) or not {"method", "path"} <= set(value):
            p.append(f"{where}.control: give 'method' and 'path' (and optionally 'body')")
        elif not str(value["path"]).startswith("/_test/"):
            p.append(f"{where}.control.path: control paths start with /_test/")
        if shared:
            p.append(f"{where}: a case with share_server: true cannot use control steps")
    if action in ("identity", "events") and not isinstance(value, str):
        p.append(f"{where}.{action}: give the step's id (a name for later checks)")
    return p


def _check_check(check: Any, where: str, ids: list[str]) -> list[str]:
    if not isinstance(check, dict):
        return [f"{where}: a check is a mapping"]
    p: list[str] = []
    if ("client" in check) == ("server" in check):
        return [f"{where}: give exactly one of 'client: <step id>' or 'server: <RPC or *>'"]
    if "client" in check:
        for key in set(check) - CLIENT_CHECK_KEYS:
            p.append(
                f"{where}: unknown key {key!r} for a client check"
                f" (allowed: {sorted(CLIENT_CHECK_KEYS)})"
            )
        if check["client"] not in ids:
            p.append(f"{where}.client: no step has id {check['client']!r} (ids: {ids})")
        if len(set(check) & (CLIENT_CHECK_KEYS - {"client"})) == 0:
            p.append(f"{where}: the check checks nothing")
        if "error" in check and check.get("ok") is True:
            p.append(f"{where}: 'error' with 'ok: true' can never pass")
    else:
        for key in set(check) - SERVER_CHECK_KEYS:
            p.append(
                f"{where}: unknown key {key!r} for a server check"
                f" (allowed: {sorted(SERVER_CHECK_KEYS)})"
            )
        rpcs = check["server"] if isinstance(check["server"], list) else [check["server"]]
        for rpc in rpcs:
            if rpc != "*" and rpc not in ROUTES_BY_RPC:
                p.append(f"{where}.server: unknown RPC {rpc!r}")
        during = check.get("during", [])
        for step_id in [during] if isinstance(during, str) else during:
            if step_id not in ids:
                p.append(f"{where}.during: no step has id {step_id!r} (ids: {ids})")
        rule = check.get("idempotency_key")
        if rule is not None and rule not in IDEMPOTENCY_KEY_RULES:
            p.append(f"{where}.idempotency_key: one of {sorted(IDEMPOTENCY_KEY_RULES)}")
        if len(set(check) & (SERVER_CHECK_KEYS - {"server", "during", "include_admin"})) == 0:
            p.append(f"{where}: the check checks nothing")
        if "distinct" in check and not isinstance(check["distinct"], dict):
            p.append(f"{where}.distinct: map entry fields to a matcher of their distinct count")
    for key, value in check.items():
        if key not in ("client", "server", "during"):
            p += matchers.validate(value, f"{where}.{key}")
    return p
