/**
 * The secinfra Java SDK: {@link dev.secinfra.SecinfraClient} and its client-wide settings ({@link
 * dev.secinfra.RetryPolicy}, {@link dev.secinfra.RotationPolicy}, {@link dev.secinfra.RetryBudget},
 * {@link dev.secinfra.TimeSource}). Per-call options and call metadata are in {@link
 * dev.secinfra.rpc}; errors in {@link dev.secinfra.errors}; identity types in {@link
 * dev.secinfra.identity}; observers of calls in {@link dev.secinfra.observe}.
 */
package dev.secinfra;
