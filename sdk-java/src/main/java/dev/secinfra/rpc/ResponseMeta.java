package dev.secinfra.rpc;

/**
 * What happened in one call (spec 7.7), recorded into a {@link MetaCapture}.
 *
 * @param fromCache the value came from the cache (fresh, revalidated by a 304, or stale)
 * @param stale a stale value was served because the server failed (stale-if-error)
 * @param attempts HTTP attempts made (0 for a fresh cache hit)
 * @param requestId the request id of the attempt that answered or last failed, or null
 * @param status that attempt's HTTP status, or null
 */
public record ResponseMeta(
    boolean fromCache, boolean stale, int attempts, String requestId, Integer status) {}
