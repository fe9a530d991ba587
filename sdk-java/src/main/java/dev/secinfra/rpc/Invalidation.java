package dev.secinfra.rpc;

/**
 * What a write RPC invalidates in the client's cache.
 *
 * @param resource the family
 * @param keyField the request field naming the resource, or empty for the whole family
 */
public record Invalidation(String resource, String keyField) {}
