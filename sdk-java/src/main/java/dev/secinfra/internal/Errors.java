package dev.secinfra.internal;

import dev.secinfra.errors.ConflictException;
import dev.secinfra.errors.DeadlineExceededException;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.FailedPreconditionException;
import dev.secinfra.errors.IdentityExpiredException;
import dev.secinfra.errors.InternalErrorException;
import dev.secinfra.errors.InvalidArgumentException;
import dev.secinfra.errors.NotFoundException;
import dev.secinfra.errors.PermissionDeniedException;
import dev.secinfra.errors.RateLimitedException;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.errors.UnauthenticatedException;
import dev.secinfra.errors.UnavailableException;

/** Error construction: the code tables of spec 11.2 and 11.3. */
public final class Errors {
  private Errors() {}

  /**
   * The code for a status without a usable envelope (spec 11.2).
   *
   * @param status the HTTP status
   * @return the code
   */
  public static String codeForStatus(int status) {
    switch (status) {
      case 400:
        return "invalid_argument";
      case 401:
        return "unauthenticated";
      case 403:
        return "permission_denied";
      case 404:
        return "not_found";
      case 405:
        return "method_not_allowed";
      case 408:
        return "unavailable";
      case 409:
        return "conflict";
      case 412:
        return "failed_precondition";
      case 413:
        return "payload_too_large";
      case 422:
        return "idempotency_key_reused";
      case 429:
        return "rate_limited";
      case 501:
        return "unimplemented";
      case 502:
      case 503:
        return "unavailable";
      case 504:
        return "deadline_exceeded";
      default:
        return status >= 500 ? "internal" : "invalid_argument";
    }
  }

  /**
   * The API error type for a code (spec 11.3); unknown codes are internal errors.
   *
   * @param info the fields
   * @param cause the cause, or null
   * @return the error
   */
  public static SecinfraException api(ErrorInfo info, Throwable cause) {
    switch (info.code()) {
      case "invalid_argument":
      case "payload_too_large":
      case "method_not_allowed":
      case "idempotency_key_reused":
        return new InvalidArgumentException(info, cause);
      case "unauthenticated":
        return new UnauthenticatedException(info, cause);
      case "permission_denied":
        return new PermissionDeniedException(info, cause);
      case "not_found":
        return new NotFoundException(info, cause);
      case "already_exists":
      case "conflict":
        return new ConflictException(info, cause);
      case "failed_precondition":
        return new FailedPreconditionException(info, cause);
      case "rate_limited":
        return new RateLimitedException(info, cause);
      case "unavailable":
      case "deadline_exceeded":
        return new UnavailableException(info, cause);
      default:
        return new InternalErrorException(info, cause);
    }
  }

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
   * The identity expired.
   *
   * @param message the message
   * @param cause the cause, or null
   * @return the error
   */
  public static IdentityExpiredException identityExpired(String message, Throwable cause) {
    return new IdentityExpiredException(ErrorInfo.of("identity_expired", message, false, 0), cause);
  }

  /**
   * The same error with another attempt count (same type, same cause).
   *
   * @param error the error
   * @param attempts the attempts
   * @return a copy
   */
  public static SecinfraException withAttempts(SecinfraException error, int attempts) {
    ErrorInfo info = error.info().withAttempts(attempts);
    if (error instanceof DeadlineExceededException) {
      return new DeadlineExceededException(info, error.getCause());
    }
    if (error instanceof TransportException) {
      return new TransportException(info, error.getCause());
    }
    if (error instanceof IdentityExpiredException) {
      return new IdentityExpiredException(info, error.getCause());
    }
    return api(info, error.getCause());
  }
}
