package dev.secinfra.mtls;

import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.IdentitySource;
import dev.secinfra.identity.SpiffeId;
import dev.secinfra.identity.X509Bundle;
import dev.secinfra.mtls.PeerRefusedException.Rule;
import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Verifies a peer, client or server alike, on every handshake: against the {@link
 * IdentitySource}'s current trust bundle (so a CA rotation needs no restart), the X509-SVID rules
 * and an {@link Authorizer}. No host name is checked: the peer is known by its SPIFFE ID.
 *
 * <p>Every verified handshake session is invalidated, so it is never resumed: each new
 * connection is a full handshake that presents the current certificate and is checked against
 * the current bundle, and an expired or retired peer certificate cannot ride on a resumed
 * session. Kept-alive connections are unaffected.
 */
public final class SvidTrustManager extends X509ExtendedTrustManager {
  private static final System.Logger LOG = System.getLogger("dev.secinfra.mtls");

  private final IdentitySource source;
  private final Authorizer authorizer;
  private final Consumer<PeerRefusedException> onRefusal;

  /**
   * A trust manager.
   *
   * @param source where the current trust bundle comes from (and the trust domain, when the
   *     bundle's CAs name none)
   * @param authorizer who may connect
   * @param onRefusal told of every refusal, on the handshake thread; it must not throw
   */
  public SvidTrustManager(
      IdentitySource source, Authorizer authorizer, Consumer<PeerRefusedException> onRefusal) {
    this.source = Objects.requireNonNull(source, "source");
    this.authorizer = Objects.requireNonNull(authorizer, "authorizer");
    this.onRefusal = Objects.requireNonNull(onRefusal, "onRefusal");
  }

  /**
   * Verifies a peer's chain now, as a handshake does.
   *
   * @param chain the peer's chain, leaf first
   * @return the peer's SPIFFE ID
   * @throws PeerRefusedException when the peer is refused
   */
  public String verify(X509Certificate[] chain) throws PeerRefusedException {
    X509Bundle bundle = source.bundle();
    Optional<String> domain = bundle.trustDomain();
    if (domain.isEmpty()) {
      IdentitySnapshot own = source.snapshot();
      domain = own == null ? Optional.empty() : Optional.of(SpiffeId.trustDomain(own.spiffeId()));
    }
    try {
      if (domain.isEmpty()) {
        throw new PeerRefusedException(
            Rule.TRUST_DOMAIN,
            null,
            "the trust bundle's CAs name no trust domain and this side has no identity",
            null);
      }
      return PeerVerifier.verify(chain, bundle, domain.get(), authorizer, Instant.now());
    } catch (PeerRefusedException e) {
      LOG.log(System.Logger.Level.DEBUG, e.getMessage());
      onRefusal.accept(e);
      throw e;
    }
  }

  private void check(X509Certificate[] chain, SSLSession handshake) throws CertificateException {
    verify(chain);
    if (handshake != null) {
      handshake.invalidate();
    }
  }

  private static SSLSession handshakeSession(Socket socket) {
    return socket instanceof SSLSocket ? ((SSLSocket) socket).getHandshakeSession() : null;
  }

  private static SSLSession handshakeSession(SSLEngine engine) {
    return engine == null ? null : engine.getHandshakeSession();
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
      throws CertificateException {
    check(chain, handshakeSession(socket));
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
      throws CertificateException {
    check(chain, handshakeSession(engine));
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType)
      throws CertificateException {
    check(chain, null);
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
      throws CertificateException {
    check(chain, handshakeSession(socket));
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
      throws CertificateException {
    check(chain, handshakeSession(engine));
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType)
      throws CertificateException {
    check(chain, null);
  }

  /**
   * The current bundle's CAs (the certificate authorities a server names when it asks for a
   * client certificate).
   *
   * @return the CAs
   */
  @Override
  public X509Certificate[] getAcceptedIssuers() {
    return source.bundle().authorities().toArray(new X509Certificate[0]);
  }

  @Override
  public String toString() {
    return "SvidTrustManager{authorizer=" + authorizer + "}";
  }
}
