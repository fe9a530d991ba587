package dev.secinfra.rpc;

/**
 * A cacheable RPC's cache family and key field.
 *
 * @param resource the family ({@code secret}, {@code bundle}, {@code authz})
 * @param keyField the request field whose value is the resource key, or empty
 */
public record CachePolicy(String resource, String keyField) {}
