package dev.secinfra.mtls;

import java.security.cert.CertificateException;
import java.util.Optional;

/**
 * A peer refused during the TLS handshake: which rule failed and, when the certificate named one,
 * the peer's SPIFFE ID. The JDK fails the handshake with an {@link javax.net.ssl.SSLException}
 * whose cause is this exception. The message holds IDs, serials and dates only, never key
 * material.
 */
public final class PeerRefusedException extends CertificateException {
  /** Serial form version. */
  private static final long serialVersionUID = 1L;

  /** The rule that refused the peer, in the order they are checked. */
  public enum Rule {
    /** The peer presented no certificate. */
    NO_CERTIFICATE,
    /** The leaf has not exactly one URI SAN, or it is not a SPIFFE ID. */
    SPIFFE_ID,
    /** The leaf is a CA, or may sign certificates or CRLs. */
    LEAF_IS_CA,
    /** The peer's SPIFFE ID is of another trust domain than the trust bundle's. */
    TRUST_DOMAIN,
    /** The leaf is expired or not yet valid. */
    VALIDITY,
    /** The chain does not lead to a CA of the current trust bundle. */
    CHAIN,
    /** The chain verified, but the authorizer does not accept the peer's SPIFFE ID. */
    UNAUTHORIZED
  }

  /** Which rule failed. */
  private final Rule rule;

  /** The peer's SPIFFE ID, when its certificate had a valid one; else null. */
  private final String peerId;

  PeerRefusedException(Rule rule, String peerId, String reason, Throwable cause) {
    super(
        "secinfra: mtls: peer refused ("
            + rule.name().toLowerCase(java.util.Locale.ROOT)
            + "): "
            + reason
            + (peerId == null ? "" : " [peer " + peerId + "]"),
        cause);
    this.rule = rule;
    this.peerId = peerId;
  }

  /**
   * Which rule failed.
   *
   * @return the rule
   */
  public Rule rule() {
    return rule;
  }

  /**
   * The peer's SPIFFE ID, when its certificate carried a well-formed one.
   *
   * @return the ID, if known
   */
  public Optional<String> peerId() {
    return Optional.ofNullable(peerId);
  }
}
