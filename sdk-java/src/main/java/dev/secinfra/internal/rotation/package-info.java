/**
 * Rotation timing (spec 9, 10) as pure functions of {@link dev.secinfra.RotationPolicy}.
 */
package dev.secinfra.internal.rotation;
