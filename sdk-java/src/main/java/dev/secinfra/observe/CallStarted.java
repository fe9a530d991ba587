package dev.secinfra.observe;

import dev.secinfra.rpc.Idempotency;
import java.util.Objects;

/**
 * A call started (spec 14.2.1).
 *
 * @param callId ties the call's notifications together; unique within the client
 * @param rpc the RPC's full name ({@code secinfra.v1.SecretsService/GetSecret})
 * @param idempotency the RPC's idempotency class
 */
public record CallStarted(long callId, String rpc, Idempotency idempotency) {
  /**
   * Checks the fields.
   *
   * @param callId the call's id
   * @param rpc the RPC's full name
   * @param idempotency the RPC's idempotency class
   */
  public CallStarted {
    Objects.requireNonNull(rpc, "rpc");
    Objects.requireNonNull(idempotency, "idempotency");
  }
}
