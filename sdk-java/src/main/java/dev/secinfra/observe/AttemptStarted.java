package dev.secinfra.observe;

import java.util.Objects;

/**
 * An attempt is about to be sent (spec 14.2.1). The repeat of an attempt after a trust-bundle
 * refresh starts again with the same number (14.2.3).
 *
 * @param callId the call's id ({@link CallStarted#callId()})
 * @param rpc the RPC's full name
 * @param attempt the attempt's number, as sent in {@code Secinfra-Attempt} (1-based)
 * @param endpoint the URL of the endpoint it goes to, as configured ({@code https://host:port})
 * @param httpMethod the HTTP method ({@code GET}, {@code PUT}, ...)
 */
public record AttemptStarted(
    long callId, String rpc, int attempt, String endpoint, String httpMethod) {
  /**
   * Checks the fields.
   *
   * @param callId the call's id
   * @param rpc the RPC's full name
   * @param attempt the attempt's number
   * @param endpoint the endpoint's URL
   * @param httpMethod the HTTP method
   */
  public AttemptStarted {
    Objects.requireNonNull(rpc, "rpc");
    Objects.requireNonNull(endpoint, "endpoint");
    Objects.requireNonNull(httpMethod, "httpMethod");
  }
}
