"""secinfra quickstart for asyncio (docs/quickstart.md): the quickstart with secinfra.aio.

The same steps and output as ``examples/quickstart/quickstart.py``, with
``secinfra.aio.Client``: enrol, read a secret, check a permission. Settings
come from the environment: SECINFRA_URL, SECINFRA_JOIN_TOKEN and
SECINFRA_BUNDLE_FILE (see the sync example).

Run it with ``bash sdk-python/examples/run-quickstart-aio.sh`` from the repository root.
"""

from __future__ import annotations

import asyncio
import os
import sys

import secinfra.aio
from secinfra.errors import SecinfraError
from secinfra.models import TupleKey

SECRET_NAME = "payments/db/password"


async def main() -> int:
    try:
        url = os.environ["SECINFRA_URL"]
        join_token = os.environ["SECINFRA_JOIN_TOKEN"]
        bundle_file = os.environ["SECINFRA_BUNDLE_FILE"]
    except KeyError as exc:
        print(f"quickstart: set {exc.args[0]}", file=sys.stderr)
        return 2

    # Enrol: the key pair is generated here and never leaves this process; a
    # task of this event loop renews the certificate for as long as it is open.
    try:
        async with await secinfra.aio.Client.enrol(
            url, join_token=join_token, bundle_file=bundle_file
        ) as client:
            secret = await client.secrets.get_secret(name=SECRET_NAME)
            print(f"secret {SECRET_NAME}: version {secret.version}, {len(secret.value)} bytes")

            # Ask whether this workload (the SPIFFE ID it enrolled as) may read it.
            me = await client.identity.get_caller_identity()
            decision = await client.authz.check(
                tuple_key=TupleKey(
                    user=f"workload:{me.spiffe_id}",
                    relation="reader",
                    object=f"secret:{SECRET_NAME}",
                )
            )
            print(f"can read {SECRET_NAME}: {str(decision.allowed).lower()}")
    except SecinfraError as exc:
        # Errors carry code, message and request id; never the secret's value.
        print(f"quickstart: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
