package dev.secinfra.mtls;

import dev.secinfra.identity.IdentitySource;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Objects;
import java.util.function.Consumer;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;

/**
 * Builds an {@link SSLContext} for the application's own service-to-service mTLS, server and
 * client alike, from an {@link IdentitySource} (a client's rotating {@code client.source()} or a
 * {@link dev.secinfra.identity.StaticIdentitySource}) and an {@link Authorizer}: the model is
 * java-spiffe's {@code SpiffeSslContextFactory}.
 *
 * <ul>
 *   <li>Every handshake presents the source's current SVID ({@link SvidKeyManager}): a renewal
 *       takes effect on the next handshake, without a restart, and a certificate is never paired
 *       with another snapshot's key.
 *   <li>Every handshake verifies the peer against the source's current bundle, the X509-SVID
 *       rules and the authorizer ({@link SvidTrustManager}); no host name is checked.
 *   <li>A server made from the context always requires a client certificate, and only TLS 1.3
 *       and 1.2 are enabled: engines, sockets, server sockets and the default {@code
 *       SSLParameters} come so configured.
 * </ul>
 *
 * <pre>{@code
 * SSLContext context =
 *     MtlsContext.builder(client.source())
 *         .authorizer(Authorizers.id("spiffe://secinfra.local/billing"))
 *         .build();
 * HttpClient http = HttpClient.newBuilder().sslContext(context).build();
 * }</pre>
 *
 * <p>There is no default authorizer: {@link Builder#build()} without one throws.
 */
public final class MtlsContext {
  private MtlsContext() {}

  /**
   * A builder for a context that presents and trusts what {@code source} holds.
   *
   * @param source the identity and the trust bundle
   * @return the builder
   */
  public static Builder builder(IdentitySource source) {
    return new Builder(Objects.requireNonNull(source, "source"));
  }

  /**
   * A context that presents {@code source}'s identity and accepts the peers {@code authorizer}
   * accepts; the same as {@code builder(source).authorizer(authorizer).build()}.
   *
   * @param source the identity and the trust bundle
   * @param authorizer who may connect
   * @return the context
   */
  public static SSLContext create(IdentitySource source, Authorizer authorizer) {
    return builder(source).authorizer(authorizer).build();
  }

  /** Options of a context; {@link #authorizer(Authorizer)} is required. */
  public static final class Builder {
    private final IdentitySource source;
    private Authorizer authorizer;
    private Consumer<PeerRefusedException> onRefusal = refusal -> {};

    private Builder(IdentitySource source) {
      this.source = source;
    }

    /**
     * Who may connect (required; {@link Authorizers#any()} to accept every peer of the bundle).
     *
     * @param value the authorizer
     * @return this builder
     */
    public Builder authorizer(Authorizer value) {
      this.authorizer = Objects.requireNonNull(value, "authorizer");
      return this;
    }

    /**
     * Told of every refused peer, on the handshake thread, before the handshake fails: for
     * metrics or an audit line (the exception says which rule failed and the peer's ID, never
     * key material). It must not throw or block. Refusals are also logged at {@code DEBUG} to
     * the {@code dev.secinfra.mtls} logger.
     *
     * @param listener the listener
     * @return this builder
     */
    public Builder onRefusal(Consumer<PeerRefusedException> listener) {
      this.onRefusal = Objects.requireNonNull(listener, "listener");
      return this;
    }

    /**
     * The key manager of the context, for a framework that takes key and trust managers rather
     * than an {@code SSLContext}.
     *
     * @return a key manager over the source
     */
    public SvidKeyManager keyManager() {
      return new SvidKeyManager(source);
    }

    /**
     * The trust manager of the context, for a framework that takes key and trust managers
     * rather than an {@code SSLContext}. Such a framework must itself require client
     * certificates on its server side.
     *
     * @return a trust manager over the source and the authorizer
     * @throws IllegalStateException when no authorizer was set
     */
    public SvidTrustManager trustManager() {
      return new SvidTrustManager(source, requireAuthorizer(), onRefusal);
    }

    private Authorizer requireAuthorizer() {
      if (authorizer == null) {
        throw new IllegalStateException(
            "secinfra: mtls: no authorizer: say who may connect, for example"
                + " Authorizers.id(...), or Authorizers.any() to accept every peer of the bundle");
      }
      return authorizer;
    }

    /**
     * Builds the context. It is ready to use and cannot be re-initialised.
     *
     * @return the context
     * @throws IllegalStateException when no authorizer was set
     */
    public SSLContext build() {
      TrustManager trust = trustManager();
      try {
        SSLContext jdk = SSLContext.getInstance("TLS");
        jdk.init(new KeyManager[] {keyManager()}, new TrustManager[] {trust}, new SecureRandom());
        return new Context(new RequireClientAuth(jdk), jdk);
      } catch (GeneralSecurityException e) {
        throw new IllegalStateException("secinfra: mtls: the JDK cannot make a TLS context", e);
      }
    }
  }

  /** The public face of {@link RequireClientAuth}: an SSLContext over the JDK's own. */
  private static final class Context extends SSLContext {
    Context(RequireClientAuth spi, SSLContext jdk) {
      super(spi, jdk.getProvider(), jdk.getProtocol());
    }
  }
}
