/**
 * The dispatcher that notifies a client's observers ({@link
 * dev.secinfra.internal.observe.Observers}): failure isolation and the check of the trace context
 * they return (spec 14.1.3, 14.3).
 */
package dev.secinfra.internal.observe;
