"""Prometheus metrics, one registry per server instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The ``reason`` labels of ``secinfra_connections_refused_total``.
CONNECTION_REFUSAL_REASONS = ("global_limit", "peer_limit")
#: The ``phase`` labels of ``secinfra_connections_timed_out_total``.
CONNECTION_TIMEOUT_PHASES = ("handshake", "headers", "idle")


class Metrics:
    """The server's metrics. Labels use route templates, never raw paths."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "secinfra_requests",
            "API requests by route and outcome code.",
            ["route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "secinfra_request_duration_seconds",
            "API request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "secinfra_requests_in_flight", "Requests being served.", registry=self.registry
        )
        self.shed = Counter(
            "secinfra_requests_shed",
            "Requests refused with 503 because too many were in flight.",
            registry=self.registry,
        )
        self.connections_accepted = Counter(
            "secinfra_connections_accepted",
            "TCP connections accepted, before the connection limits are applied.",
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "secinfra_connections_refused",
            "Connections closed before TLS because a connection limit was reached.",
            ["reason"],
            registry=self.registry,
        )
        self.connections_timed_out = Counter(
            "secinfra_connections_timed_out",
            "Connections the server closed because a phase took too long.",
            ["phase"],
            registry=self.registry,
        )
        self.connections_open = Gauge(
            "secinfra_connections_open",
            "Connections open now, TLS handshakes included.",
            registry=self.registry,
        )
        self.connections_max = Gauge(
            "secinfra_connections_max",
            "The connection limit in effect (max_connections, fitted to RLIMIT_NOFILE).",
            registry=self.registry,
        )
        for reason in CONNECTION_REFUSAL_REASONS:
            self.connections_refused.labels(reason)
        for phase in CONNECTION_TIMEOUT_PHASES:
            self.connections_timed_out.labels(phase)
        self.certificates = Counter(
            "secinfra_certificates",
            "Certificates signed, by kind (issue, renew, server).",
            ["kind"],
            registry=self.registry,
        )
        self.ca_state = Gauge(
            "secinfra_ca_state",
            "1 for each CA in the labelled state.",
            ["ca_id", "state"],
            registry=self.registry,
        )
        self.ca_not_after = Gauge(
            "secinfra_ca_not_after_timestamp_seconds",
            "Expiry of each CA certificate.",
            ["ca_id"],
            registry=self.registry,
        )
        self.bundle_sequence = Gauge(
            "secinfra_bundle_sequence",
            "The trust bundle's sequence number.",
            registry=self.registry,
        )

        self.leader = Gauge(
            "secinfra_leader",
            "1 while this process runs the cluster-wide background jobs (CA rotation,"
            " CRL refresh, idempotency clean-up); on SQLite always 1.",
            registry=self.registry,
        )

        self.audit_written = Counter(
            "secinfra_audit_entries_written",
            "Audit entries written: in_transaction (with the change they record) or"
            " batched (read decisions); each counted once its transaction committed.",
            ["mode"],
            registry=self.registry,
        )
        self.audit_lost = Counter(
            "secinfra_audit_entries_lost",
            "Audit entries that were accepted but never written (only a failed final"
            " write at shutdown can lose any; alert on anything above 0).",
            registry=self.registry,
        )
        self.audit_refused = Counter(
            "secinfra_audit_requests_refused",
            "Requests refused 503 because the audit queue was full (not losses: the"
            " request failed and nothing was acknowledged).",
            registry=self.registry,
        )
        self.audit_write_failures = Counter(
            "secinfra_audit_write_failures",
            "Batch writes of queued audit entries that failed (the entries stay queued"
            " and are retried).",
            registry=self.registry,
        )
        self.audit_queue = Gauge(
            "secinfra_audit_queue_depth",
            "Read-path audit entries waiting to be written.",
            registry=self.registry,
        )
        for mode in ("in_transaction", "batched"):
            self.audit_written.labels(mode)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
