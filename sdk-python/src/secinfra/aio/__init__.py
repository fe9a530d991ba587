"""secinfra for asyncio: :class:`Client` with ``async``/``await``.

::

    import secinfra.aio

    async with await secinfra.aio.Client.enrol(
        "https://127.0.0.1:8443", join_token=TOKEN, bundle_file=".dev/data/admin/bundle.pem"
    ) as client:
        print((await client.secrets.get_secret(name="payments/db/password")).value)

The same settings, errors (:mod:`secinfra.errors`), models
(:mod:`secinfra.models`), call options (:class:`secinfra.CallOptions`),
observers and metadata capture (:func:`secinfra.capture`) as the sync client,
and the same behaviour: the rules are shared code; only the I/O (aiohttp,
``asyncio.sleep``, single-flight, the rotation task) is this package's.
Needs the ``aio`` extra: ``pip install secinfra[aio]``.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401  (the extra's one dependency)
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "secinfra.aio needs aiohttp: install the extra with `pip install secinfra[aio]`"
    ) from exc

from ._client import Client
from ._rotating import RotatingIdentity
from ._source import AsyncIdentitySource, StaticIdentity, snapshot_source

IdentitySource = AsyncIdentitySource

__all__ = ["Client", "IdentitySource", "RotatingIdentity", "StaticIdentity", "snapshot_source"]
