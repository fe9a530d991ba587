package dev.secinfra.internal.call;

import com.fasterxml.jackson.databind.JsonNode;
import dev.secinfra.errors.ConflictException;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.FailedPreconditionException;
import dev.secinfra.errors.InternalErrorException;
import dev.secinfra.errors.InvalidArgumentException;
import dev.secinfra.errors.NotFoundException;
import dev.secinfra.errors.PermissionDeniedException;
import dev.secinfra.errors.RateLimitedException;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.errors.UnauthenticatedException;
import dev.secinfra.errors.UnavailableException;
import dev.secinfra.internal.transport.HttpTransport;
import dev.secinfra.rpc.MethodDescriptor;
import dev.secinfra.rpc.Wire;
import java.io.IOException;
import java.util.Map;

/**
 * An answer's status, headers and body turned into a result or a typed error (spec 11): a 2xx
 * body must be a JSON object; an error status is read from the error envelope, or from the status
 * alone (spec 11.2) when there is none; the request id comes from the {@code Request-Id} header
 * first.
 */
public final class Answers {
  private Answers() {}

  /**
   * The JSON object of a 2xx answer (an empty body is an empty object).
   *
   * @param method the RPC's descriptor
   * @param answer the answer
   * @param attempt the attempt that got it
   * @return the body
   * @throws TransportException when the body is not a JSON object
   */
  public static JsonNode body(MethodDescriptor method, HttpTransport.Outcome answer, int attempt) {
    byte[] bytes = answer.body();
    if (bytes == null || bytes.length == 0) {
      return Wire.object();
    }
    try {
      JsonNode node = Wire.MAPPER.readTree(bytes);
      if (node == null || !node.isObject()) {
        throw new IOException("not a JSON object");
      }
      return node;
    } catch (IOException e) {
      throw new TransportException(
          new ErrorInfo(
              "unavailable",
              "secinfra: transport: " + method.name() + " answered HTTP " + answer.status()
                  + " with a body that is not JSON",
              answer.status(), answer.header("Request-Id"), false, null, attempt, null),
          null);
    }
  }

  /**
   * The error for a status that is neither a success nor an error (1xx, 3xx other than an
   * expected 304).
   *
   * @param method the RPC's descriptor
   * @param answer the answer
   * @param attempt the attempt that got it
   * @return the error
   */
  public static SecinfraException unexpected(
      MethodDescriptor method, HttpTransport.Outcome answer, int attempt) {
    return typedError(
        new ErrorInfo(
            "internal",
            "secinfra: transport: " + method.name() + " answered unexpected HTTP " + answer.status(),
            answer.status(), answer.header("Request-Id"), false, null, attempt, null),
        null);
  }

  /**
   * The typed error of an error answer (status 400 or more).
   *
   * @param method the RPC's descriptor
   * @param answer the answer
   * @param attempt the attempt that got it
   * @param retryable whether the same call may succeed later
   * @param retryAfter the server's {@code Retry-After} in seconds, or null
   * @param why why retrying stopped, appended to the message, or null when it was never retried
   * @return the error
   */
  public static SecinfraException decodeError(
      MethodDescriptor method,
      HttpTransport.Outcome answer,
      int attempt,
      boolean retryable,
      Double retryAfter,
      String why) {
    ErrorInfo info = info(method, answer, attempt, retryable, retryAfter);
    if (why != null) {
      info = info.withMessage(info.message() + " (secinfra: retry: " + why + " after " + attempt
          + (attempt == 1 ? " attempt)" : " attempts)"));
    }
    return typedError(info, null);
  }

  /**
   * The error of a call ended by a {@code Retry-After} it will not wait for (spec 3.6.6, 11.3.3):
   * {@code rate_limited} for a 429, else {@code unavailable}, exposing the server's value.
   *
   * @param method the RPC's descriptor
   * @param answer the answer
   * @param attempt the attempt that got it
   * @param retryAfter the server's value in seconds
   * @param beyondCap true when beyond {@code maxRetryAfter}, false when beyond the deadline
   * @return the error
   */
  public static SecinfraException retryAfterRefused(
      MethodDescriptor method,
      HttpTransport.Outcome answer,
      int attempt,
      double retryAfter,
      boolean beyondCap) {
    ErrorInfo base = info(method, answer, attempt, true, retryAfter);
    boolean limited = answer.status() == 429;
    String message =
        "secinfra: retry: "
            + method.name()
            + " was asked to retry after "
            + retryAfter
            + " s, "
            + (beyondCap ? "beyond max_retry_after" : "beyond the call's deadline")
            + " (server said: "
            + base.message()
            + ")";
    ErrorInfo info =
        new ErrorInfo(
            limited ? "rate_limited" : "unavailable",
            message,
            base.status(),
            base.requestId(),
            true,
            retryAfter,
            attempt,
            base.details());
    return limited ? new RateLimitedException(info, null) : new UnavailableException(info, null);
  }

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
  public static SecinfraException typedError(ErrorInfo info, Throwable cause) {
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

  private static ErrorInfo info(
      MethodDescriptor method,
      HttpTransport.Outcome answer,
      int attempt,
      boolean retryable,
      Double retryAfter) {
    int status = answer.status();
    String code = null;
    String message = null;
    String envelopeId = null;
    Map<String, Object> details = null;
    try {
      byte[] bytes = answer.body();
      JsonNode root = bytes == null || bytes.length == 0 ? null : Wire.MAPPER.readTree(bytes);
      JsonNode error = root == null ? null : root.get("error");
      if (error != null && error.isObject() && error.path("code").isTextual()) {
        code = error.get("code").textValue();
        message = error.path("message").asText("");
        envelopeId = error.path("request_id").isTextual() ? error.get("request_id").textValue() : null;
        if (error.path("details").isObject()) {
          details = Wire.decStruct(error.get("details"), "$.error.details");
        }
      }
    } catch (IOException | RuntimeException e) {
      code = null;
    }
    if (code == null) {
      code = codeForStatus(status);
      message =
          "secinfra: transport: " + method.name() + " answered HTTP " + status
              + " without an error envelope";
    }
    String header = answer.header("Request-Id");
    return new ErrorInfo(
        code, message, status, header != null ? header : envelopeId, retryable, retryAfter, attempt,
        details);
  }
}
