package dev.secinfra.observe;

import dev.secinfra.rpc.ResponseMeta;
import java.util.Objects;

/**
 * A call finished (spec 14.2.1).
 *
 * @param callId the call's id ({@link CallStarted#callId()})
 * @param rpc the RPC's full name
 * @param code the error's code (spec 11.3) when the call failed, or null when it succeeded
 * @param meta the call's result metadata (spec 7.7: from cache, stale, attempts, status,
 *     endpoint), as a {@link dev.secinfra.rpc.MetaCapture} records it
 */
public record CallFinished(long callId, String rpc, String code, ResponseMeta meta) {
  /**
   * Checks the fields.
   *
   * @param callId the call's id
   * @param rpc the RPC's full name
   * @param code the error code, or null
   * @param meta the result metadata
   */
  public CallFinished {
    Objects.requireNonNull(rpc, "rpc");
    Objects.requireNonNull(meta, "meta");
  }

  /**
   * Whether the call succeeded.
   *
   * @return true when it has no error code
   */
  public boolean ok() {
    return code == null;
  }
}
