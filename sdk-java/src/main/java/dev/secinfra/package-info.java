/**
 * The secinfra Java SDK: {@link dev.secinfra.SecinfraClient}, its options ({@link
 * dev.secinfra.RetryPolicy}, {@link dev.secinfra.RotationPolicy}, {@link dev.secinfra.CallOptions})
 * and call metadata ({@link dev.secinfra.MetaCapture}).
 */
package dev.secinfra;
