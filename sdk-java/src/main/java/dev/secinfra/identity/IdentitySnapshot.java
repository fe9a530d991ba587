package dev.secinfra.identity;

import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;

/**
 * One X509-SVID chain together with its private key: the unit that rotates. Chain and key are only
 * ever read and replaced together. {@link #toString()} never shows the key.
 */
public final class IdentitySnapshot {
  /** NotBefore backdating of the server (spec 9.1.2). */
  public static final Duration NOT_BEFORE_BACKDATING = Duration.ofSeconds(60);

  private final List<X509Certificate> chain;
  private final PrivateKey key;
  private final String spiffeId;
  private final Instant issueTime;

  /**
   * A snapshot; checks that the leaf is an X509-SVID and that its public key is {@code key}'s.
   *
   * @param chain the chain, leaf first
   * @param key the leaf's private key
   * @param received when the certificate was received or loaded (wall clock)
   * @throws IllegalArgumentException when the chain is empty, the leaf is not an SVID or the key
   *     does not match
   */
  public IdentitySnapshot(List<X509Certificate> chain, PrivateKey key, Instant received) {
    if (chain.isEmpty()) {
      throw new IllegalArgumentException("secinfra: identity: empty certificate chain");
    }
    this.chain = List.copyOf(chain);
    this.key = key;
    this.spiffeId = SpiffeId.of(chain.get(0));
    if (!KeyMatch.matches(chain.get(0).getPublicKey(), key)) {
      throw new IllegalArgumentException(
          "secinfra: identity: the certificate's public key is not the snapshot's key");
    }
    Instant backdated = chain.get(0).getNotBefore().toInstant().plus(NOT_BEFORE_BACKDATING);
    this.issueTime = received.isBefore(backdated) ? received : backdated;
  }

  /**
   * The chain as issued, leaf first.
   *
   * @return the chain
   */
  public List<X509Certificate> chain() {
    return chain;
  }

  /**
   * The chain as an array, leaf first (what TLS key managers hand out).
   *
   * @return a new array
   */
  public X509Certificate[] chainArray() {
    return chain.toArray(new X509Certificate[0]);
  }

  /**
   * The private key; it never leaves the process.
   *
   * @return the key
   */
  public PrivateKey key() {
    return key;
  }

  /**
   * The leaf certificate.
   *
   * @return the leaf
   */
  public X509Certificate leaf() {
    return chain.get(0);
  }

  /**
   * The leaf's SPIFFE ID.
   *
   * @return the SPIFFE ID
   */
  public String spiffeId() {
    return spiffeId;
  }

  /**
   * The leaf's serial number, lowercase hex without leading zeros.
   *
   * @return the serial
   */
  public String serial() {
    return leaf().getSerialNumber().toString(16);
  }

  /**
   * The leaf's NotBefore.
   *
   * @return NotBefore
   */
  public Instant notBefore() {
    return leaf().getNotBefore().toInstant();
  }

  /**
   * The leaf's NotAfter.
   *
   * @return NotAfter
   */
  public Instant notAfter() {
    return leaf().getNotAfter().toInstant();
  }

  /**
   * The issue time: {@code min(received, NotBefore + 60 s)} (spec 9.1.2).
   *
   * @return the issue time
   */
  public Instant issueTime() {
    return issueTime;
  }

  /**
   * The lifetime {@code NotAfter - issue time}.
   *
   * @return the lifetime
   */
  public Duration lifetime() {
    return Duration.between(issueTime, notAfter());
  }

  /**
   * Whether the leaf has expired at {@code now}.
   *
   * @param now the wall-clock time
   * @return true when {@code now} is at or after NotAfter
   */
  public boolean expiredAt(Instant now) {
    return !now.isBefore(notAfter());
  }

  @Override
  public String toString() {
    return "IdentitySnapshot{spiffeId="
        + spiffeId
        + ", serial="
        + serial()
        + ", notAfter="
        + notAfter()
        + ", chain="
        + chain.size()
        + " certificates, key=<redacted>}";
  }

  static final class KeyMatch {
    private KeyMatch() {}

    static boolean matches(java.security.PublicKey publicKey, PrivateKey privateKey) {
      if (publicKey instanceof java.security.interfaces.ECPublicKey
          && privateKey instanceof java.security.interfaces.ECPrivateKey) {
        java.security.interfaces.ECPublicKey pub = (java.security.interfaces.ECPublicKey) publicKey;
        java.security.interfaces.ECPrivateKey priv =
            (java.security.interfaces.ECPrivateKey) privateKey;
        if (!pub.getParams().getCurve().equals(priv.getParams().getCurve())) {
          return false;
        }
        return signVerify(publicKey, privateKey, "SHA256withECDSA");
      }
      if (publicKey instanceof java.security.interfaces.RSAPublicKey
          && privateKey instanceof java.security.interfaces.RSAPrivateKey) {
        return ((java.security.interfaces.RSAPublicKey) publicKey)
            .getModulus()
            .equals(((java.security.interfaces.RSAPrivateKey) privateKey).getModulus());
      }
      return false;
    }

    private static boolean signVerify(
        java.security.PublicKey publicKey, PrivateKey privateKey, String algorithm) {
      try {
        byte[] probe = "secinfra key match".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        java.security.Signature signer = java.security.Signature.getInstance(algorithm);
        signer.initSign(privateKey);
        signer.update(probe);
        byte[] signature = signer.sign();
        java.security.Signature verifier = java.security.Signature.getInstance(algorithm);
        verifier.initVerify(publicKey);
        verifier.update(probe);
        boolean ok = verifier.verify(signature);
        Arrays.fill(signature, (byte) 0);
        return ok;
      } catch (java.security.GeneralSecurityException e) {
        return false;
      }
    }
  }
}
