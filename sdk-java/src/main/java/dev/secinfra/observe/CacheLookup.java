package dev.secinfra.observe;

import java.util.Objects;

/**
 * The cache's answer for a cacheable call (spec 14.2.1).
 *
 * @param callId the call's id ({@link CallStarted#callId()})
 * @param rpc the RPC's full name
 * @param result hit, miss or revalidate
 */
public record CacheLookup(long callId, String rpc, CacheResult result) {
  /**
   * Checks the fields.
   *
   * @param callId the call's id
   * @param rpc the RPC's full name
   * @param result the cache's answer
   */
  public CacheLookup {
    Objects.requireNonNull(rpc, "rpc");
    Objects.requireNonNull(result, "result");
  }
}
