"""Loading and validating case files (``conformance/cases/<suite>.yaml``).

The shape of a case (keys, types, ranges) is the JSON Schema
``conformance/schema/case.schema.json``; this module validates every case
against it, then checks what a schema cannot say: RPC names against the
server's route table, step ids that checks refer to, matchers, the rules of
shared-server and JWT cases. Every problem is reported with the file, the case
and the path of the bad field, and all problems of a file are reported
together. ``conformance/README.md`` explains the schema.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml

from . import matchers
from .server import ROUTES_BY_RPC

CASES_DIR: Final = Path(__file__).resolve().parent.parent / "cases"

DEFAULT_TIMEOUT_SECONDS: Final = 60.0
#: The implicit first step: the client is created and enrols (checks may name it).
CONFIGURE_STEP: Final = "configure"

#: The JSON Schema of case files: keys, types and ranges (conformance/README.md).
SCHEMA_PATH: Final = Path(__file__).resolve().parent.parent / "schema" / "case.schema.json"
#: Step actions: a step has exactly one of these keys.
STEP_ACTIONS: Final = (
    "call",
    "concurrent",
    "repeat",
    "admin",
    "script",
    "sleep",
    "control",
    "identity",
    "events",
    "observations",
    # The mtls suite (conformance/README.md, "mTLS steps").
    "mtls_serve",
    "mtls_stop",
    "mtls_call",
    "peer_identity",
    "peer_serve",
    "peer_call",
    "await_identity",
    "stop",
)
#: Client-check keys that check something (``client`` names the step).
CLIENT_CHECKED: Final = {
    "ok",
    "result",
    "meta",
    "error",
    "elapsed",
    "outcomes",
    "seen",
    "by_rpc",
}
#: Server-check keys that only select requests.
SERVER_SELECTORS: Final = {"server", "during", "include_admin", "replica"}
#: Observers (spec 14): setup.observer and the observations step need it.
OBSERVER_FEATURE: Final = "observer"
#: Features that a case's steps and setup imply, by what implies them.
FEATURE_OF_STEP: Final = {
    "concurrent": "concurrent",
    "identity": "identity",
    "events": "events",
    "observations": OBSERVER_FEATURE,
    "await_identity": "identity",
    "mtls_serve": "mtls",
    "mtls_stop": "mtls",
    "mtls_call": "mtls",
    "peer_call": "mtls",
}
#: Steps that name a peer identity made by an earlier peer_identity step.
PEER_IDENTITY_USERS: Final = ("peer_serve", "peer_call")
FEATURE_OF_CALL_OPTION: Final = {"idempotency_key": "idempotency_key", "use_cache": "use_cache"}
FEATURE_OF_CLIENT_OPTION: Final = {
    "cache_size": "cache_size",
    "endpoint_order": "endpoints",
    "endpoint_cooldown_seconds": "endpoints",
}
#: A case with replicas configures its client with several endpoints.
ENDPOINTS_FEATURE: Final = "endpoints"
#: Replica names, in endpoint order (setup.replicas: 2 gives a and b).
REPLICA_NAMES: Final = ("a", "b", "c")
JWT_FEATURE: Final = "jwt_attestation"


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
    features: frozenset[str] = frozenset()
    """What the client must declare in its hello: ``requires`` plus what the
    steps and setup imply (a ``concurrent`` step needs ``concurrent``, ...)."""
    covers: tuple[str, ...] = ()
    """The spec requirements (N.M.K) the case tests, from its ``covers`` list;
    the coverage map of the spec is built from these."""

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
                    features=required_features(raw),
                    covers=tuple(str(item) for item in raw.get("covers") or ()),
                )
            )
    if problems:
        raise CaseError("\n".join(problems))
    return cases


def _step_id(step: dict[str, Any], index: int) -> str:
    if "id" in step:
        return str(step["id"])
    for label_action in ("identity", "events", "observations"):
        if label_action in step and isinstance(step[label_action], str):
            return str(step[label_action])
    return f"step{index + 1}"


def required_features(raw: dict[str, Any]) -> frozenset[str]:
    """The features a (valid) case needs: declared in ``requires`` or implied."""
    found = set(raw.get("requires") or ())
    setup = raw.get("setup") or {}
    if setup.get("attestation") == "jwt":
        found.add(JWT_FEATURE)
    if setup.get("replicas"):
        found.add(ENDPOINTS_FEATURE)
    if "observer" in setup:
        found.add(OBSERVER_FEATURE)
    found |= {
        FEATURE_OF_CLIENT_OPTION[k]
        for k in setup.get("client") or {}
        if k in FEATURE_OF_CLIENT_OPTION
    }
    for step in raw["steps"]:
        found |= {FEATURE_OF_STEP[k] for k in step if k in FEATURE_OF_STEP}
        options = step.get("call_options") or {}
        found |= {FEATURE_OF_CALL_OPTION[k] for k in options if k in FEATURE_OF_CALL_OPTION}
    return frozenset(found)


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


@functools.cache
def _case_validator() -> jsonschema.protocols.Validator:
    """A validator of one case: the file schema's ``$defs/case`` with its definitions."""
    schema = _schema()
    case_schema = {"$ref": "#/$defs/case", "$defs": schema["$defs"]}
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(case_schema)


