"""py-spiffe's Workload API client against secinfra-agent: fetch the X509-SVID
and the bundle once, print what was received as one JSON line (run by
agent_test.go with the interpreter of `nox -s tests-agent`)."""

import json
import sys

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from spiffe import WorkloadApiClient


def main(socket: str) -> None:
    with WorkloadApiClient(socket_path=socket) as client:
        svid = client.fetch_x509_svid(timeout=10)
        bundles = client.fetch_x509_bundles(timeout=10)
    leaf = svid.leaf
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    matches = leaf.public_key().public_bytes(*spki) == svid.private_key.public_key().public_bytes(
        *spki
    )
    domains = sorted(str(b.trust_domain) for b in bundles.bundles)
    print(
        json.dumps({"spiffe_id": str(svid.spiffe_id), "key_matches": matches, "bundles": domains})
    )


if __name__ == "__main__":
    main(sys.argv[1])
