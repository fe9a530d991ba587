/**
 * The client's endpoints (spec 12): the endpoint order, per-endpoint cooldown after endpoint
 * failures, and which endpoint each attempt goes to. Whether there is another attempt stays the
 * retry rules' decision ({@link dev.secinfra.internal.retry.Retry}). Not a public API.
 */
package dev.secinfra.internal.endpoints;
