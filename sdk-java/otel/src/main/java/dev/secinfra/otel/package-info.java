/**
 * OpenTelemetry for the secinfra Java SDK (spec 14.5), the optional artifact {@code
 * dev.secinfra:secinfra-otel}: {@link dev.secinfra.otel.SecinfraTelemetry} gives an observer that
 * makes a span per call and per attempt, sends each attempt's span context as its {@code
 * traceparent}, and counts calls, attempts and cache lookups; and a rotation listener that counts
 * renewals (14.4). Spans and counters name the RPC with {@code rpc.service} and {@code rpc.method}
 * and a failure with {@code error.type} (14.5.4). It uses only the OpenTelemetry API: the
 * application brings the SDK and its exporters.
 */
package dev.secinfra.otel;
