package dev.secinfra.observe;

import java.util.Objects;

/**
 * An attempt ended (spec 14.2.1).
 *
 * @param callId the call's id ({@link CallStarted#callId()})
 * @param rpc the RPC's full name
 * @param attempt the attempt's number
 * @param endpoint the URL of the endpoint it went to, as configured
 * @param status the HTTP status, or null when the attempt got no answer
 * @param code the error code when the attempt failed (the API error's code, or {@code
 *     unavailable} for a transport failure), or null when it succeeded
 */
public record AttemptFinished(
    long callId, String rpc, int attempt, String endpoint, Integer status, String code) {
  /**
   * Checks the fields.
   *
   * @param callId the call's id
   * @param rpc the RPC's full name
   * @param attempt the attempt's number
   * @param endpoint the endpoint's URL
   * @param status the HTTP status, or null
   * @param code the error code, or null
   */
  public AttemptFinished {
    Objects.requireNonNull(rpc, "rpc");
    Objects.requireNonNull(endpoint, "endpoint");
  }

  /**
   * Whether the attempt succeeded.
   *
   * @return true when it has no error code
   */
  public boolean ok() {
    return code == null;
  }
}
