package dev.secinfra.errors;

import java.util.Map;

/**
 * The base of every error the secinfra SDK throws (unchecked).
 *
 * <pre>
 * SecinfraException                 code, message, status, request id, retryable,
 * |                                 retry after, attempts, details, cause
 * +-- ApiException                  the server answered with an error status
 * |   +-- InvalidArgumentException  invalid_argument, payload_too_large,
 * |   |                             method_not_allowed, idempotency_key_reused
 * |   +-- UnauthenticatedException  unauthenticated
 * |   +-- PermissionDeniedException permission_denied
 * |   +-- NotFoundException         not_found
 * |   +-- ConflictException         already_exists, conflict
 * |   +-- FailedPreconditionException failed_precondition
 * |   +-- RateLimitedException      rate_limited
 * |   +-- UnavailableException      unavailable, deadline_exceeded (from the server)
 * |   +-- InternalErrorException    internal, unimplemented, unknown codes
 * +-- TransportException            no usable answer (connection, TLS, verification, timeout)
 * |   +-- DeadlineExceededException the call's deadline passed
 * +-- IdentityExpiredException      the certificate expired and could not be renewed
 * </pre>
 *
 * <p>{@link #toString()} ends with the request id when there is one. No message made by the SDK
 * holds a secret value, a private key, a join token or a JWT.
 */
public class SecinfraException extends RuntimeException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /** The error's fields. */
  private final ErrorInfo info;

  /**
   * An error with the given fields.
   *
   * @param info the error's fields
   * @param cause the underlying error, or null
   */
  public SecinfraException(ErrorInfo info, Throwable cause) {
    super(info.message(), cause);
    this.info = info;
  }

  /**
   * The wire code ({@code not_found}, ...) or the client's own ({@code identity_expired},
   * {@code deadline_exceeded}).
   *
   * @return the code
   */
  public String code() {
    return info.code();
  }

  /**
   * The HTTP status of the last answered attempt.
   *
   * @return the status, or null without a response
   */
  public Integer status() {
    return info.status();
  }

  /**
   * The server's request id of the last answered attempt.
   *
   * @return the request id, or null
   */
  public String requestId() {
    return info.requestId();
  }

  /**
   * Whether the same call may succeed later (its last outcome was retryable).
   *
   * @return true when retrying later can help
   */
  public boolean retryable() {
    return info.retryable();
  }

  /**
   * Seconds the server asked to wait ({@code Retry-After}).
   *
   * @return the seconds, or null
   */
  public Double retryAfter() {
    return info.retryAfter();
  }

  /**
   * HTTP attempts the call made (0 when none was made).
   *
   * @return the attempts
   */
  public int attempts() {
    return info.attempts();
  }

  /**
   * The endpoint of the call's last attempt (spec 12.8.2): its URL as configured, or null when
   * the call ended before any attempt (an invalid request, an expired identity).
   *
   * @return the endpoint URL, or null
   */
  public String endpoint() {
    return info.endpoint();
  }

  /**
   * The envelope's details object.
   *
   * @return the details, empty when none
   */
  public Map<String, Object> details() {
    return info.details();
  }

  /**
   * All the fields at once.
   *
   * @return the error's fields
   */
  public ErrorInfo info() {
    return info;
  }

  @Override
  public String toString() {
    String text = getClass().getName() + ": " + getMessage();
    return info.requestId() == null ? text : text + " (request id " + info.requestId() + ")";
  }
}
