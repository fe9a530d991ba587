"""Helpers the integration tests share."""

from __future__ import annotations

from typing import Any

from secinfra.testing import ReferenceServer

#: The trust domain of every reference server the tests start.
TRUST_DOMAIN = "secinfra.local"


class Log:
    """The server's request log from the moment this object was made."""

    def __init__(self, server: ReferenceServer) -> None:
        self._server = server
        entries = server.control("GET", "/_test/requests")["requests"]
        self._since = entries[-1]["seq"] if entries else 0

    def entries(self, rpc: str | None = None) -> list[dict[str, Any]]:
        query = f"?since={self._since}" + (f"&rpc={rpc}" if rpc else "")
        return list(self._server.control("GET", "/_test/requests" + query)["requests"])


def header(entry: dict[str, Any], name: str) -> str | None:
    """A request-log entry's header, by case-insensitive name."""
    for key, value in entry["headers"].items():
        if key.lower() == name.lower():
            return str(value)
    return None
