"""Response cache: DESIGN.md "Client behaviour" -> Caching."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime, timedelta

import pytest

from secinfra._runtime._cache import (
    DEFAULT_MAX_ENTRIES,
    MAX_DELTA_SECONDS,
    CacheDirectives,
    Freshness,
    ResponseCache,
    cache_key,
    newer_than,
    parse_cache_control,
    request_key,
)
from secinfra._runtime._clock import FakeClock
from secinfra.models import CheckRequest, Consistency, GetSecretRequest, TupleKey

SECRET_HEADERS = {
    "Cache-Control": "private, max-age=60, stale-if-error=300",
    "ETag": '"v1"',
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> ResponseCache[str]:
    return ResponseCache(clock=clock)


def store_secret(
    cache: ResponseCache[str],
    name: str,
    headers: dict[str, str] | None = None,
    value: str = "hunter2",
) -> str:
    key = cache_key("secinfra.v1.SecretsService/GetSecret", {"name": name})
    stored = cache.store(
        key,
        value,
        SECRET_HEADERS if headers is None else headers,
        resource="secret",
        resource_key=name,
        secret=True,
    )
    assert stored is not None
    return key


# --- cache keys -------------------------------------------------------------------


def test_cache_key_is_canonical_json_of_method_and_request() -> None:
    key = cache_key("svc/Check", {"b": 1, "a": {"y": [1, 2], "x": "é"}})
    assert key == '{"method":"svc/Check","request":{"a":{"x":"é","y":[1,2]},"b":1}}'


def test_cache_key_ignores_field_order() -> None:
    assert cache_key("m", {"user": "u", "object": "o"}) == cache_key(
        "m", {"object": "o", "user": "u"}
    )


def test_requests_whose_joined_strings_collide_get_different_keys() -> None:
    first = {"object": "doc:1", "relation": "viewer", "user": "user:a#b"}
    second = {"object": "doc:1", "relation": "viewer#user:a", "user": "b"}
    naive = [
        "#".join([request["relation"], request["user"]]) for request in (first, second)
    ]  # what DESIGN.md forbids: the joined strings are equal
    assert naive[0] == naive[1]
    assert cache_key("Check", first) != cache_key("Check", second)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(("Check", {"x": "1"}), ("Check", {"x": 1}), id="string-vs-number"),
        pytest.param(("Check", {"x": "1"}), ("Expand", {"x": "1"}), id="method"),
        pytest.param(("A", {"x": None}), ("A", {}), id="null-vs-absent"),
    ],
)
def test_different_calls_get_different_keys(
    a: tuple[str, dict[str, object]], b: tuple[str, dict[str, object]]
) -> None:
    assert cache_key(*a) != cache_key(*b)


def test_cache_key_rejects_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        cache_key("m", {"x": float("nan")})


# --- request keys (what the call pipeline keys by) -----------------------------------


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Loose:
    """A request model of any values, as a test builds one."""

    x: object = None
    y: object = None

    def to_json(self) -> dict[str, object]:
        return {"x": _wire(self.x), "y": _wire(self.y)}


def _wire(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


TUPLE = TupleKey(user="user:a", relation="viewer", object="doc:1")


def key(request: object) -> object:
    return request_key("secinfra.v1.AuthzService", "Check", request)


def test_equal_requests_get_equal_request_keys_however_built() -> None:
    assert key(GetSecretRequest(name="a")) == key(GetSecretRequest(name="a", version=0))
    # A list and a tuple are the same JSON array.
    assert key(CheckRequest(tuple_key=TUPLE, contextual_tuples=[TUPLE])) == key(
        CheckRequest(tuple_key=TUPLE, contextual_tuples=(TUPLE,))
    )
    # Map members in another order are the same JSON object.
    assert key(Loose(x={"a": 1, "b": 2})) == key(Loose(x={"b": 2, "a": 1}))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(Loose(x="1"), Loose(x=1), id="string-vs-number"),
        pytest.param(Loose(x=True), Loose(x=1), id="bool-vs-int"),
        pytest.param(Loose(x=None), Loose(x=""), id="null-vs-empty"),
        pytest.param(Loose(x=[1]), Loose(x={"1": 1}), id="list-vs-map"),
        pytest.param(Loose(x=["a", "b"]), Loose(x=["b", "a"]), id="list-order"),
        pytest.param(Loose(x="a#b", y="c"), Loose(x="a", y="b#c"), id="joined-strings"),
        pytest.param(Loose(x=b"a"), Loose(x="a"), id="bytes-vs-string"),
        pytest.param(Loose(x=Color.RED), Loose(x=1), id="enum-vs-value"),
        pytest.param(Loose(x=TUPLE), Loose(x=("user:a", "viewer", "doc:1")), id="model-vs-list"),
        pytest.param(
            CheckRequest(tuple_key=TUPLE),
            CheckRequest(tuple_key=TUPLE, consistency=Consistency.MINIMIZE_LATENCY),
            id="consistency",
        ),
        pytest.param(
            CheckRequest(tuple_key=TUPLE),
            CheckRequest(tuple_key=dataclasses.replace(TUPLE, object="doc:2")),
            id="nested-field",
        ),
        pytest.param(Loose(x=0.0), Loose(x=-0.0), id="float-sign"),
        pytest.param(
            Loose(x=datetime(2030, 1, 1, tzinfo=UTC)),
            Loose(x=datetime(2030, 1, 1, 1, tzinfo=UTC)),
            id="time",
        ),
    ],
)
def test_different_requests_get_different_request_keys(a: object, b: object) -> None:
    assert key(a) != key(b)


def test_request_keys_differ_by_method() -> None:
    request = GetSecretRequest(name="a")
    assert request_key("s.S", "A", request) != request_key("s.S", "B", request)
    assert request_key("s.S", "A", request) != request_key("s.T", "A", request)


def test_a_request_with_floats_or_times_is_keyed_by_its_canonical_json() -> None:
    assert key(Loose(x=1.5)) == cache_key("secinfra.v1.AuthzService/Check", {"x": 1.5, "y": None})
    with pytest.raises(ValueError, match="JSON"):
        key(Loose(x=float("nan")))
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert key(Loose(x=when)) == cache_key(
        "secinfra.v1.AuthzService/Check", {"x": when.isoformat(), "y": None}
    )


def test_request_keys_hold_nothing_mutable() -> None:
    values = ["a"]
    first = key(Loose(x=values))
    values.append("b")
    assert key(Loose(x=["a"])) == first
    hash(first)


def test_fresh_answers_only_a_fresh_entry(cache: ResponseCache[str], clock: FakeClock) -> None:
    key = store_secret(cache, "db")
    entry = cache.fresh(key)
    assert entry is not None
    assert entry.value == "hunter2"
    clock.advance(60)  # max-age=60: stale now
    assert cache.fresh(key) is None
    assert cache.lookup(key) is not None  # still there to revalidate
    assert cache.fresh("nothing") is None


def test_fresh_bypasses_entries_behind_the_clients_writes(cache: ResponseCache[str]) -> None:
    cache.store("k", "v", {"Cache-Control": "max-age=10"}, resource="authz", revision="5")
    assert cache.fresh("k") is not None
    cache.record_write_revision("authz", "6")
    assert cache.fresh("k") is None


# --- Cache-Control ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "want"),
    [
        pytest.param(None, CacheDirectives(), id="absent"),
        pytest.param("", CacheDirectives(), id="empty"),
        pytest.param("max-age=60", CacheDirectives(max_age=60.0), id="max-age"),
        pytest.param(
            "private, max-age=60, stale-if-error=300",
            CacheDirectives(max_age=60.0, stale_if_error=300.0, private=True),
            id="secret-read",
        ),
        pytest.param("no-store", CacheDirectives(no_store=True), id="no-store"),
        pytest.param(
            "no-cache, max-age=60", CacheDirectives(max_age=60.0, no_cache=True), id="no-cache"
        ),
        pytest.param("MAX-AGE=5, No-Store", CacheDirectives(max_age=5.0, no_store=True), id="case"),
        pytest.param(' max-age = "7" ', CacheDirectives(max_age=7.0), id="quoted-and-spaced"),
        pytest.param(
            'private="Set-Cookie, X-Foo", max-age=3',
            CacheDirectives(max_age=3.0, private=True),
            id="comma-inside-quotes",
        ),
        pytest.param("max-age=abc", CacheDirectives(max_age=0.0), id="invalid-max-age-is-stale"),
        pytest.param("max-age=-1", CacheDirectives(max_age=0.0), id="negative-max-age-is-stale"),
        pytest.param("max-age", CacheDirectives(max_age=0.0), id="max-age-without-value"),
        pytest.param(
            "max-age=5, max-age=10", CacheDirectives(max_age=5.0), id="first-occurrence-wins"
        ),
        pytest.param(
            "max-age=99999999999999999999",
            CacheDirectives(max_age=MAX_DELTA_SECONDS),
            id="huge-is-capped",
        ),
        pytest.param(
            "max-age=1, stale-if-error=x",
            CacheDirectives(max_age=1.0),
            id="invalid-stale-if-error-is-zero",
        ),
        pytest.param(
            "public, must-revalidate, max-age=2, ,", CacheDirectives(max_age=2.0), id="others"
        ),
    ],
)
def test_parse_cache_control(header: str | None, want: CacheDirectives) -> None:
    assert parse_cache_control(header) == want


@pytest.mark.parametrize(
    ("header", "lifetime"),
    [("max-age=60", 60.0), ("no-cache, max-age=60", 0.0), ("stale-if-error=5", 0.0)],
)
def test_freshness_lifetime(header: str, lifetime: float) -> None:
    assert parse_cache_control(header).freshness_lifetime == lifetime


# --- freshness windows ------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "freshness", "usable_on_error"),
    [
        pytest.param(0.0, Freshness.FRESH, True, id="new"),
        pytest.param(59.9, Freshness.FRESH, True, id="just-fresh"),
        pytest.param(60.0, Freshness.STALE, True, id="at-max-age"),
        pytest.param(359.9, Freshness.STALE, True, id="within-stale-if-error"),
        pytest.param(360.0, Freshness.STALE, False, id="past-stale-if-error"),
        pytest.param(86_400.0, Freshness.STALE, False, id="a-day-later"),
    ],
)
def test_freshness_windows(
    cache: ResponseCache[str],
    clock: FakeClock,
    age: float,
    freshness: Freshness,
    usable_on_error: bool,
) -> None:
    key = store_secret(cache, "db/password")
    clock.advance(age)
    hit = cache.lookup(key)
    assert hit is not None
    assert (hit.freshness, hit.usable_on_error, hit.age) == (freshness, usable_on_error, age)
    assert hit.fresh is (freshness is Freshness.FRESH)
    assert hit.if_none_match == (None if hit.fresh else '"v1"')
    assert hit.entry.value == "hunter2"


def test_stale_entry_without_etag_is_dropped_once_useless(
    cache: ResponseCache[str], clock: FakeClock
) -> None:
    key = store_secret(cache, "a", {"Cache-Control": "max-age=10, stale-if-error=5"})
    clock.advance(14.9)
    hit = cache.lookup(key)
    assert hit is not None
    assert (hit.fresh, hit.usable_on_error, hit.if_none_match) == (False, True, None)
    clock.advance(0.1)
    assert cache.lookup(key) is None
    assert len(cache) == 0


def test_age_header_counts_against_freshness(cache: ResponseCache[str]) -> None:
    key = store_secret(cache, "a", {"Cache-Control": "max-age=60", "ETag": "e", "Age": "45"})
    hit = cache.lookup(key)
    assert hit is not None
    assert (hit.fresh, hit.age) == (True, 45.0)


def test_ages_follow_the_monotonic_clock_not_the_wall_clock(
    cache: ResponseCache[str], clock: FakeClock
) -> None:
    key = store_secret(cache, "a")
    clock.shift_wall(timedelta(days=1))
    hit = cache.lookup(key)
    assert hit is not None
    assert hit.fresh


def test_miss(cache: ResponseCache[str]) -> None:
    assert cache.lookup("nothing") is None


# --- storing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Cache-Control": "no-store, max-age=60", "ETag": "e"}, id="no-store"),
        pytest.param({}, id="no-lifetime-no-etag"),
        pytest.param({"Cache-Control": "max-age=0"}, id="max-age-0-no-etag"),
        pytest.param({"Cache-Control": "no-cache"}, id="no-cache-no-etag"),
    ],
)
def test_responses_that_cannot_be_used_are_not_stored(
    cache: ResponseCache[str], headers: dict[str, str]
) -> None:
    assert cache.store("k", "v", headers, resource="secret") is None
    assert cache.lookup("k") is None


def test_no_store_drops_an_older_entry(cache: ResponseCache[str]) -> None:
    key = store_secret(cache, "a")
    assert cache.store(key, "new", {"Cache-Control": "no-store"}, resource="secret") is None
    assert cache.lookup(key) is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Cache-Control": "no-cache, max-age=60", "ETag": "e"}, id="no-cache"),
        pytest.param({"etag": "e"}, id="etag-only"),
    ],
)
def test_revalidate_only_responses_are_stored_stale(
    cache: ResponseCache[str], headers: dict[str, str]
) -> None:
    assert cache.store("k", "v", headers, resource="bundle") is not None
    hit = cache.lookup("k")
    assert hit is not None
    assert (hit.fresh, hit.if_none_match) == (False, "e")


def test_store_replaces_an_entry(cache: ResponseCache[str]) -> None:
    key = store_secret(cache, "a")
    store_secret(cache, "a", value="new")
    hit = cache.lookup(key)
    assert hit is not None
    assert hit.entry.value == "new"
    assert len(cache) == 1


def test_entry_records_what_invalidation_and_read_your_writes_need(
    cache: ResponseCache[str], clock: FakeClock
) -> None:
    clock.advance(5)
    entry = cache.store(
        "k",
        "v",
        {"Cache-Control": "max-age=30", "ETag": "e"},
        resource="authz",
        resource_key="",
        revision="0007",
    )
    assert entry is not None
    assert (entry.etag, entry.stored_at, entry.max_age, entry.stale_if_error) == ("e", 5.0, 30, 0)
    assert (entry.resource, entry.resource_key, entry.revision, entry.secret) == (
        "authz",
        "",
        "0007",
        False,
    )


def test_secret_values_never_show_in_repr(cache: ResponseCache[str]) -> None:
    key = store_secret(cache, "db/password", value="hunter2")
    hit = cache.lookup(key)
    assert hit is not None
    assert hit.entry.secret
    assert "hunter2" not in repr(hit)
    assert "hunter2" not in repr(cache)


# --- 304 refresh ------------------------------------------------------------------


def test_304_makes_a_stale_entry_fresh(cache: ResponseCache[str], clock: FakeClock) -> None:
    key = store_secret(cache, "a")
    clock.advance(100)
    refreshed = cache.refresh(key, {"ETag": '"v1"'})
    assert refreshed is not None
    assert refreshed.stored_at == 100.0
    hit = cache.lookup(key)
    assert hit is not None
    assert (hit.fresh, hit.entry.value, hit.entry.max_age) == (True, "hunter2", 60.0)


def test_304_updates_the_lifetimes(cache: ResponseCache[str], clock: FakeClock) -> None:
    key = store_secret(cache, "a")
    clock.advance(100)
    cache.refresh(key, {"Cache-Control": "max-age=5", "ETag": '"v1"'})
    clock.advance(5)
    hit = cache.lookup(key)
    assert hit is not None
    # The 304's Cache-Control replaced max-age and (by leaving it out) stale-if-error;
    # the ETag was kept, so the entry can still be revalidated.
    assert (hit.fresh, hit.usable_on_error, hit.if_none_match) == (False, False, '"v1"')


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"ETag": '"v2"'}, id="different-etag"),
        pytest.param({"Cache-Control": "no-store"}, id="no-store"),
    ],
)
def test_304_that_cannot_refresh(
    cache: ResponseCache[str], clock: FakeClock, headers: dict[str, str]
) -> None:
    key = store_secret(cache, "a")
    clock.advance(100)
    assert cache.refresh(key, headers) is None
    hit = cache.lookup(key)
    assert hit is None or not hit.fresh


def test_304_for_a_vanished_entry(cache: ResponseCache[str]) -> None:
    assert cache.refresh("gone", {"ETag": "e"}) is None


# --- LRU --------------------------------------------------------------------------


def test_default_bound() -> None:
    assert DEFAULT_MAX_ENTRIES == 1024
    assert ResponseCache[str]().max_entries == 1024


def test_lru_evicts_the_least_recently_used(clock: FakeClock) -> None:
    cache: ResponseCache[str] = ResponseCache(max_entries=3, clock=clock)
    a, b, c = (store_secret(cache, name) for name in "abc")
    assert cache.lookup(a) is not None  # a is now more recent than b
    d = store_secret(cache, "d")
    assert len(cache) == 3
    assert cache.lookup(b) is None
    assert all(cache.lookup(k) is not None for k in (a, c, d))


def test_lru_bound_holds_under_many_stores(clock: FakeClock) -> None:
    cache: ResponseCache[str] = ResponseCache(max_entries=10, clock=clock)
    keys = [store_secret(cache, f"s{i}") for i in range(100)]
    assert len(cache) == 10
    assert [k for k in keys if cache.lookup(k) is not None] == keys[-10:]
    cache.invalidate_family("secret")  # the invalidation index shrank with the evictions
    assert len(cache) == 0


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ResponseCache[str](max_entries=0)


# --- invalidation by own writes ---------------------------------------------------


def test_write_invalidates_that_resource_and_family_wide_entries(
    cache: ResponseCache[str],
) -> None:
    a, b = store_secret(cache, "a"), store_secret(cache, "b")
    listing = "list"
    cache.store(listing, "[a, b]", SECRET_HEADERS, resource="secret")
    bundle = "bundle"
    cache.store(bundle, "bundle", SECRET_HEADERS, resource="bundle")
    assert cache.invalidate("secret", "a") == 2
    assert cache.lookup(a) is None
    assert cache.lookup(listing) is None
    assert cache.lookup(b) is not None
    assert cache.lookup(bundle) is not None


def test_invalidate_family(cache: ResponseCache[str]) -> None:
    for name in "abc":
        store_secret(cache, name)
    cache.store("bundle", "bundle", SECRET_HEADERS, resource="bundle")
    assert cache.invalidate_family("secret") == 3
    assert cache.invalidate_family("secret") == 0
    assert len(cache) == 1


def test_fetch_in_flight_during_a_write_is_not_stored(cache: ResponseCache[str]) -> None:
    generation = cache.generation  # read before the request is sent
    cache.invalidate("secret", "a")  # the client's own write completes meanwhile
    key = cache_key("GetSecret", {"name": "a"})
    assert cache.store(key, "old", SECRET_HEADERS, resource="secret", generation=generation) is None
    assert (
        cache.store(key, "new", SECRET_HEADERS, resource="secret", generation=cache.generation)
        is not None
    )
    other = cache.store("b", "v", SECRET_HEADERS, resource="bundle", generation=generation)
    assert other is not None  # another family is unaffected


# --- read-your-writes for authz ---------------------------------------------------


@pytest.mark.parametrize(
    ("token", "other", "want"),
    [
        ("0002", "0001", True),
        ("0001", "0002", False),
        ("0005", "0005", False),
        ("10", "0009", True),
        ("0009", "10", False),
        ("0", "000", False),
        ("1" + "0" * 5000, "9" * 5000, True),
    ],
)
def test_newer_than(token: str, other: str, want: bool) -> None:
    assert newer_than(token, other) is want


@pytest.mark.parametrize("bad", ["", "1a", "-1", " 1", "0x1f", "١٢", "r:12"])
def test_newer_than_rejects_tokens_it_cannot_read(bad: str) -> None:
    with pytest.raises(ValueError, match="revision token"):
        newer_than(bad, "1")
    with pytest.raises(ValueError, match="revision token"):
        newer_than("1", bad)


def store_check(cache: ResponseCache[str], user: str, revision: str | None) -> str:
    key = cache_key("Check", {"tuple_key": {"user": user, "relation": "viewer", "object": "d:1"}})
    entry = cache.store(
        key, "allowed", {"Cache-Control": "max-age=10"}, resource="authz", revision=revision
    )
    assert entry is not None
    return key


@pytest.mark.parametrize(
    ("entry_revision", "written", "want_hit"),
    [
        pytest.param("0005", None, True, id="no-write-yet"),
        pytest.param("0005", "0006", False, id="computed-before-write"),
        pytest.param("0006", "0006", True, id="computed-at-write"),
        pytest.param("0007", "0006", True, id="computed-after-write"),
        pytest.param(None, "0006", False, id="unknown-revision"),
        pytest.param("r5", "0006", False, id="unparseable-entry-revision"),
        pytest.param("0007", "r6", False, id="unparseable-write-revision"),
    ],
)
def test_entries_computed_before_the_clients_last_write_are_bypassed(
    cache: ResponseCache[str],
    entry_revision: str | None,
    written: str | None,
    want_hit: bool,
) -> None:
    key = store_check(cache, "user:a", entry_revision)
    if written is not None:
        cache.record_write_revision("authz", written)
    assert (cache.lookup(key) is not None) is want_hit
    if not want_hit:
        assert len(cache) == 0  # dropped, not just skipped


def test_the_highest_written_revision_is_kept(cache: ResponseCache[str]) -> None:
    cache.record_write_revision("authz", "0009")
    cache.record_write_revision("authz", "0008")  # a slower concurrent write
    assert cache.write_revision("authz") == "0009"
    cache.record_write_revision("authz", "0010")
    assert cache.write_revision("authz") == "0010"
    cache.record_write_revision("authz", "bogus")  # cannot compare: err towards the server
    assert cache.write_revision("authz") == "bogus"
    cache.record_write_revision("authz", "0011")
    assert cache.write_revision("authz") == "0011"


def test_entries_behind_the_clients_writes_are_not_stored(cache: ResponseCache[str]) -> None:
    cache.record_write_revision("authz", "0006")
    key = cache_key("Check", {"user": "a"})
    assert cache.store(key, "v", {"Cache-Control": "max-age=9"}, resource="authz") is None
    assert (
        cache.store(key, "v", {"Cache-Control": "max-age=9"}, resource="authz", revision="0005")
        is None
    )


def test_revisions_only_affect_their_family(cache: ResponseCache[str]) -> None:
    key = store_secret(cache, "a")
    cache.record_write_revision("authz", "0006")
    assert cache.lookup(key) is not None
    assert cache.write_revision("secret") is None


def test_clear_keeps_write_revisions(cache: ResponseCache[str]) -> None:
    store_secret(cache, "a")
    cache.record_write_revision("authz", "0006")
    cache.clear()
    assert len(cache) == 0
    assert cache.write_revision("authz") == "0006"
