"""Read-your-writes for authorization checks (spec 7.10), against the real server.

Check answers are cached (``Cache-Control: private, max-age``). A client's own
WriteTuples returns a revision token that becomes the authz family's write
mark: its next Check of the same relation bypasses the older cached answer and
sees the write. Another client, which did not write, may still be served from
its cache.
"""

from __future__ import annotations

import secinfra
from secinfra._gen.authz import TupleKey
from secinfra.testing import ReferenceServer

from .support import TRUST_DOMAIN, Log


def test_a_clients_own_tuple_write_bypasses_its_cached_check(
    server: ReferenceServer, admin: secinfra.Client, unique: str, log: Log
) -> None:
    key = TupleKey(
        user=f"workload:spiffe://{TRUST_DOMAIN}/{unique}",
        relation="reader",
        object=f"secret:{unique}/x",
    )
    with server.admin_client() as other:
        with secinfra.capture() as meta:
            assert admin.authz.check(tuple_key=key).allowed is False
            assert other.authz.check(tuple_key=key).allowed is False
            # Both answers are now cached: asking again makes no request.
            assert admin.authz.check(tuple_key=key).allowed is False
            assert other.authz.check(tuple_key=key).allowed is False
        assert [m.from_cache for m in meta.calls] == [False, False, True, True]
        assert len(log.entries("Check")) == 2

        written = admin.authz.write_tuples(writes=[key])
        assert written.revision
        assert admin.cache.write_revision("authz") == written.revision

        with secinfra.capture() as meta:
            mine = admin.authz.check(tuple_key=key)
        assert mine.allowed is True, "the writer must see its own write"
        assert not meta.last.from_cache
        assert meta.last.attempts == 1
        assert len(log.entries("Check")) == 3, "the writer's check must reach the server"
        assert mine.revision
        assert int(mine.revision) >= int(written.revision)

        # The writer's new answer is cached again (at or above its write mark).
        with secinfra.capture() as meta:
            assert admin.authz.check(tuple_key=key).allowed is True
        assert meta.last.from_cache

        # The other client did not write: its cached answer may still be used.
        with secinfra.capture() as meta:
            theirs = other.authz.check(tuple_key=key)
        assert meta.last.from_cache
        assert theirs.allowed is False
        assert len(log.entries("Check")) == 3
