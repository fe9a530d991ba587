/**
 * The hand-written runtime: transport and TLS, the call engine (retries, deadlines, budget), the
 * cache and the identity manager. Not a public API: it may change in any release.
 */
package dev.secinfra.internal;
