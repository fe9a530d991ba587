package dev.secinfra.internal.transport;

import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.IdentitySource;
import dev.secinfra.identity.SpiffeId;
import dev.secinfra.identity.X509Bundle;
import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * TLS for the transport: a key manager and a trust manager that ask the {@link IdentitySource} on
 * every handshake. The server is verified by chain to the in-memory bundle and by its SPIFFE ID,
 * never by host name or the platform's CA roots.
 */
public final class Tls {
  private Tls() {}

  /** A server that failed verification (spec 8.5): which check failed, and why. */
  public static final class VerificationFailure extends CertificateException {
    /** Serial form version. */
    private static final long serialVersionUID = 1L;

    /** Which check failed. */
    public enum Check {
      /** The chain does not lead to a CA in the bundle. */
      CHAIN,
      /** The leaf's SPIFFE ID is not the server ID. */
      SPIFFE_ID
    }

    /** Which check failed. */
    private final Check check;

    VerificationFailure(Check check, String message, Throwable cause) {
      super(message, cause);
      this.check = check;
    }

    /**
     * Which check failed.
     *
     * @return the check
     */
    public Check check() {
      return check;
    }
  }

  /** One source of randomness for every context: seeding one per connection would cost more. */
  private static final SecureRandom RANDOM = new SecureRandom();

  /**
   * The TLS of one new connection: an SSL context of its own, and the check that its handshake
   * verified the server (spec 8.5.1, 8.5.4).
   *
   * <p>Why a context per connection: the JDK keeps a client session cache per {@link SSLContext}
   * that cannot be turned off, and resumes a cached session (a TLS 1.3 ticket, a TLS 1.2 session
   * id) on the next connection to the same host and port. A resumed handshake carries no server
   * certificate, so the trust manager is never asked: a server that now presents a certificate
   * from a CA the client does not trust would be accepted on the strength of an earlier
   * handshake. A fresh context has an empty cache, so every handshake is a full one and is
   * verified against the bundle held at that moment. {@link #requireVerified} makes that a
   * checked fact rather than an assumption about the JDK: a handshake the trust manager did not
   * verify is refused before a byte of the request is sent.
   */
  public static final class ConnectionTls {
    private final SSLContext context;
    private final BundleTrustManager trust;

    private ConnectionTls(SSLContext context, BundleTrustManager trust) {
      this.context = context;
      this.trust = trust;
    }

    /**
     * The connection's SSL context (used for this one connection only).
     *
     * @return the context
     */
    public SSLContext context() {
      return context;
    }

    /**
     * Fails unless the completed handshake verified the server's certificate.
     *
     * @throws VerificationFailure when no server certificate was verified (a resumed session)
     */
    public void requireVerified() throws VerificationFailure {
      if (!trust.verified()) {
        throw new VerificationFailure(
            VerificationFailure.Check.CHAIN,
            "secinfra: transport: server verification failed: the handshake did not verify the"
                + " server's certificate against the trust bundle (a resumed TLS session?)",
            null);
      }
    }
  }

  /**
   * The TLS for one new connection.
   *
   * @param source where identity and bundle come from
   * @param serverId the SPIFFE ID the server must present
   * @param presentIdentity whether the connection presents the client certificate (mTLS pool)
   * @return the connection's TLS
   * @throws GeneralSecurityException when TLS cannot be set up
   */
  public static ConnectionTls connection(
      IdentitySource source, String serverId, boolean presentIdentity)
      throws GeneralSecurityException {
    SSLContext context = SSLContext.getInstance("TLS");
    BundleTrustManager trust = new BundleTrustManager(source, serverId);
    context.init(
        new KeyManager[] {new SourceKeyManager(source, presentIdentity)},
        new TrustManager[] {trust},
        RANDOM);
    return new ConnectionTls(context, trust);
  }

