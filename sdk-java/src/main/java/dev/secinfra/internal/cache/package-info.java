/**
 * The response cache of spec 7 ({@link dev.secinfra.internal.cache.ResponseCache}, with its
 * key, Cache-Control and revision-token helpers) and its single-flight ({@link
 * dev.secinfra.internal.cache.SingleFlight}).
 */
package dev.secinfra.internal.cache;
