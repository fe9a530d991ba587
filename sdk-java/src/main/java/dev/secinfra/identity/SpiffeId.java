package dev.secinfra.identity;

import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/** SPIFFE ID helpers for X509-SVIDs. */
public final class SpiffeId {
  private static final int URI_SAN = 6;
  private static final String SCHEME = "spiffe://";
  /** The longest SPIFFE ID the SPIFFE spec allows, in bytes (all its characters are ASCII). */
  private static final int MAX_LENGTH = 2048;

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

  /**
   * Whether {@code id} is a SPIFFE ID by the SPIFFE spec: {@code spiffe://}, a trust domain of
   * {@code [a-z0-9._-]}, then path segments of {@code [a-zA-Z0-9._-]} that are neither empty nor
   * {@code .} or {@code ..}; no trailing slash, query, fragment, port or user info; at most 2048
   * characters. A peer's ID is checked with this before any authorizer sees it, so an authorizer
   * never has to defend against {@code /a/../b} or upper-case trust domains.
   *
   * @param id the candidate
   * @return true when it is a SPIFFE ID
   */
  public static boolean isValid(String id) {
    if (id == null || id.length() > MAX_LENGTH || !id.startsWith(SCHEME)) {
      return false;
    }
    String rest = id.substring(SCHEME.length());
    int slash = rest.indexOf('/');
    if (!isValidTrustDomain(slash < 0 ? rest : rest.substring(0, slash))) {
      return false;
    }
    return slash < 0 || isValidPath(rest.substring(slash));
  }

  /**
   * Whether {@code trustDomain} is a trust domain name: one or more of {@code [a-z0-9._-]}.
   *
   * @param trustDomain the candidate, for example {@code secinfra.local}
   * @return true when it is a trust domain name
   */
  public static boolean isValidTrustDomain(String trustDomain) {
    if (trustDomain == null || trustDomain.isEmpty()) {
      return false;
    }
    for (int i = 0; i < trustDomain.length(); i++) {
      char c = trustDomain.charAt(i);
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) {
        return false;
      }
    }
    return true;
  }

  /**
   * Whether {@code path} is the path of a SPIFFE ID: {@code /}-separated segments of {@code
   * [a-zA-Z0-9._-]}, none empty, {@code .} or {@code ..}.
   *
   * @param path the candidate, for example {@code /billing/api}
   * @return true when it is a SPIFFE ID path
   */
  public static boolean isValidPath(String path) {
    if (path == null || !path.startsWith("/")) {
      return false;
    }
    for (String segment : path.substring(1).split("/", -1)) {
      if (segment.isEmpty() || segment.equals(".") || segment.equals("..")) {
        return false;
      }
      for (int i = 0; i < segment.length(); i++) {
        char c = segment.charAt(i);
        if (!((c >= 'a' && c <= 'z')
            || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || c == '.'
            || c == '-'
            || c == '_')) {
          return false;
        }
      }
    }
    return true;
  }
}
