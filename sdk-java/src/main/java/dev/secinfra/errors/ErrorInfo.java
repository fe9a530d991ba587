package dev.secinfra.errors;

import java.util.Map;

/**
 * The fields every {@link SecinfraException} carries.
 *
 * @param code the wire code or the client's own code
 * @param message the message; server messages are kept as received
 * @param status the HTTP status of the last answered attempt, or null
 * @param requestId the last answered attempt's request id, or null
 * @param retryable whether the same call may succeed later
 * @param retryAfter seconds from the last response's {@code Retry-After}, or null
 * @param attempts HTTP attempts the call made
 * @param details the envelope's details (empty when none)
 * @param endpoint the URL, as configured, of the endpoint of the call's last attempt, or null when
 *     the call made no attempt (spec 12.8.2)
 */
public record ErrorInfo(
    String code,
    String message,
    Integer status,
    String requestId,
    boolean retryable,
    Double retryAfter,
    int attempts,
    Map<String, Object> details,
    String endpoint) {

  /**
   * Copies the details; null becomes empty.
   *
   * @param code the wire code or the client's own code
   * @param message the message; server messages are kept as received
   * @param status the HTTP status of the last answered attempt, or null
   * @param requestId the last answered attempt's request id, or null
   * @param retryable whether the same call may succeed later
   * @param retryAfter seconds from the last response's {@code Retry-After}, or null
   * @param attempts HTTP attempts the call made
   * @param details the envelope's details (empty when none)
   * @param endpoint the endpoint of the call's last attempt, or null
   */
  public ErrorInfo {
    details = details == null ? Map.of() : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(details));
  }

  /**
   * The fields of an error without an endpoint (the call made no attempt, or the endpoint is set
   * later with {@link #withEndpoint(String)}).
   *
   * @param code the wire code or the client's own code
   * @param message the message; server messages are kept as received
   * @param status the HTTP status of the last answered attempt, or null
   * @param requestId the last answered attempt's request id, or null
   * @param retryable whether the same call may succeed later
   * @param retryAfter seconds from the last response's {@code Retry-After}, or null
   * @param attempts HTTP attempts the call made
   * @param details the envelope's details (empty when none)
   */
  public ErrorInfo(
      String code,
      String message,
      Integer status,
      String requestId,
      boolean retryable,
      Double retryAfter,
      int attempts,
      Map<String, Object> details) {
    this(code, message, status, requestId, retryable, retryAfter, attempts, details, null);
  }

  /**
   * A client-made error without a response.
   *
   * @param code the code
   * @param message the message
   * @param retryable whether retrying later can help
   * @param attempts attempts made
   * @return the fields
   */
  public static ErrorInfo of(String code, String message, boolean retryable, int attempts) {
    return new ErrorInfo(code, message, null, null, retryable, null, attempts, Map.of());
  }

  /**
   * These fields with another attempt count.
   *
   * @param attempts attempts made
   * @return the fields
   */
  public ErrorInfo withAttempts(int attempts) {
    return new ErrorInfo(
        code, message, status, requestId, retryable, retryAfter, attempts, details, endpoint);
  }

  /**
   * These fields with another message.
   *
   * @param message the message
   * @return the fields
   */
  public ErrorInfo withMessage(String message) {
    return new ErrorInfo(
        code, message, status, requestId, retryable, retryAfter, attempts, details, endpoint);
  }

  /**
   * These fields with another request id.
   *
   * @param requestId the {@code Request-Id} of the call's last answered attempt (spec 11.5)
   * @return the new fields
   */
  public ErrorInfo withRequestId(String requestId) {
    return new ErrorInfo(
        code, message, status, requestId, retryable, retryAfter, attempts, details, endpoint);
  }

  /**
   * These fields with the endpoint of the call's last attempt.
   *
   * @param endpoint the endpoint URL as configured
   * @return the fields
   */
  public ErrorInfo withEndpoint(String endpoint) {
    return new ErrorInfo(
        code, message, status, requestId, retryable, retryAfter, attempts, details, endpoint);
  }
}
