"""Tuples: syntax, validation against the model, and the error hierarchy."""

from __future__ import annotations

import pytest

from secinfra_server.authz import (
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    AuthzError,
    ModelError,
    ObjectRef,
    RequestError,
    ResolutionTooComplex,
    TupleError,
    TupleKey,
    UserRef,
    parse_object,
    parse_user,
    validate_tuple,
)
from secinfra_server.authz import __all__ as public_names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user:anne", UserRef("user", "anne")),
        ("group:eng#member", UserRef("group", "eng", "member")),
        ("user:*", UserRef("user", "*")),
        (
            "workload:spiffe://example.org/ns/prod/sa/api",
            UserRef("workload", "spiffe://example.org/ns/prod/sa/api"),
        ),
        ("folder:prod/db", UserRef("folder", "prod/db")),
    ],
)
def test_parse_user(text: str, expected: UserRef) -> None:
    user = parse_user(text)
    assert user == expected
    assert str(user) == text
    assert user.is_wildcard is (text == "user:*")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("anne", 'must be "type:id"'),
        (":anne", 'must be "type:id"'),
        ("user:", "bad id"),
        ("user:an ne", "bad id"),
        ("user:*#member", "a wildcard cannot name a relation"),
        ("group:eng#", "bad relation name"),
        ("group:eng#a#b", "bad relation name"),
        ("us er:anne", 'must be "type:id"'),
        ("user:" + "x" * 257, "bad id"),
    ],
)
def test_parse_user_rejects(text: str, fragment: str) -> None:
    with pytest.raises(TupleError, match=r"^secinfra: authz: tuple: ") as info:
        parse_user(text)
    assert fragment in str(info.value)
    assert info.value.code == INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("text", "expected"),
    [("document:1", ObjectRef("document", "1")), ("secret:a/b:c", ObjectRef("secret", "a/b:c"))],
)
def test_parse_object(text: str, expected: ObjectRef) -> None:
    assert parse_object(text) == expected
    assert str(parse_object(text)) == text


@pytest.mark.parametrize("text", ["document", "document:", "document:*", "document:1#viewer", ":1"])
def test_parse_object_rejects(text: str) -> None:
    with pytest.raises(TupleError) as info:
        parse_object(text)
    assert str(info.value).startswith(f'secinfra: authz: tuple: object "{text}"')


def test_tuple_key_checks_its_syntax_and_exposes_parts() -> None:
    key = TupleKey("group:eng#member", "viewer", "document:plan")
    assert (key.object_type, key.object_id) == ("document", "plan")
    assert key.user_ref == UserRef("group", "eng", "member")
    assert str(key) == "document:plan#viewer@group:eng#member"
    assert key == TupleKey("group:eng#member", "viewer", "document:plan")
    assert len({key, TupleKey("group:eng#member", "viewer", "document:plan")}) == 1
    with pytest.raises(TupleError, match='bad relation name "can view"'):
        TupleKey("user:a", "can view", "document:1")
    with pytest.raises(TupleError, match='object "document"'):
        TupleKey("user:a", "viewer", "document")


@pytest.mark.parametrize(
    "text",
    [
        "document:plan#viewer@user:bob",
        "document:plan#viewer@user:*",
        "document:plan#viewer@group:eng#member",
        "document:plan#parent@folder:eng",
        "folder:eng#editor@group:eng#member",
        "group:eng#member@group:sre#member",
    ],
)
def test_validate_tuple_accepts(request: pytest.FixtureRequest, text: str) -> None:
    model = request.getfixturevalue("drive").model
    left, _, user = text.partition("@")
    obj, _, relation = left.partition("#")
    validate_tuple(model, TupleKey(user, relation, obj))  # does not raise


@pytest.mark.parametrize(
    ("user", "relation", "obj", "type_name", "rel", "fragment"),
    [
        ("user:a", "viewer", "robot:1", "robot", None, "type is not defined in the model"),
        ("user:a", "reader", "document:1", "document", "reader", "relation is not defined"),
        ("user:a", "can_view", "document:1", "document", "can_view", "not directly assignable"),
        ("folder:x", "viewer", "document:1", "document", "viewer", '"folder" is not one of'),
        ("user:*", "editor", "document:1", "document", "editor", '"user:*" is not one of'),
        ("group:x#owner", "viewer", "document:1", "document", "viewer", '"group#owner" is not'),
        ("user:a", "parent", "document:1", "document", "parent", '"user" is not one of [folder]'),
        ("robot:r", "member", "group:eng", "group", "member", '"robot" is not one of'),
    ],
)
def test_validate_tuple_rejects_naming_type_and_relation(
    request: pytest.FixtureRequest,
    user: str,
    relation: str,
    obj: str,
    type_name: str,
    rel: str | None,
    fragment: str,
) -> None:
    model = request.getfixturevalue("drive").model
    with pytest.raises(TupleError) as info:
        validate_tuple(model, TupleKey(user, relation, obj))
    assert (info.value.type_name, info.value.relation) == (type_name, rel)
    subject = f'type "{type_name}"' + (f' relation "{rel}"' if rel else "")
    assert str(info.value).startswith(f"secinfra: authz: tuple: {subject}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("error", "code", "prefix"),
    [
        (ModelError("x", type_name="t", relation="r"), INVALID_ARGUMENT, "model"),
        (TupleError("x"), INVALID_ARGUMENT, "tuple"),
        (RequestError("x"), INVALID_ARGUMENT, "request"),
        (ResolutionTooComplex(25, "doc:1#viewer@user:a"), FAILED_PRECONDITION, "resolution"),
    ],
)
def test_errors_share_one_base_with_a_code(error: AuthzError, code: str, prefix: str) -> None:
    assert isinstance(error, AuthzError)
    assert isinstance(error, Exception)
    assert error.code == code
    assert str(error).startswith(f"secinfra: authz: {prefix}: ")
    assert error.message == str(error)


def test_the_public_surface_is_explicit() -> None:
    import secinfra_server.authz as authz

    assert sorted(public_names) == sorted(set(public_names))
    for name in public_names:
        assert hasattr(authz, name), name
    for required in ("check", "batch_check", "expand", "list_objects", "TupleReader"):
        assert required in public_names
