package dev.secinfra.internal;

import dev.secinfra.errors.DeadlineExceededException;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.IdentityExpiredException;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.TransportException;

/**
 * The errors the runtime raises itself, without an answer: transport failures, a passed deadline,
 * an expired identity. Errors read from an answer are made by {@code call.Answers}.
 */
public final class Errors {
  private Errors() {}

  /**
   * A transport error (code {@code unavailable}).
   *
   * @param message the message
   * @param retryable whether retrying later can help
   * @param attempts attempts made
   * @param cause the cause
   * @return the error
   */
  public static TransportException transport(
      String message, boolean retryable, int attempts, Throwable cause) {
    return new TransportException(ErrorInfo.of("unavailable", message, retryable, attempts), cause);
  }

  /**
   * The call's deadline passed.
   *
   * @param message the message
   * @param attempts attempts made
   * @param cause the cause, or null
   * @return the error
   */
  public static DeadlineExceededException deadline(String message, int attempts, Throwable cause) {
    return new DeadlineExceededException(
        ErrorInfo.of("deadline_exceeded", message, true, attempts), cause);
  }

  /**
   * The same error, exposing the endpoint of the call's last attempt (spec 12.8.2). A transport
   * error's message names the endpoint too; an API error's message stays the server's. The
   * exception keeps its class, cause and stack trace.
   *
   * @param error the error that ends the call
   * @param endpoint the endpoint URL as configured
   * @return the error with its endpoint
   */
  public static SecinfraException atEndpoint(SecinfraException error, String endpoint) {
    if (endpoint == null || endpoint.equals(error.endpoint())) {
      return error;
    }
    ErrorInfo info = error.info().withEndpoint(endpoint);
    if (error instanceof TransportException && error.endpoint() == null) {
      info = info.withMessage(info.message() + " [endpoint " + endpoint + "]");
    }
    return copy(error, info);
  }

  /**
   * The same error, carrying the {@code Request-Id} of the call's last answered attempt when it has
   * none of its own: an error without an answer (reset, timeout, deadline) after an earlier attempt
   * was answered (spec 2.5.1, 11.5). An error made from an answer keeps that answer's id.
   *
   * @param error the error that ends the call
   * @param requestId the last answered attempt's {@code Request-Id}, or null
   * @return the error with that request id
   */
  public static SecinfraException answeredBy(SecinfraException error, String requestId) {
    if (requestId == null || error.requestId() != null) {
      return error;
    }
    return copy(error, error.info().withRequestId(requestId));
  }

  /**
   * The same error, counting {@code attempts} attempts: an error raised outside the attempts, as
   * while waiting for an identity, made after the attempts the call has made.
   *
   * @param error the error that ends the call
   * @param attempts the attempts the call made
   * @return the error with that count
   */
  public static SecinfraException withAttempts(SecinfraException error, int attempts) {
    return copy(error, error.info().withAttempts(attempts));
  }

  private static SecinfraException copy(SecinfraException error, ErrorInfo info) {
    SecinfraException copy;
    try {
      copy =
          error
              .getClass()
              .getConstructor(ErrorInfo.class, Throwable.class)
              .newInstance(info, error.getCause());
    } catch (ReflectiveOperationException e) {
      // Every SDK error has that constructor; keep the original rather than lose the error.
      return error;
    }
    copy.setStackTrace(error.getStackTrace());
    return copy;
  }

  /**
   * The identity expired.
   *
   * @param message the message
   * @param cause the cause, or null
   * @return the error
   */
  public static IdentityExpiredException identityExpired(String message, Throwable cause) {
    return new IdentityExpiredException(ErrorInfo.of("identity_expired", message, false, 0), cause);
  }
}
