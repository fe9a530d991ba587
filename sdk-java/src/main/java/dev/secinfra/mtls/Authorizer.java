package dev.secinfra.mtls;

/**
 * Decides whether a verified peer may connect, by its SPIFFE ID. The trust manager asks it on
 * every handshake, after the peer's chain has verified against the current trust bundle and the
 * X509-SVID rules, so {@code peerId} is always a well-formed SPIFFE ID of the bundle's trust
 * domain.
 *
 * <p>Build one with {@link Authorizers}; there is no default, and accepting every member of the
 * trust domain is spelled out as {@link Authorizers#any()}. An authorizer is called on handshake
 * threads concurrently: it must be thread-safe and should be fast (no I/O). Its {@code
 * toString()} is quoted in refusals, so say there what it allows.
 */
@FunctionalInterface
public interface Authorizer {
  /**
   * Whether the peer may connect.
   *
   * @param peerId the peer's verified SPIFFE ID, for example {@code spiffe://secinfra.local/api}
   * @return true to accept the peer, false to refuse the handshake
   */
  boolean authorizes(String peerId);
}
