"""Error envelopes from the real server become the right exception classes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import secinfra
from secinfra.errors import (
    ApiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SecinfraError,
    TransportError,
    Unauthenticated,
)
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log

Case = Callable[[ReferenceServer, secinfra.Client, secinfra.Client, str], object]


def _missing_secret(
    _s: ReferenceServer, admin: secinfra.Client, _w: secinfra.Client, u: str
) -> object:
    return admin.secrets.get_secret(name=f"{u}/missing")


def _not_granted(_s: ReferenceServer, admin: secinfra.Client, w: secinfra.Client, u: str) -> object:
    admin.secrets.put_secret(name=f"{u}/private", value=b"x")
    return w.secrets.get_secret(name=f"{u}/private")


def _bad_name(_s: ReferenceServer, admin: secinfra.Client, _w: secinfra.Client, u: str) -> object:
    return admin.secrets.put_secret(name=f"{u}/Upper", value=b"x")


def _check_and_set(
    _s: ReferenceServer, admin: secinfra.Client, _w: secinfra.Client, u: str
) -> object:
    admin.secrets.put_secret(name=f"{u}/cas", value=b"1")
    return admin.secrets.put_secret(name=f"{u}/cas", value=b"2", if_version=0)


def _bad_join_token(s: ReferenceServer, _a: secinfra.Client, _w: secinfra.Client, u: str) -> object:
    token = s.join_token(f"spiffe://{TRUST_DOMAIN}/{u}-2")
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    return secinfra.Client.enrol(s.url, join_token=wrong, bundle_file=s.bundle_file)


def _workload_is_not_admin(
    _s: ReferenceServer, _a: secinfra.Client, w: secinfra.Client, u: str
) -> object:
    return w.identity.create_join_token(spiffe_id=f"spiffe://{TRUST_DOMAIN}/{u}-other")


@pytest.mark.parametrize(
    ("case", "error", "code", "status"),
    [
        pytest.param(_missing_secret, NotFound, "not_found", 404, id="not-found"),
        pytest.param(_not_granted, PermissionDenied, "permission_denied", 403, id="no-grant"),
        pytest.param(
            _workload_is_not_admin, PermissionDenied, "permission_denied", 403, id="admin-rpc"
        ),
        pytest.param(_bad_name, InvalidArgument, "invalid_argument", 400, id="bad-name"),
        pytest.param(_check_and_set, FailedPrecondition, "failed_precondition", 412, id="cas"),
        pytest.param(_bad_join_token, Unauthenticated, "unauthenticated", 401, id="join-token"),
    ],
)
def test_error_envelopes_map_to_classes(
    server: ReferenceServer,
    admin: secinfra.Client,
    workload: secinfra.Client,
    unique: str,
    case: Case,
    error: type[ApiError],
    code: str,
    status: int,
) -> None:
    with pytest.raises(error) as caught:
        case(server, admin, workload, unique)
    raised = caught.value
    assert isinstance(raised, ApiError)
    assert raised.code == code
    assert raised.status == status
    assert raised.request_id
    assert raised.retryable is False
    assert str(raised).startswith("secinfra: ")
    assert raised.request_id in str(raised)


def test_check_and_set_says_the_current_version(admin: secinfra.Client, unique: str) -> None:
    admin.secrets.put_secret(name=f"{unique}/cas", value=b"1")
    admin.secrets.put_secret(name=f"{unique}/cas", value=b"2", if_version=1)
    with pytest.raises(FailedPrecondition) as caught:
        admin.secrets.put_secret(name=f"{unique}/cas", value=b"3", if_version=1)
    assert caught.value.details.get("current_version") == 2


@pytest.mark.parametrize(
    ("path", "resolved"),
    [("a/../b", "b"), ("a/./b", "a/b"), ("a//b", None), ("a/..", None)],
)
def test_a_name_with_dot_segments_is_refused_by_the_server_not_resolved_by_the_client(
    admin: secinfra.Client, unique: str, path: str, resolved: str | None
) -> None:
    # Spec 2.2.5: the name reaches the server as is, and the server refuses it;
    # a client that resolved the segments would have written another secret.
    with pytest.raises(InvalidArgument, match=r"path segment|empty segment"):
        admin.secrets.put_secret(name=f"{unique}/{path}", value=b"x")
    if resolved is not None:
        with pytest.raises(NotFound):
            admin.secrets.get_secret(name=f"{unique}/{resolved}")


def test_every_error_is_a_secinfra_error() -> None:
    assert issubclass(ApiError, SecinfraError)
    assert issubclass(secinfra.errors.TransportError, SecinfraError)
    assert issubclass(secinfra.errors.IdentityExpired, SecinfraError)


def test_an_undecodable_2xx_is_a_transport_error_that_counts_its_attempt(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script("GetCallerIdentity", {"status": 200, "body": [1, 2, 3]})
    with pytest.raises(TransportError) as caught:
        admin.identity.get_caller_identity()
    raised = caught.value
    assert (raised.status, raised.attempts, raised.retryable) == (200, 1, False)  # spec 3.9.4
    assert len(log.entries("GetCallerIdentity")) == 1


def test_retry_after_on_a_non_retryable_error_is_exposed_not_waited_for(
    server: ReferenceServer, admin: secinfra.Client, log: Log
) -> None:
    server.script(
        "GetCallerIdentity",
        {
            "status": 400,
            "headers": {"Retry-After": "7"},
            "body": {"error": {"code": "invalid_argument", "message": "scripted"}},
        },
    )
    with pytest.raises(InvalidArgument) as caught:
        admin.identity.get_caller_identity()
    raised = caught.value
    assert (raised.retry_after, raised.attempts, raised.retryable) == (7.0, 1, False)  # 3.6.7
    assert len(log.entries("GetCallerIdentity")) == 1
