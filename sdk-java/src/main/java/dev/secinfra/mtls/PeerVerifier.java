package dev.secinfra.mtls;

import dev.secinfra.identity.SpiffeId;
import dev.secinfra.identity.X509Bundle;
import dev.secinfra.mtls.PeerRefusedException.Rule;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;

/**
 * The checks on a peer's chain, pure: the X509-SVID rules, the chain to the trust bundle at a
 * given time, then the authorizer. The rules come first so that a refusal names the most precise
 * cause (a leaf with two URI SANs is refused as such, not as an unknown issuer).
 */
final class PeerVerifier {
  /** Key usage bits, as {@link X509Certificate#getKeyUsage()} indexes them. */
  private static final int KEY_CERT_SIGN = 5;

  private static final int CRL_SIGN = 6;

  private PeerVerifier() {}

  /**
   * Verifies a peer.
   *
   * @param chain the peer's chain, leaf first
   * @param bundle the current trust bundle
   * @param trustDomain the trust domain the peer must belong to
   * @param authorizer who may connect
   * @param now the time the chain must be valid at
   * @return the peer's SPIFFE ID
   * @throws PeerRefusedException when a check fails
   */
  static String verify(
      X509Certificate[] chain,
      X509Bundle bundle,
      String trustDomain,
      Authorizer authorizer,
      Instant now)
      throws PeerRefusedException {
    if (chain == null || chain.length == 0) {
      throw new PeerRefusedException(
          Rule.NO_CERTIFICATE, null, "the peer presented no certificate", null);
    }
    X509Certificate leaf = chain[0];
    List<String> uris = SpiffeId.uriSans(leaf);
    if (uris.size() != 1) {
      throw new PeerRefusedException(
          Rule.SPIFFE_ID,
          null,
          "an X509-SVID has exactly one URI SAN, the peer's certificate has "
              + uris.size()
              + (uris.isEmpty() ? "" : " " + uris),
          null);
    }
    String peerId = uris.get(0);
    if (!SpiffeId.isValid(peerId)) {
      throw new PeerRefusedException(
          Rule.SPIFFE_ID, null, "the peer's URI SAN is not a SPIFFE ID: " + peerId, null);
    }
    boolean[] usage = leaf.getKeyUsage();
    boolean signsCertificates =
        usage != null
            && ((usage.length > KEY_CERT_SIGN && usage[KEY_CERT_SIGN])
                || (usage.length > CRL_SIGN && usage[CRL_SIGN]));
    if (leaf.getBasicConstraints() >= 0 || signsCertificates) {
      throw new PeerRefusedException(
          Rule.LEAF_IS_CA,
          peerId,
          "the peer's leaf certificate is a CA or may sign certificates (serial "
              + leaf.getSerialNumber().toString(16)
              + ")",
          null);
    }
    String peerDomain = SpiffeId.trustDomain(peerId);
    if (!peerDomain.equals(trustDomain)) {
      throw new PeerRefusedException(
          Rule.TRUST_DOMAIN,
          peerId,
          "the peer is of the trust domain " + peerDomain + ", the trust bundle is " + trustDomain,
          null);
    }
    if (now.isBefore(leaf.getNotBefore().toInstant())
        || !now.isBefore(leaf.getNotAfter().toInstant())) {
      throw new PeerRefusedException(
          Rule.VALIDITY,
          peerId,
          "the peer's certificate is valid from "
              + leaf.getNotBefore().toInstant()
              + " to "
              + leaf.getNotAfter().toInstant()
              + ", not at "
              + now,
          null);
    }
    try {
      bundle.verify(Arrays.asList(chain), now);
    } catch (GeneralSecurityException e) {
      throw new PeerRefusedException(
          Rule.CHAIN,
          peerId,
          "the peer's chain does not lead to a CA of the current trust bundle ("
              + e.getMessage()
              + ")",
          e);
    }
    if (!authorizer.authorizes(peerId)) {
      throw new PeerRefusedException(
          Rule.UNAUTHORIZED, peerId, "the authorizer accepts " + authorizer + " only", null);
    }
    return peerId;
  }
}
