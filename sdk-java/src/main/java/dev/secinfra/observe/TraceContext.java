package dev.secinfra.observe;

import java.util.Objects;

/**
 * W3C trace context for one attempt (spec 14.3), returned by {@link Observer#attemptStarted}: the
 * attempt sends it as its {@code traceparent} and {@code tracestate} headers. A {@code
 * traceparent} that does not match {@code 00-<32 hex>-<16 hex>-<2 hex>} (lower case), or whose
 * trace id or parent id is all zeros, is not sent, nor its {@code tracestate} (14.3.2); a {@code
 * tracestate} that is not printable ASCII of at most 512 characters is not sent.
 *
 * @param traceparent the {@code traceparent} value
 * @param tracestate the {@code tracestate} value, or null for none
 */
public record TraceContext(String traceparent, String tracestate) {
  /**
   * Checks the fields.
   *
   * @param traceparent the {@code traceparent} value
   * @param tracestate the {@code tracestate} value, or null
   */
  public TraceContext {
    Objects.requireNonNull(traceparent, "traceparent");
  }

  /**
   * A trace context without {@code tracestate}.
   *
   * @param traceparent the {@code traceparent} value
   * @return the trace context
   */
  public static TraceContext of(String traceparent) {
    return new TraceContext(traceparent, null);
  }
}
