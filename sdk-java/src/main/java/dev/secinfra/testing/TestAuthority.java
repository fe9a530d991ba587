package dev.secinfra.testing;

import dev.secinfra.identity.Csr;
import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.StaticIdentitySource;
import dev.secinfra.identity.X509Bundle;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.CertIOException;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * A throwaway certificate authority for tests: it issues X509-SVIDs (one URI SAN, {@code
 * cA=false}, digitalSignature, clientAuth and serverAuth) for keys made in the test, so that a
 * test can build a {@link StaticIdentitySource}, or answer an issuance with a certificate of
 * another SPIFFE ID or from a CA in no bundle, without a server. Its key lives in memory only.
 *
 * <pre>{@code
 * TestAuthority ca = TestAuthority.create("secinfra.local");
 * StaticIdentitySource source = ca.staticSource("spiffe://secinfra.local/billing");
 * }</pre>
 */
public final class TestAuthority {
  /** How long issued certificates and the CA are valid, by default. */
  public static final Duration DEFAULT_TTL = Duration.ofHours(1);

  private static final SecureRandom SERIALS = new SecureRandom();

  private final String trustDomain;
  private final KeyPair keys;
  private final X509Certificate certificate;

  private TestAuthority(String trustDomain, KeyPair keys, X509Certificate certificate) {
    this.trustDomain = trustDomain;
    this.keys = keys;
    this.certificate = certificate;
  }

  /**
   * A new self-signed CA for {@code trustDomain}, valid for a day.
   *
   * @param trustDomain the trust domain, for example {@code secinfra.local}
   * @return the authority
   */
  public static TestAuthority create(String trustDomain) {
    KeyPair keys = Csr.newKeyPair();
    Instant now = Instant.now();
    X500Name name = new X500Name("CN=secinfra test CA " + trustDomain);
    try {
      X509v3CertificateBuilder builder =
          new JcaX509v3CertificateBuilder(
              name, serial(), Date.from(now.minusSeconds(60)), Date.from(now.plus(Duration.ofDays(1))),
              name, keys.getPublic());
      builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
      builder.addExtension(
          Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
      builder.addExtension(Extension.subjectAlternativeName, false, uri("spiffe://" + trustDomain));
      return new TestAuthority(trustDomain, keys, sign(builder, keys));
    } catch (CertIOException e) {
      throw new IllegalStateException("secinfra: testing: the test CA cannot be built", e);
    }
  }

  /**
   * The CA certificate.
   *
   * @return the certificate
   */
  public X509Certificate certificate() {
    return certificate;
  }

  /**
   * A bundle holding this CA only (sequence 1, no refresh hint).
   *
   * @return the bundle
   */
  public X509Bundle bundle() {
    return new X509Bundle(List.of(certificate), 1, null);
  }

  /**
   * An X509-SVID for {@code publicKey}, valid from a minute ago for {@code ttl}: the chain, leaf
   * first, then this CA.
   *
   * @param spiffeId the leaf's SPIFFE ID (any trust domain: a test may want a foreign one)
   * @param publicKey the key the certificate is for
   * @param ttl how long it is valid from now
   * @return the chain
   */
  public List<X509Certificate> issue(String spiffeId, PublicKey publicKey, Duration ttl) {
    Instant now = Instant.now();
    return issue(spiffeId, publicKey, now.minusSeconds(60), now.plus(ttl));
  }

  /**
   * An X509-SVID for {@code publicKey} valid from {@code notBefore} to {@code notAfter} (either
   * may be in the past: an expired certificate for a refusal test): the chain, leaf first, then
   * this CA.
   *
   * @param spiffeId the leaf's SPIFFE ID
   * @param publicKey the key the certificate is for
   * @param notBefore the start of its validity
   * @param notAfter the end of its validity
   * @return the chain
   */
  public List<X509Certificate> issue(
      String spiffeId, PublicKey publicKey, Instant notBefore, Instant notAfter) {
    return List.of(leaf(publicKey, notBefore, notAfter, false, spiffeId), certificate);
  }

  /**
   * A certificate signed by this CA that breaks the X509-SVID rules on purpose, for tests that
   * a peer holding it is refused: any number of URI SANs ({@code "spiffe://a/x",
   * "spiffe://a/y"}), or a leaf that is a CA ({@code cA=true}, keyCertSign). Valid for {@link
   * #DEFAULT_TTL}; the chain, leaf first, then this CA.
   *
   * @param publicKey the key the certificate is for
   * @param ca whether the leaf is a CA
   * @param uris the URI SANs
   * @return the chain
   */
  public List<X509Certificate> issueNonSvid(PublicKey publicKey, boolean ca, String... uris) {
    Instant now = Instant.now();
    return List.of(
        leaf(publicKey, now.minusSeconds(60), now.plus(DEFAULT_TTL), ca, uris), certificate);
  }

  private X509Certificate leaf(
      PublicKey publicKey, Instant notBefore, Instant notAfter, boolean ca, String... uris) {
    try {
      X509v3CertificateBuilder builder =
          new JcaX509v3CertificateBuilder(
              certificate, serial(), Date.from(notBefore), Date.from(notAfter),
              new X500Name("O=secinfra test"), publicKey);
      builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(ca));
      builder.addExtension(
          Extension.keyUsage,
          true,
          new KeyUsage(ca ? KeyUsage.digitalSignature | KeyUsage.keyCertSign : KeyUsage.digitalSignature));
      builder.addExtension(
          Extension.extendedKeyUsage,
          false,
          new ExtendedKeyUsage(
              new KeyPurposeId[] {KeyPurposeId.id_kp_clientAuth, KeyPurposeId.id_kp_serverAuth}));
      GeneralName[] names = new GeneralName[uris.length];
      for (int i = 0; i < uris.length; i++) {
        names[i] = new GeneralName(GeneralName.uniformResourceIdentifier, uris[i]);
      }
      builder.addExtension(Extension.subjectAlternativeName, true, new GeneralNames(names));
      return sign(builder, keys);
    } catch (CertIOException e) {
      throw new IllegalStateException("secinfra: testing: the certificate cannot be built", e);
    }
  }

  /**
   * A new key and an X509-SVID for it, valid for {@link #DEFAULT_TTL}, as one snapshot.
   *
   * @param spiffeId the SPIFFE ID
   * @return the snapshot
   */
  public IdentitySnapshot snapshot(String spiffeId) {
    KeyPair leaf = Csr.newKeyPair();
    return new IdentitySnapshot(
        issue(spiffeId, leaf.getPublic(), DEFAULT_TTL), leaf.getPrivate(), Instant.now());
  }

  /**
   * A static identity source: a new SVID for {@code spiffeId} and this CA as the bundle.
   *
   * @param spiffeId the SPIFFE ID
   * @return the source
   */
  public StaticIdentitySource staticSource(String spiffeId) {
    return StaticIdentitySource.of(snapshot(spiffeId), bundle());
  }

  @Override
  public String toString() {
    return "TestAuthority{trustDomain=" + trustDomain + ", key=<redacted>}";
  }

  private static GeneralNames uri(String uri) {
    return new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, uri));
  }

  private static BigInteger serial() {
    return new BigInteger(64, SERIALS).add(BigInteger.ONE);
  }

  private static X509Certificate sign(X509v3CertificateBuilder builder, KeyPair signer) {
    try {
      return new JcaX509CertificateConverter()
          .getCertificate(
              builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(signer.getPrivate())));
    } catch (OperatorCreationException | GeneralSecurityException e) {
      throw new IllegalStateException("secinfra: testing: signing failed", e);
    }
  }
}
