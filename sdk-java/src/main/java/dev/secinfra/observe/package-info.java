/**
 * Observers of a client's calls (spec 14): an {@link dev.secinfra.observe.Observer} registered with
 * {@link dev.secinfra.SecinfraClient.Builder#observer} is told when each call starts and finishes,
 * what the cache answered, and when each attempt starts and finishes; at each attempt's start it
 * may return the W3C trace context ({@link dev.secinfra.observe.TraceContext}) the attempt sends.
 * The notifications are small immutable records; none carries a secret (no body, key, token or
 * header value but the trace context, spec 14.2.5). Metrics and tracing are built on observers;
 * the OpenTelemetry observer is the separate artifact {@code dev.secinfra:secinfra-otel}.
 */
package dev.secinfra.observe;
