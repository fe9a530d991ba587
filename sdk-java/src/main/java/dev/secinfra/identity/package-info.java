/**
 * Identity: snapshots (chain and key together), trust bundles, the {@link
 * dev.secinfra.identity.IdentitySource} the transport asks on every handshake, and rotation
 * events.
 */
package dev.secinfra.identity;
