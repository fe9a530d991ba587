/**
 * The rotating identity source ({@link
 * dev.secinfra.internal.identity.RotatingIdentitySource}): enrolment, renewal, re-enrolment and
 * bundle refresh, owned by the client.
 */
package dev.secinfra.internal.identity;