  /**
   * Verifies a server chain against a bundle and the server ID.
   *
   * @param chain the server's chain, leaf first
   * @param bundle the trust bundle
   * @param serverId the expected SPIFFE ID
   * @throws VerificationFailure when a check fails
   */
  public static void verifyServer(X509Certificate[] chain, X509Bundle bundle, String serverId)
      throws VerificationFailure {
    if (chain == null || chain.length == 0) {
      throw new VerificationFailure(
          VerificationFailure.Check.CHAIN,
          "secinfra: transport: server verification failed: no server certificate",
          null);
    }
    try {
      bundle.verify(Arrays.asList(chain), Instant.now());
    } catch (CertPathValidatorException | java.security.InvalidAlgorithmParameterException e) {
      throw new VerificationFailure(
          VerificationFailure.Check.CHAIN,
          "secinfra: transport: server verification failed: the server's certificate does not"
              + " chain to a CA in the trust bundle ("
              + e.getMessage()
              + "); check that the client's bundle is current",
          e);
    } catch (GeneralSecurityException e) {
      throw new VerificationFailure(
          VerificationFailure.Check.CHAIN,
          "secinfra: transport: server verification failed: " + e.getMessage(),
          e);
    }
    List<String> uris = SpiffeId.uriSans(chain[0]);
    if (uris.size() != 1 || !uris.get(0).equals(serverId)) {
      throw new VerificationFailure(
          VerificationFailure.Check.SPIFFE_ID,
          "secinfra: transport: server verification failed: expected SPIFFE ID "
              + serverId
              + ", the server presented "
              + (uris.isEmpty() ? "none" : String.join(", ", uris)),
          null);
    }
  }

  /** Hands out the source's current snapshot: chain and key of one snapshot per handshake. */
  static final class SourceKeyManager extends X509ExtendedKeyManager {
    private static final int REMEMBERED = 8;
    private final IdentitySource source;
    private final boolean presentIdentity;
    private final Map<String, IdentitySnapshot> handedOut =
        new LinkedHashMap<>(16, 0.75f, false) {
          /** Serial form version. */
          private static final long serialVersionUID = 1L;

          @Override
          protected boolean removeEldestEntry(Map.Entry<String, IdentitySnapshot> eldest) {
            return size() > REMEMBERED;
          }
        };

    SourceKeyManager(IdentitySource source, boolean presentIdentity) {
      this.source = source;
      this.presentIdentity = presentIdentity;
    }

    private String choose() {
      if (!presentIdentity) {
        return null;
      }
      IdentitySnapshot snapshot = source.snapshot();
      if (snapshot == null) {
        return null;
      }
      String alias = "secinfra-" + snapshot.serial() + "-" + System.identityHashCode(snapshot);
      synchronized (handedOut) {
        handedOut.put(alias, snapshot);
      }
      return alias;
    }

    private IdentitySnapshot lookup(String alias) {
      synchronized (handedOut) {
        return alias == null ? null : handedOut.get(alias);
      }
    }

    @Override
    public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
      return choose();
    }

    @Override
    public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
      return choose();
    }

    @Override
    public String[] getClientAliases(String keyType, Principal[] issuers) {
      String alias = choose();
      return alias == null ? null : new String[] {alias};
    }

    @Override
    public X509Certificate[] getCertificateChain(String alias) {
      IdentitySnapshot snapshot = lookup(alias);
      return snapshot == null ? null : snapshot.chainArray();
    }

    @Override
    public PrivateKey getPrivateKey(String alias) {
      IdentitySnapshot snapshot = lookup(alias);
      return snapshot == null ? null : snapshot.key();
    }

    @Override
    public String[] getServerAliases(String keyType, Principal[] issuers) {
      return null;
    }

    @Override
    public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
      return null;
    }
  }

  /**
   * Verifies the server against the source's current bundle and the server ID, for the one
   * connection whose context holds it, and remembers whether it did.
   */
  static final class BundleTrustManager extends X509ExtendedTrustManager {
    private final IdentitySource source;
    private final String serverId;
    private volatile boolean verified;

    BundleTrustManager(IdentitySource source, String serverId) {
      this.source = source;
      this.serverId = serverId;
    }

    boolean verified() {
      return verified;
    }

    private void check(X509Certificate[] chain) throws VerificationFailure {
      verifyServer(chain, source.bundle(), serverId);
      verified = true;
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      check(chain);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      check(chain);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType)
        throws CertificateException {
      check(chain);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      throw new CertificateException("secinfra: transport: this trust manager verifies servers only");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      throw new CertificateException("secinfra: transport: this trust manager verifies servers only");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType)
        throws CertificateException {
      throw new CertificateException("secinfra: transport: this trust manager verifies servers only");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
      return source.bundle().authorities().toArray(new X509Certificate[0]);
    }
  }
}
