package dev.secinfra.identity;

import com.fasterxml.jackson.databind.JsonNode;
import dev.secinfra.rpc.Wire;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A trust bundle: the CA certificates a client trusts, with the bundle's sequence number and
 * refresh hint (spec 10). Immutable.
 */
public final class X509Bundle {
  private final List<X509Certificate> authorities;
  private final long sequence;
  private final Integer refreshHintSeconds;

  /**
   * A bundle.
   *
   * @param authorities the CA certificates (at least one)
   * @param sequence the bundle's {@code spiffe_sequence} (0 for PEM)
   * @param refreshHintSeconds the {@code spiffe_refresh_hint}, or null
   * @throws IllegalArgumentException when there is no CA
   */
  public X509Bundle(List<X509Certificate> authorities, long sequence, Integer refreshHintSeconds) {
    if (authorities.isEmpty()) {
      throw new IllegalArgumentException("secinfra: identity: the trust bundle holds no X.509 CA");
    }
    this.authorities = List.copyOf(authorities);
    this.sequence = sequence;
    this.refreshHintSeconds = refreshHintSeconds;
  }

  /**
   * Parses a bundle given by the application: a SPIFFE bundle document when the first
   * non-whitespace character is <code>{</code>, else PEM CA certificates (sequence 0).
   *
   * @param text the bundle
   * @return the bundle
   * @throws IllegalArgumentException when it does not parse or holds no CA
   */
  public static X509Bundle parse(String text) {
    if (text.strip().startsWith("{")) {
      try {
        return fromSpiffeJson(Wire.MAPPER.readTree(text));
      } catch (IOException e) {
        throw new IllegalArgumentException("secinfra: identity: the bundle is not valid JSON", e);
      }
    }
    try {
      return new X509Bundle(Pem.parseCertificates(text), 0, null);
    } catch (CertificateException e) {
      throw new IllegalArgumentException("secinfra: identity: a bundle certificate does not parse", e);
    }
  }

  /**
   * Reads a SPIFFE bundle document (JWK Set): the first {@code x5c} element of every key whose
   * {@code use} is {@code x509-svid}.
   *
   * @param json the document
   * @return the bundle
   * @throws IllegalArgumentException when it does not parse or holds no CA
   */
  public static X509Bundle fromSpiffeJson(JsonNode json) {
    if (json == null || !json.isObject()) {
      throw new IllegalArgumentException("secinfra: identity: the bundle is not a JSON object");
    }
    List<X509Certificate> cas = new ArrayList<>();
    JsonNode keys = json.path("keys");
    if (keys.isArray()) {
      for (JsonNode key : keys) {
        JsonNode x5c = key.path("x5c");
        if (!"x509-svid".equals(key.path("use").asText(null)) || !x5c.isArray() || x5c.isEmpty()) {
          continue;
        }
        try {
          cas.add(Pem.parseDer(Base64.getDecoder().decode(x5c.get(0).asText(""))));
        } catch (CertificateException | IllegalArgumentException e) {
          throw new IllegalArgumentException(
              "secinfra: identity: a bundle certificate does not parse", e);
        }
      }
    }
    long sequence = json.path("spiffe_sequence").asLong(0);
    JsonNode hint = json.get("spiffe_refresh_hint");
    Integer refresh = hint != null && hint.isNumber() ? hint.asInt() : null;
    return new X509Bundle(cas, sequence, refresh);
  }

  /**
   * The CA certificates.
   *
   * @return the CAs
   */
  public List<X509Certificate> authorities() {
    return authorities;
  }

  /**
   * The sequence number (0 for a PEM bundle).
   *
   * @return the sequence
   */
  public long sequence() {
    return sequence;
  }

  /**
   * The refresh hint in seconds.
   *
   * @return the hint, if the bundle has one
   */
  public Optional<Integer> refreshHintSeconds() {
    return Optional.ofNullable(refreshHintSeconds);
  }

  /**
   * The trust domain named by the first CA with a {@code spiffe://} URI SAN.
   *
   * @return the trust domain, if a CA names one
   */
  public Optional<String> trustDomain() {
    for (X509Certificate ca : authorities) {
      for (String uri : SpiffeId.uriSans(ca)) {
        if (uri.startsWith("spiffe://")) {
          return Optional.of(SpiffeId.trustDomain(uri));
        }
      }
    }
    return Optional.empty();
  }

  /**
   * Verifies that a chain (leaf first, with its intermediates) leads to a CA of this bundle,
   * every certificate valid at {@code at}: the check of a server's chain (spec 8.5.1) and of a
   * newly issued or renewed certificate (8.7.4). Trailing certificates that are CAs of the bundle
   * themselves are left out of the path.
   *
   * @param chain the chain, leaf first
   * @param at the time the chain must be valid at
   * @throws GeneralSecurityException when the chain does not verify ({@link
   *     java.security.cert.CertPathValidatorException} for a path that fails)
   */
  public void verify(List<X509Certificate> chain, Instant at) throws GeneralSecurityException {
    Set<TrustAnchor> anchors = new HashSet<>();
    for (X509Certificate ca : authorities) {
      anchors.add(new TrustAnchor(ca, null));
    }
    PKIXParameters params = new PKIXParameters(anchors);
    params.setRevocationEnabled(false);
    params.setDate(Date.from(at));
    int end = chain.size();
    while (end > 1 && authorities.contains(chain.get(end - 1))) {
      end--;
    }
    CertPath path = CertificateFactory.getInstance("X.509").generateCertPath(chain.subList(0, end));
    CertPathValidator.getInstance("PKIX").validate(path, params);
  }

  /**
   * The CAs as PEM.
   *
   * @return the PEM text
   */
  public String toPem() {
    return Pem.encodeCertificates(authorities);
  }

  @Override
  public String toString() {
    return "X509Bundle{authorities=" + authorities.size() + ", sequence=" + sequence + "}";
  }
}
