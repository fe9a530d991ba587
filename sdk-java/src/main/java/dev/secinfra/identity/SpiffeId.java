package dev.secinfra.identity;

import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/** SPIFFE ID helpers for X509-SVIDs. */
public final class SpiffeId {
  private static final int URI_SAN = 6;

  private SpiffeId() {}

  /**
   * The URI SANs of a certificate, in order.
   *
   * @param certificate the certificate
   * @return the URIs (empty when there are none or they do not parse)
   */
  public static List<String> uriSans(X509Certificate certificate) {
    List<String> out = new ArrayList<>();
    try {
      Collection<List<?>> names = certificate.getSubjectAlternativeNames();
      if (names == null) {
        return out;
      }
      for (List<?> name : names) {
        if (name.size() >= 2 && Integer.valueOf(URI_SAN).equals(name.get(0))) {
          out.add(String.valueOf(name.get(1)));
        }
      }
    } catch (CertificateParsingException e) {
      return out;
    }
    return out;
  }

  /**
   * The SPIFFE ID of an X509-SVID leaf: its one {@code spiffe://} URI SAN.
   *
   * @param leaf the leaf certificate
   * @return the SPIFFE ID
   * @throws IllegalArgumentException when the leaf has not exactly one URI SAN or it is not a
   *     SPIFFE ID
   */
  public static String of(X509Certificate leaf) {
    List<String> uris = uriSans(leaf);
    if (uris.size() != 1 || !uris.get(0).startsWith("spiffe://")) {
      throw new IllegalArgumentException(
          "secinfra: identity: not an X509-SVID: expected exactly one spiffe:// URI SAN, found "
              + uris);
    }
    return uris.get(0);
  }

  /**
   * The trust domain of a SPIFFE ID ({@code spiffe://example.org/x} gives {@code example.org}).
   *
   * @param spiffeId the ID
   * @return the trust domain
   */
  public static String trustDomain(String spiffeId) {
    String rest = spiffeId.substring("spiffe://".length());
    int slash = rest.indexOf('/');
    return slash < 0 ? rest : rest.substring(0, slash);
  }

  /**
   * The server ID of a trust domain: {@code spiffe://<td>/secinfra/server}.
   *
   * @param trustDomain the trust domain
   * @return the server's SPIFFE ID
   */
  public static String serverId(String trustDomain) {
    return "spiffe://" + trustDomain + "/secinfra/server";
  }
}
