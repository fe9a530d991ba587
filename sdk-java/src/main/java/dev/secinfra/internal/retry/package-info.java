/**
 * Retry rules: the pure decision of spec 3 ({@link dev.secinfra.internal.retry.Retry}). The
 * budget that pays for retries is the public {@link dev.secinfra.RetryBudget}, where users size it.
 */
package dev.secinfra.internal.retry;
