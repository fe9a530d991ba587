/**
 * The SDK's errors: one unchecked base, {@link dev.secinfra.errors.SecinfraException}, with API
 * errors (the server answered), transport errors (no usable answer) and identity errors apart.
 */
package dev.secinfra.errors;
