package dev.secinfra.identity;

/**
 * Where the transport gets the identity and the trust bundle, on every new connection. A static
 * identity (files) and a rotating one (enrolment) are used the same way.
 */
public interface IdentitySource {
  /**
   * The current identity snapshot (chain and key together).
   *
   * @return the snapshot, or null when the client has none
   */
  IdentitySnapshot snapshot();

  /**
   * The current trust bundle.
   *
   * @return the bundle
   */
  X509Bundle bundle();
}
