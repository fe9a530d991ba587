/**
 * What generated code uses: RPC descriptors, the {@link dev.secinfra.runtime.Caller} interface and
 * the JSON wire helpers. Applications rarely need it directly.
 */
package dev.secinfra.runtime;
