package dev.secinfra.rpc;

/**
 * What happened in one call (spec 7.7, 12.8.1), recorded into a {@link MetaCapture}.
 *
 * @param fromCache the value came from the cache (fresh, revalidated by a 304, or stale)
 * @param stale a stale value was served because the server failed (stale-if-error)
 * @param attempts HTTP attempts made (0 for a fresh cache hit)
 * @param requestId the {@code Request-Id} of the last answered attempt, also when a later one
 *     got no answer (spec 7.7.1), or null
 * @param status the last attempt's HTTP status, or null when it got no answer
 * @param endpoint the URL, as configured, of the endpoint the last attempt went to; null for a call
 *     answered from the cache without a request
 */
public record ResponseMeta(
    boolean fromCache,
    boolean stale,
    int attempts,
    String requestId,
    Integer status,
    String endpoint) {

  /**
   * Meta without an endpoint: a call answered from the cache without a request.
   *
   * @param fromCache the value came from the cache
   * @param stale a stale value was served because the server failed
   * @param attempts HTTP attempts made
   * @param requestId the {@code Request-Id} of the last answered attempt, or null
   * @param status the last attempt's HTTP status, or null
   */
  public ResponseMeta(
      boolean fromCache, boolean stale, int attempts, String requestId, Integer status) {
    this(fromCache, stale, attempts, requestId, status, null);
  }
}