def _path(parts: Iterable[str | int]) -> str:
    """``["steps", 1, "count"]`` -> ``steps[1].count``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_problems(raw: Any, label: str) -> list[str]:
    """The case's violations of the schema, worded by its x-message / x-unknown.

    A step without exactly one action (a check without exactly one of client
    and server) gets that one message, not one per action it matched.
    """
    ambiguous: list[tuple[str, int]] = []
    problems: list[str] = []
    for key, one_of, say in (
        ("steps", STEP_ACTIONS, f"give exactly one action of {sorted(STEP_ACTIONS)}"),
        (
            "checks",
            ("client", "server"),
            "give exactly one of 'client: <step id>' or 'server: <RPC or *>'",
        ),
    ):
        items = raw.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            given = [k for k in item if k in one_of] if isinstance(item, dict) else None
            if given is not None and len(given) != 1:
                ambiguous.append((key, i))
                got = f", got {given or 'none'}" if key == "steps" else ""
                problems.append(f"{label}: {key}[{i}]: {say}{got}")
    errors = sorted(_case_validator().iter_errors(raw), key=lambda e: list(map(str, e.path)))
    for error in errors:
        parts = list(error.absolute_path)
        if len(parts) >= 2 and (parts[0], parts[1]) in ambiguous:
            continue
        problems += _wording(error, label, parts)
    return list(dict.fromkeys(problems))  # the same wording from two paths, once


def _wording(error: jsonschema.ValidationError, label: str, parts: list[Any]) -> list[str]:
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    instance: Any = error.instance
    where = label + (": " + _path(parts) if parts else "")
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(instance) - set(allowed))
        template = str(schema.get("x-unknown", "unknown keys {keys} (allowed: {allowed})"))
        if "{key" in template:
            return [
                f"{where}: " + template.format(key=k, keys=extra, allowed=allowed) for k in extra
            ]
        return [f"{where}: " + template.format(keys=extra, allowed=allowed)]
    if error.validator == "required":
        required: Any = error.validator_value
        missing = [p for p in required if p not in instance]
        props = schema.get("properties", {})
        out = []
        for name in missing:
            message = props.get(name, {}).get("x-message")
            out.append(
                _message(label, parts, [*parts, name], message, None)
                if message
                else f"{where}: give {name!r}"
            )
        return out
    message = schema.get("x-message")
    if message is None:
        return [f"{where}: {error.message}"]
    return [_message(label, parts[:-1] if parts else parts, parts, message, instance)]


def _message(label: str, parent: list[Any], parts: list[Any], template: str, value: Any) -> str:
    """A message naming its own field (``'spec' must ...``) is reported at the parent."""
    features = sorted(_schema()["$defs"]["feature"]["enum"])
    text = template.format(value=value, features=features)
    at = parent if template.startswith("'") else parts
    return label + (": " + _path(at) if at else "") + ": " + text


def _check_case(raw: Any, label: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{label}: a case is a mapping"]
    p = _schema_problems(raw, label)
    if p:
        return p
    share = raw.get("share_server", False)
    p += _check_setup(raw.get("setup") or {}, f"{label}: setup", shared=share)
    steps = raw["steps"]
    refused = "refused_configure" in (raw.get("setup") or {})
    if refused and (steps or share):
        p.append(
            f"{label}: a case with setup.refused_configure has no steps and its own server"
            " (steps: [], no share_server): there is no client to drive"
        )
    elif not refused and not steps:
        p.append(f"{label}: steps: give at least one step")
    ids: list[str] = [CONFIGURE_STEP]
    peer_identities: list[str] = []
    replicas = _replicas(raw.get("setup") or {})
    for i, step in enumerate(steps):
        p += _check_step(step, f"{label}: steps[{i}]", shared=share, replicas=replicas)
        ids.append(_step_id(step, i))
        if "peer_identity" in step:
            peer_identities.append(_step_id(step, i))
        for action in PEER_IDENTITY_USERS:
            if action in step and step[action] not in peer_identities:
                p.append(
                    f"{label}: steps[{i}].{action}: no earlier peer_identity step has id"
                    f" {step[action]!r} (made before it: {peer_identities})"
                )
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        p.append(
            f"{label}: step ids must be unique ({CONFIGURE_STEP!r} is the implicit"
            f" enrolment step), repeated: {dupes}"
        )
    observed = [_step_id(step, i) for i, step in enumerate(steps) if "observations" in step]
    if observed and "observer" not in (raw.get("setup") or {}):
        p.append(
            f"{label}: an observations step needs setup.observer (without it the client"
            " registers no observer)"
        )
    for i, check in enumerate(raw["checks"]):
        p += _check_check(check, f"{label}: checks[{i}]", ids)
        if "by_rpc" in check:
            p += _check_by_rpc(check, f"{label}: checks[{i}]", observed)
        if "replica" in check and check["replica"] not in replicas:
            p.append(
                f"{label}: checks[{i}].replica: no replica {check['replica']!r}"
                f" (this case has {replicas})"
            )
    return p


def _check_setup(setup: dict[str, Any], where: str, *, shared: bool) -> list[str]:
    p: list[str] = []
    if setup.get("server") and shared:
        p.append(f"{where}.server: a case with share_server: true cannot change the server")
    attestation = setup.get("attestation", "join_token")
    if attestation == "jwt" and shared:
        p.append(f"{where}.attestation: a case with share_server: true cannot use jwt")
    elif attestation == "jwt" and "workload" in setup:
        p.append(
            f"{where}.workload: a jwt case's SPIFFE ID comes from its token"
            " (ns/conformance/sa/<suite>-<case>); leave workload out"
        )
    for i, secret in enumerate(setup.get("secrets") or []):
        if shared and not secret["name"].startswith("${ns}/"):
            p.append(f"{where}.secrets[{i}]: shared-server cases must name secrets '${{ns}}/...'")
    p += _check_scripts(setup.get("scripts") or {}, f"{where}.scripts")
    replicas = _replicas(setup)
    if setup.get("replicas") and shared:
        p.append(f"{where}.replicas: a case with share_server: true cannot have replicas")
    for i, name in enumerate(setup.get("stopped") or []):
        if name not in replicas:
            p.append(f"{where}.stopped[{i}]: no replica {name!r} (this case has {replicas})")
    if set(setup.get("stopped") or []) >= set(replicas):
        p.append(f"{where}.stopped: at least one replica must be running")
    return p


def _replicas(setup: dict[str, Any]) -> list[str]:
    """The replica names of a case: ["a"] without setup.replicas."""
    return list(REPLICA_NAMES[: int(setup.get("replicas") or 1)])


def _check_scripts(scripts: dict[str, Any], where: str) -> list[str]:
    return [f"{where}: unknown RPC {rpc!r}" for rpc in scripts if rpc not in ROUTES_BY_RPC]


def _check_step(
    step: dict[str, Any], where: str, *, shared: bool, replicas: list[str]
) -> list[str]:
    (action,) = (k for k in step if k in STEP_ACTIONS)
    value = step[action]
    p: list[str] = []
    for key in ("stop", "replica"):
        names_a_replica = key in step and (key == "stop" or action in ("script", "control"))
        if names_a_replica and step[key] not in replicas:
            p.append(f"{where}.{key}: no replica {step[key]!r} (this case has {replicas})")
    if action == "stop" and len(replicas) < 2:
        p.append(f"{where}.stop: stopping needs setup.replicas (at least 2)")
    if action == "stop" and "after_request" in step and step["after_request"] not in ROUTES_BY_RPC:
        p.append(f"{where}.after_request: unknown RPC {step['after_request']!r}")
    if action in ("call", "concurrent", "repeat", "admin") and value not in ROUTES_BY_RPC:
        p.append(f"{where}.{action}: unknown RPC {value!r}")
    if action == "script":
        p += _check_scripts(value, f"{where}.script")
    if action == "control":
        if not str(value["path"]).startswith("/_test/"):
            p.append(f"{where}.control.path: control paths start with /_test/")
        if shared:
            p.append(f"{where}: a case with share_server: true cannot use control steps")
    return p


def _check_by_rpc(check: dict[str, Any], where: str, observed: list[str]) -> list[str]:
    """``by_rpc`` checks an observations step, by RPC names the server knows."""
    p: list[str] = []
    if "client" not in check or check["client"] not in observed:
        p.append(
            f"{where}.by_rpc: only the outcome of an observations step has by_rpc"
            f" (observations steps: {observed})"
        )
    wanted = check["by_rpc"]
    if isinstance(wanted, dict) and not matchers.is_operator_map(wanted):
        p += [
            f"{where}.by_rpc: unknown RPC {rpc!r} (give the RPC name, as in steps)"
            for rpc in wanted
            if rpc not in ROUTES_BY_RPC
        ]
    return p


def _check_check(check: dict[str, Any], where: str, ids: list[str]) -> list[str]:
    p: list[str] = []
    if "client" in check:
        if check["client"] not in ids:
            p.append(f"{where}.client: no step has id {check['client']!r} (ids: {ids})")
        if not set(check) & CLIENT_CHECKED:
            p.append(f"{where}: the check checks nothing")
        if "error" in check and check.get("ok") is True:
            p.append(f"{where}: 'error' with 'ok: true' can never pass")
    else:
        rpcs = check["server"] if isinstance(check["server"], list) else [check["server"]]
        for rpc in rpcs:
            if rpc != "*" and rpc not in ROUTES_BY_RPC:
                p.append(f"{where}.server: unknown RPC {rpc!r}")
        during = check.get("during", [])
        for step_id in [during] if isinstance(during, str) else during:
            if step_id not in ids:
                p.append(f"{where}.during: no step has id {step_id!r} (ids: {ids})")
        if not set(check) - SERVER_SELECTORS:
            p.append(f"{where}: the check checks nothing")
    for key, value in check.items():
        if key not in ("client", "server", "during", "replica"):
            p += matchers.validate(value, f"{where}.{key}")
    return p
