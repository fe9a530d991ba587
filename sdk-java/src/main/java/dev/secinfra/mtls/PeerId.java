package dev.secinfra.mtls;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpsExchange;
import dev.secinfra.identity.SpiffeId;
import java.net.http.HttpResponse;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;

/**
 * The verified SPIFFE ID of the peer of a connection made with an {@link MtlsContext}, read
 * inside a request handler or after a call. The context's trust manager verified it during the
 * handshake; these methods only read it, and fail closed when there is none.
 *
 * <pre>{@code
 * server.createContext("/", exchange -> {
 *   String caller = PeerId.of(exchange);   // spiffe://secinfra.local/billing
 *   ...
 * });
 * }</pre>
 */
public final class PeerId {
  private PeerId() {}

  /**
   * The peer's SPIFFE ID from a TLS session ({@code SSLSocket.getSession()}, {@code
   * SSLEngine.getSession()}).
   *
   * @param session the session of an mTLS connection
   * @return the peer's SPIFFE ID
   * @throws SSLPeerUnverifiedException when the peer presented no certificate, or its leaf is not
   *     an X509-SVID
   */
  public static String of(SSLSession session) throws SSLPeerUnverifiedException {
    if (session == null) {
      throw new SSLPeerUnverifiedException("secinfra: mtls: not a TLS connection");
    }
    Certificate[] chain = session.getPeerCertificates();
    if (chain.length == 0 || !(chain[0] instanceof X509Certificate)) {
      throw new SSLPeerUnverifiedException("secinfra: mtls: the peer presented no X.509 certificate");
    }
    try {
      return SpiffeId.of((X509Certificate) chain[0]);
    } catch (IllegalArgumentException e) {
      SSLPeerUnverifiedException unverified = new SSLPeerUnverifiedException(e.getMessage());
      unverified.initCause(e);
      throw unverified;
    }
  }

  /**
   * The calling peer's SPIFFE ID inside a {@code com.sun.net.httpserver} handler.
   *
   * @param exchange the exchange of an {@code HttpsServer} configured with an {@link
   *     MtlsContext}
   * @return the peer's SPIFFE ID
   * @throws SSLPeerUnverifiedException when the exchange is not over TLS or the peer is not known
   */
  public static String of(HttpExchange exchange) throws SSLPeerUnverifiedException {
    if (!(exchange instanceof HttpsExchange)) {
      throw new SSLPeerUnverifiedException("secinfra: mtls: the exchange is not over TLS");
    }
    return of(((HttpsExchange) exchange).getSSLSession());
  }

  /**
   * The called server's SPIFFE ID from a {@code java.net.http} response.
   *
   * @param response a response of an {@code HttpClient} built with an {@link MtlsContext}
   * @return the server's SPIFFE ID
   * @throws SSLPeerUnverifiedException when the response did not come over TLS
   */
  public static String of(HttpResponse<?> response) throws SSLPeerUnverifiedException {
    SSLSession session =
        response
            .sslSession()
            .orElseThrow(
                () -> new SSLPeerUnverifiedException("secinfra: mtls: the response is not over TLS"));
    return of(session);
  }
}
