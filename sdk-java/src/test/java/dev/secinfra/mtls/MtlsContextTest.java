package dev.secinfra.mtls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.identity.Csr;
import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.X509Bundle;
import dev.secinfra.mtls.PeerRefusedException.Rule;
import dev.secinfra.testing.TestAuthority;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The mTLS context over real TLS on loopback: a JDK {@code HttpsServer} or {@code
 * SSLServerSocket} on one side, {@code HttpClient}, {@code HttpsURLConnection} or {@code
 * SSLSocket} on the other, with certificates from a {@link TestAuthority}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class MtlsContextTest {
  private static final String TD = "secinfra.local";
  private static final String SERVER_ID = "spiffe://secinfra.local/orders";
  private static final String CLIENT_ID = "spiffe://secinfra.local/billing";

  private final TestAuthority ca = TestAuthority.create(TD);
  private final List<PeerRefusedException> refusals = new CopyOnWriteArrayList<>();

  private SSLContext server(SwitchableSource source, Authorizer authorizer) {
    return MtlsContext.builder(source).authorizer(authorizer).onRefusal(refusals::add).build();
  }

  private SwitchableSource source(TestAuthority issuer, String spiffeId) {
    return new SwitchableSource(issuer.snapshot(spiffeId), ca.bundle());
  }

  private static String get(SSLContext client, EchoServer server) throws Exception {
    HttpClient http = HttpClient.newBuilder().sslContext(client).build();
    HttpResponse<String> response =
        http.send(HttpRequest.newBuilder(server.uri()).build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode());
    return response.body();
  }

  private static Throwable rootOf(Throwable error) {
    Throwable cause = error;
    while (cause.getCause() != null && !(cause instanceof PeerRefusedException)) {
      cause = cause.getCause();
    }
    return cause;
  }

  /** The one refusal of a call (HttpClient may try a GET twice: then both are the same). */
  private PeerRefusedException onlyRefusal() {
    assertFalse(refusals.isEmpty(), "the server refused no peer");
    PeerRefusedException first = refusals.get(0);
    for (PeerRefusedException refusal : refusals) {
      assertEquals(first.getMessage().replaceAll("not at \\S+", ""),
          refusal.getMessage().replaceAll("not at \\S+", ""), () -> "refusals: " + refusals);
    }
    return first;
  }

  @Test
  void bothSidesVerifyEachOthersIdOverHttpClientAndHttpsServer() throws Exception {
    SwitchableSource serverSource = source(ca, SERVER_ID);
    try (EchoServer echo = new EchoServer(server(serverSource, Authorizers.id(CLIENT_ID)))) {
      SwitchableSource clientSource = source(ca, CLIENT_ID);
      HttpClient http =
          HttpClient.newBuilder()
              .sslContext(MtlsContext.create(clientSource, Authorizers.id(SERVER_ID)))
              .build();
      HttpResponse<String> response =
          http.send(HttpRequest.newBuilder(echo.uri()).build(), HttpResponse.BodyHandlers.ofString());
      assertEquals(CLIENT_ID + " " + clientSource.snapshot().serial(), response.body());
      assertEquals(SERVER_ID, PeerId.of(response));
      assertTrue(refusals.isEmpty());
    }
  }

  @Test
  void httpsUrlConnectionCallsWithTheContextAndNoHostNameCheck() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.memberOf(TD)))) {
      SSLContext client = MtlsContext.create(source(ca, CLIENT_ID), Authorizers.id(SERVER_ID));
      HttpsURLConnection connection = (HttpsURLConnection) echo.uri().toURL().openConnection();
      connection.setSSLSocketFactory(client.getSocketFactory());
      try (InputStream in = connection.getInputStream()) {
        assertEquals(HttpURLConnection.HTTP_OK, connection.getResponseCode());
        assertTrue(new String(in.readAllBytes(), StandardCharsets.UTF_8).startsWith(CLIENT_ID + " "));
        assertEquals(SERVER_ID, dev.secinfra.identity.SpiffeId.of(
            (X509Certificate) connection.getServerCertificates()[0]));
      } finally {
        connection.disconnect();
      }
    }
  }

  @Test
  void sslServerSocketAndSocketAgreeAndReadEachOthersId() throws Exception {
    SSLContext serverContext = server(source(ca, SERVER_ID), Authorizers.id(CLIENT_ID));
    SSLContext clientContext = MtlsContext.create(source(ca, CLIENT_ID), Authorizers.id(SERVER_ID));
    try (SSLServerSocket listener =
        (SSLServerSocket)
            serverContext.getServerSocketFactory()
                .createServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
      assertTrue(listener.getNeedClientAuth(), "a server socket requires a client certificate");
      Thread accept =
          new Thread(
              () -> {
                try (SSLSocket peer = (SSLSocket) listener.accept()) {
                  OutputStream out = peer.getOutputStream();
                  out.write(PeerId.of(peer.getSession()).getBytes(StandardCharsets.UTF_8));
                  out.write('\n');
                  out.flush();
                } catch (IOException e) {
                  // the client side asserts
                }
              });
      accept.start();
      try (SSLSocket socket =
          (SSLSocket)
              clientContext.getSocketFactory().createSocket(listener.getInetAddress(), listener.getLocalPort())) {
        socket.startHandshake();
        assertEquals(SERVER_ID, PeerId.of(socket.getSession()));
        String line = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(CLIENT_ID + "\n", line);
      }
      accept.join(10_000);
    }
  }

  @Test
  void serverRefusesAnIdTheAuthorizerDoesNotAccept() throws Exception {
    Authorizer onlyReports = Authorizers.id("spiffe://secinfra.local/reports");
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), onlyReports))) {
      SSLContext client = MtlsContext.create(source(ca, CLIENT_ID), Authorizers.id(SERVER_ID));
      assertThrows(IOException.class, () -> get(client, echo));
      PeerRefusedException refusal = onlyRefusal();
      assertEquals(Rule.UNAUTHORIZED, refusal.rule());
      assertEquals(CLIENT_ID, refusal.peerId().orElseThrow());
      assertTrue(refusal.getMessage().contains("spiffe://secinfra.local/reports"), refusal.getMessage());
    }
  }

  @Test
  void clientRefusesAServerTheAuthorizerDoesNotAccept() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      SSLContext client =
          MtlsContext.builder(source(ca, CLIENT_ID))
              .authorizer(Authorizers.pathPrefix(TD, "/payments"))
              .build();
      IOException error = assertThrows(IOException.class, () -> get(client, echo));
      PeerRefusedException refusal = (PeerRefusedException) rootOf(error);
      assertEquals(Rule.UNAUTHORIZED, refusal.rule());
      assertEquals(SERVER_ID, refusal.peerId().orElseThrow());
    }
  }

  @Test
  void peerOfAForeignTrustDomainIsRefused() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      TestAuthority foreign = TestAuthority.create("other.org");
      SSLContext client =
          MtlsContext.create(
              new SwitchableSource(foreign.snapshot("spiffe://other.org/billing"), ca.bundle()),
              Authorizers.id(SERVER_ID));
      assertThrows(IOException.class, () -> get(client, echo));
      assertEquals(Rule.TRUST_DOMAIN, onlyRefusal().rule());
    }
  }

  @Test
  void foreignIdSignedByTheTrustedCaIsRefusedByItsTrustDomain() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      SSLContext client =
          MtlsContext.create(source(ca, "spiffe://other.org/billing"), Authorizers.id(SERVER_ID));
      assertThrows(IOException.class, () -> get(client, echo));
      PeerRefusedException refusal = onlyRefusal();
      assertEquals(Rule.TRUST_DOMAIN, refusal.rule());
      assertEquals("spiffe://other.org/billing", refusal.peerId().orElseThrow());
    }
  }

  @Test
  void idOfTheTrustDomainFromAnotherCaIsRefusedByItsChain() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      TestAuthority impostor = TestAuthority.create(TD);
      SSLContext client =
          MtlsContext.create(
              new SwitchableSource(impostor.snapshot(CLIENT_ID), ca.bundle()), Authorizers.id(SERVER_ID));
      assertThrows(IOException.class, () -> get(client, echo));
      assertEquals(Rule.CHAIN, onlyRefusal().rule());
    }
  }

  @Test
  void expiredPeerIsRefused() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      KeyPair key = Csr.newKeyPair();
      Instant now = Instant.now();
      List<X509Certificate> expired =
          ca.issue(CLIENT_ID, key.getPublic(), now.minusSeconds(600), now.minusSeconds(60));
      SSLContext client =
          MtlsContext.create(
              new SwitchableSource(new IdentitySnapshot(expired, key.getPrivate(), now), ca.bundle()),
              Authorizers.id(SERVER_ID));
      assertThrows(IOException.class, () -> get(client, echo));
      PeerRefusedException refusal = onlyRefusal();
      assertEquals(Rule.VALIDITY, refusal.rule());
      assertEquals(CLIENT_ID, refusal.peerId().orElseThrow());
    }
  }

  @Test
  void leafThatIsACaIsRefused() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      KeyPair key = Csr.newKeyPair();
      List<X509Certificate> caLeaf = ca.issueNonSvid(key.getPublic(), true, CLIENT_ID);
      SSLContext client =
          MtlsContext.create(
              new SwitchableSource(
                  new IdentitySnapshot(caLeaf, key.getPrivate(), Instant.now()), ca.bundle()),
              Authorizers.id(SERVER_ID));
      assertThrows(IOException.class, () -> get(client, echo));
      assertEquals(Rule.LEAF_IS_CA, onlyRefusal().rule());
    }
  }

  @Test
  void leafWithTwoUriSansIsRefused() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      KeyPair key = Csr.newKeyPair();
      List<X509Certificate> twoSans =
          ca.issueNonSvid(key.getPublic(), false, CLIENT_ID, "spiffe://secinfra.local/admin");
      // Not an SVID, so no IdentitySnapshot holds it: a plain JDK key manager presents it.
      KeyStore store = KeyStore.getInstance("PKCS12");
      store.load(null, null);
      char[] password = "test".toCharArray();
      store.setKeyEntry("leaf", key.getPrivate(), password, twoSans.toArray(new X509Certificate[0]));
      KeyManagerFactory keys = KeyManagerFactory.getInstance("PKIX");
      keys.init(store, password);
      SSLContext client = SSLContext.getInstance("TLS");
      client.init(
          keys.getKeyManagers(),
          new TrustManager[] {MtlsContext.builder(source(ca, CLIENT_ID)).authorizer(Authorizers.id(SERVER_ID)).trustManager()},
          new SecureRandom());
      assertThrows(IOException.class, () -> get(client, echo));
      PeerRefusedException refusal = onlyRefusal();
      assertEquals(Rule.SPIFFE_ID, refusal.rule());
      assertTrue(refusal.getMessage().contains("has 2"), refusal.getMessage());
    }
  }

  @Test
  void clientWithoutACertificateIsRefusedByTheServer() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      SSLContext anonymous = SSLContext.getInstance("TLS");
      anonymous.init(
          null,
          new TrustManager[] {MtlsContext.builder(source(ca, CLIENT_ID)).authorizer(Authorizers.id(SERVER_ID)).trustManager()},
          new SecureRandom());
      assertThrows(IOException.class, () -> get(anonymous, echo));
    }
  }

  @Test
  void renewalIsPresentedOnTheNextHandshakeWhileTheOldConnectionGoesOn() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.id(CLIENT_ID)))) {
      SwitchableSource clientSource = source(ca, CLIENT_ID);
      SSLContext client = MtlsContext.create(clientSource, Authorizers.id(SERVER_ID));
      String first = clientSource.snapshot().serial();
      HttpClient kept = HttpClient.newBuilder().sslContext(client).build();
      HttpRequest request = HttpRequest.newBuilder(echo.uri()).build();
      assertEquals(CLIENT_ID + " " + first, kept.send(request, HttpResponse.BodyHandlers.ofString()).body());

      clientSource.renew(ca.snapshot(CLIENT_ID));
      String renewed = clientSource.snapshot().serial();
      assertNotEquals(first, renewed);
      assertEquals(
          CLIENT_ID + " " + first,
          kept.send(request, HttpResponse.BodyHandlers.ofString()).body(),
          "the kept-alive connection goes on with the certificate of its handshake");
      assertEquals(CLIENT_ID + " " + renewed, get(client, echo), "a new connection presents the renewal");
      assertEquals(CLIENT_ID + " " + renewed, get(client, echo), "and is not resumed from an old session");
    }
  }

  @Test
  void renewalUnderTls12IsPresentedOnTheNextHandshakeToo() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.id(CLIENT_ID)))) {
      SwitchableSource clientSource = source(ca, CLIENT_ID);
      SSLContext client = MtlsContext.create(clientSource, Authorizers.id(SERVER_ID));
      javax.net.ssl.SSLParameters tls12 = client.getDefaultSSLParameters();
      tls12.setProtocols(new String[] {"TLSv1.2"});
      HttpRequest request = HttpRequest.newBuilder(echo.uri()).build();
      HttpResponse<String> first =
          HttpClient.newBuilder().sslContext(client).sslParameters(tls12).build()
              .send(request, HttpResponse.BodyHandlers.ofString());
      assertEquals("TLSv1.2", first.sslSession().orElseThrow().getProtocol());
      assertEquals(CLIENT_ID + " " + clientSource.snapshot().serial(), first.body());
      clientSource.renew(ca.snapshot(CLIENT_ID));
      HttpResponse<String> second =
          HttpClient.newBuilder().sslContext(client).sslParameters(tls12).build()
              .send(request, HttpResponse.BodyHandlers.ofString());
      assertEquals(CLIENT_ID + " " + clientSource.snapshot().serial(), second.body());
    }
  }

  @Test
  void handshakesDuringRenewalsNeverPairAChainWithAnotherKey() throws Exception {
    SwitchableSource serverSource = source(ca, SERVER_ID);
    SwitchableSource clientSource = source(ca, CLIENT_ID);
    List<IdentitySnapshot> serverIds = List.of(ca.snapshot(SERVER_ID), ca.snapshot(SERVER_ID));
    List<IdentitySnapshot> clientIds = List.of(ca.snapshot(CLIENT_ID), ca.snapshot(CLIENT_ID));
    SSLContext serverContext = server(serverSource, Authorizers.id(CLIENT_ID));
    SSLContext clientContext = MtlsContext.create(clientSource, Authorizers.id(SERVER_ID));
    try (SSLServerSocket listener =
        (SSLServerSocket)
            serverContext.getServerSocketFactory()
                .createServerSocket(0, 16, InetAddress.getLoopbackAddress())) {
      listener.setSoTimeout(200); // the accept loop sees the stop flag
      java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(4);
      java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
      pool.execute(
          () -> {
            while (!stop.get()) {
              try (SSLSocket peer = (SSLSocket) listener.accept()) {
                peer.getOutputStream().write(1);
                peer.getOutputStream().flush();
              } catch (IOException e) {
                // an accept timeout, or a failed handshake (it shows on the client side)
              }
            }
          });
      pool.execute(
          () -> {
            for (int i = 0; !stop.get(); i++) {
              serverSource.renew(serverIds.get(i % 2));
              clientSource.renew(clientIds.get(i % 2));
            }
          });
      List<java.util.concurrent.Future<Integer>> clients = new java.util.ArrayList<>();
      for (int c = 0; c < 2; c++) {
        clients.add(
            pool.submit(
                () -> {
                  int done = 0;
                  long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
                  while (System.nanoTime() < until) {
                    try (SSLSocket socket =
                        (SSLSocket)
                            clientContext.getSocketFactory()
                                .createSocket(listener.getInetAddress(), listener.getLocalPort())) {
                      assertEquals(1, socket.getInputStream().read());
                      done++;
                    }
                  }
                  return done;
                }));
      }
      try {
        for (java.util.concurrent.Future<Integer> handshakes : clients) {
          assertTrue(handshakes.get(30, TimeUnit.SECONDS) > 0);
        }
      } finally {
        stop.set(true);
        pool.shutdownNow();
        assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS));
      }
      assertTrue(refusals.isEmpty(), () -> "refusals: " + refusals);
    }
  }

  @Test
  void serverRenewalIsPresentedToTheNextClient() throws Exception {
    SwitchableSource serverSource = source(ca, SERVER_ID);
    try (EchoServer echo = new EchoServer(server(serverSource, Authorizers.id(CLIENT_ID)))) {
      SSLContext client = MtlsContext.create(source(ca, CLIENT_ID), Authorizers.id(SERVER_ID));
      HttpRequest request = HttpRequest.newBuilder(echo.uri()).build();
      HttpResponse<String> before =
          HttpClient.newBuilder().sslContext(client).build().send(request, HttpResponse.BodyHandlers.ofString());
      serverSource.renew(ca.snapshot(SERVER_ID));
      HttpResponse<String> after =
          HttpClient.newBuilder().sslContext(client).build().send(request, HttpResponse.BodyHandlers.ofString());
      X509Certificate beforeLeaf = (X509Certificate) before.sslSession().orElseThrow().getPeerCertificates()[0];
      X509Certificate afterLeaf = (X509Certificate) after.sslSession().orElseThrow().getPeerCertificates()[0];
      assertEquals(serverSource.snapshot().leaf(), afterLeaf);
      assertNotEquals(beforeLeaf, afterLeaf);
    }
  }

  @Test
  void caRotationIsAcceptedAndRetirementRefusedWithoutARestart() throws Exception {
    TestAuthority next = TestAuthority.create(TD);
    SwitchableSource serverSource = source(ca, SERVER_ID);
    try (EchoServer echo = new EchoServer(server(serverSource, Authorizers.id(CLIENT_ID)))) {
      X509Bundle both = new X509Bundle(List.of(ca.certificate(), next.certificate()), 2, null);
      SSLContext newCaClient =
          MtlsContext.create(new SwitchableSource(next.snapshot(CLIENT_ID), both), Authorizers.id(SERVER_ID));
      SSLContext oldCaClient =
          MtlsContext.create(new SwitchableSource(ca.snapshot(CLIENT_ID), both), Authorizers.id(SERVER_ID));

      assertThrows(IOException.class, () -> get(newCaClient, echo), "the new CA is not trusted yet");
      assertEquals(Rule.CHAIN, onlyRefusal().rule());
      refusals.clear();

      serverSource.rotateBundle(both); // prepare: the bundle holds both CAs
      assertTrue(get(newCaClient, echo).startsWith(CLIENT_ID + " "));
      assertTrue(get(oldCaClient, echo).startsWith(CLIENT_ID + " "));

      serverSource.renew(next.snapshot(SERVER_ID)); // activate: the server holds a new-CA SVID
      serverSource.rotateBundle(new X509Bundle(List.of(next.certificate()), 3, null)); // retire
      assertTrue(get(newCaClient, echo).startsWith(CLIENT_ID + " "));
      assertThrows(IOException.class, () -> get(oldCaClient, echo), "an old-CA peer is refused");
      assertEquals(Rule.CHAIN, onlyRefusal().rule());
    }
  }

  @Test
  void buildingWithoutAnAuthorizerIsAnError() {
    MtlsContext.Builder builder = MtlsContext.builder(source(ca, SERVER_ID));
    IllegalStateException error = assertThrows(IllegalStateException.class, builder::build);
    assertTrue(error.getMessage().contains("Authorizers.any()"), error.getMessage());
    assertThrows(IllegalStateException.class, builder::trustManager);
    assertThrows(NullPointerException.class, () -> MtlsContext.create(source(ca, SERVER_ID), null));
  }

  @Test
  void contextCannotBeReinitialisedAndItsDefaultsRequireClientCertificates() throws Exception {
    SSLContext context = MtlsContext.create(source(ca, SERVER_ID), Authorizers.any());
    assertTrue(context.getDefaultSSLParameters().getNeedClientAuth());
    assertTrue(context.createSSLEngine().getNeedClientAuth());
    assertFalse(List.of(context.createSSLEngine().getEnabledProtocols()).contains("TLSv1.1"));
    assertThrows(Exception.class, () -> context.init(null, null, null));
  }

  @Test
  void peerIdOfASessionWithoutTlsFailsClosed() {
    assertThrows(javax.net.ssl.SSLPeerUnverifiedException.class, () -> PeerId.of((javax.net.ssl.SSLSession) null));
  }

  @Test
  void handshakeFailureCarriesTheRefusalAsItsCause() throws Exception {
    try (EchoServer echo = new EchoServer(server(source(ca, SERVER_ID), Authorizers.any()))) {
      SSLContext client =
          MtlsContext.create(source(ca, CLIENT_ID), Authorizers.id("spiffe://secinfra.local/elsewhere"));
      IOException error = assertThrows(IOException.class, () -> get(client, echo));
      assertTrue(rootOf(error) instanceof PeerRefusedException, () -> "cause chain: " + error);
      assertTrue(
          error instanceof SSLHandshakeException || error.getCause() instanceof SSLHandshakeException,
          () -> "a handshake failure: " + error);
    }
  }

  @Test
  void refusalsNeverShowKeyMaterial() throws Exception {
    IdentitySnapshot snapshot = ca.snapshot(CLIENT_ID);
    SvidTrustManager trust =
        MtlsContext.builder(source(ca, SERVER_ID)).authorizer(Authorizers.id(SERVER_ID)).trustManager();
    PeerRefusedException refusal =
        assertThrows(PeerRefusedException.class, () -> trust.verify(snapshot.chainArray()));
    String encodedKey = java.util.Base64.getEncoder().encodeToString(snapshot.key().getEncoded());
    assertFalse(refusal.getMessage().contains(encodedKey.substring(0, 24)));
    assertFalse(refusal.getMessage().contains("PRIVATE"));
  }
}
