package dev.secinfra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.secinfra.errors.TransportException;
import dev.secinfra.gen.GetCallerIdentityRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.MetaCapture;
import dev.secinfra.testing.FakeTimeSource;
import dev.secinfra.mtls.SvidKeyManager;
import dev.secinfra.testing.ReferenceServer;
import dev.secinfra.testing.TestAuthority;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import java.net.InetSocketAddress;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Several endpoints (spec 12) against a real reference server over real TLS on loopback: the two
 * "replicas" are TCP relays to it ({@link Replica}), so the test can stop one in the middle of a
 * call or make it refuse connections, while answers, certificates and the request log are the
 * server's. The client's clock is a {@link FakeTimeSource}, so cooldowns end when the test says.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FailoverIntegrationTest {
  private static final String WORKLOAD = "spiffe://secinfra.local/java/failover";
  private static ReferenceServer server;
  private static SecinfraClient admin;

  private Replica a;
  private Replica b;
  private FakeTimeSource clock;
  private SecinfraClient client;

  @BeforeAll
  static void start() throws Exception {
    server = ReferenceServer.start();
    admin = server.admin();
    server.grant(WORKLOAD, "writer", "folder:failover/");
  }

  @AfterAll
  static void stop() throws Exception {
    if (admin != null) {
      admin.close();
    }
    if (server != null) {
      server.close();
    }
  }

  @BeforeEach
  void replicas() throws Exception {
    int port = URI.create(server.url()).getPort();
    a = new Replica(port);
    b = new Replica(port);
    clock = new FakeTimeSource(Instant.now());
  }

  @AfterEach
  void close() throws Exception {
    if (client != null) {
      client.close();
    }
    a.close();
    b.close();
  }

  private SecinfraClient.Builder listed() {
    return SecinfraClient.builder(List.of(a.url(), b.url()))
        .endpointOrder(EndpointOrder.LISTED)
        .timeSource(clock)
        .bundleFile(server.bundleFile())
        .joinToken(server.joinToken(WORKLOAD));
  }

  private static CallOptions capture(MetaCapture meta) {
    return CallOptions.builder().capture(meta).build();
  }

  @Test
  void a503MovesTheCallToTheNextEndpointWithTheSameIdempotencyKeyAndTheClientStaysAway()
      throws Exception {
    client = listed().build();
    server.script("PutSecret", "[{\"status\": 503}]");
    int before = server.requests("PutSecret").size();
    MetaCapture meta = new MetaCapture();
    client
        .secrets()
        .putSecret(
            PutSecretRequest.builder()
                .name("failover/moved")
                .value("v".getBytes(StandardCharsets.UTF_8))
                .build(),
            capture(meta));
    assertEquals(2, meta.last().attempts());
    assertEquals(b.url(), meta.last().endpoint(), "the answering attempt went to b");
    List<JsonNode> log = server.requests("PutSecret");
    List<JsonNode> mine = log.subList(before, log.size());
    assertEquals(2, mine.size(), "the 503 from a, then the 200 from b");
    assertEquals(
        mine.get(0).path("headers").path("Idempotency-Key").asText(),
        mine.get(1).path("headers").path("Idempotency-Key").asText(),
        "one key on both endpoints");
    assertEquals("2", mine.get(1).path("headers").path("Secinfra-Attempt").asText());

    List<EndpointState> states = client.endpoints();
    assertEquals(a.url(), states.get(0).url());
    assertTrue(states.get(0).coolingDown(), "a is cooling down after its 503");
    assertEquals(1, states.get(0).failures());
    assertFalse(states.get(1).coolingDown());

    client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build(), capture(meta));
    assertEquals(b.url(), meta.last().endpoint(), "a still cools down: the next call goes to b");
    assertEquals(1, meta.last().attempts());

    clock.advance(Duration.ofSeconds(1));
    client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build(), capture(meta));
    assertEquals(a.url(), meta.last().endpoint(), "a cooled down: calls go home again");
    assertEquals(0, client.endpoints().get(0).failures(), "a success resets a's count");
  }

  @Test
  void aReplicaStoppedInTheMiddleOfACallLeavesTheCallToTheOther() throws Exception {
    client = listed().build();
    server.script(
        "GetCallerIdentity", "[{\"status\": 200, \"delay_ms\": 5000, \"body\": {}}]");
    int before = server.requests("GetCallerIdentity").size();
    MetaCapture meta = new MetaCapture();
    CompletableFuture<?> call =
        client
            .identity()
            .getCallerIdentityAsync(GetCallerIdentityRequest.builder().build(), capture(meta));
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (server.requests("GetCallerIdentity").size() == before && System.nanoTime() < until) {
      Thread.sleep(20);
    }
    assertEquals(before + 1, server.requests("GetCallerIdentity").size(), "the call reached a");
    a.close();
    call.get(30, TimeUnit.SECONDS);
    assertEquals(2, meta.last().attempts());
    assertEquals(b.url(), meta.last().endpoint());
    assertTrue(client.endpoints().get(0).coolingDown());
  }

  @Test
  void enrolmentUsesTheEndpointList() throws Exception {
    a.refusing(true);
    client = listed().build();
    assertTrue(a.connections() > 0, "enrolment tried a first");
    assertEquals(WORKLOAD, client.source().snapshot().spiffeId(), "and enrolled through b");
    assertEquals(1, client.endpoints().get(0).failures());
  }

  @Test
  void whenEveryEndpointFailsTheErrorNamesTheLastOne() throws Exception {
    client = listed().build();
    a.refusing(true);
    b.refusing(true);
    a.dropConnections();
    b.dropConnections();
    TransportException error =
        assertThrows(
            TransportException.class,
            () ->
                client
                    .identity()
                    .getCallerIdentity(
                        GetCallerIdentityRequest.builder().build(),
                        CallOptions.builder().maxAttempts(3).build()));
    assertEquals(3, error.attempts());
    // a, then b, then (both cooling, failed at the same fake instant) the first in order: a.
    assertEquals(a.url(), error.endpoint());
    assertTrue(error.getMessage().contains("[endpoint " + a.url() + "]"), error.getMessage());
    assertTrue(client.endpoints().stream().allMatch(EndpointState::coolingDown));
  }

  @Test
  void oneUrlBehavesAsItAlwaysDid() throws Exception {
    client =
        SecinfraClient.builder(server.url())
            .timeSource(clock)
            .bundleFile(server.bundleFile())
            .joinToken(server.joinToken(WORKLOAD))
            .build();
    server.script("GetCallerIdentity", "[{\"status\": 503}]");
    MetaCapture meta = new MetaCapture();
    client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build(), capture(meta));
    assertEquals(2, meta.last().attempts(), "the retry goes to the one endpoint, cooling or not");
    assertEquals(server.url(), meta.last().endpoint());
    assertEquals(1, client.endpoints().size());
  }

  @Test
  void aServerThatFailsVerificationIsNeverRoutedAround() throws Exception {
    // An impostor in front, presenting the server's SPIFFE ID from a CA the bundle does not hold.
    TestAuthority foreign = TestAuthority.create("secinfra.local");
    SSLContext impostorTls = SSLContext.getInstance("TLS");
    impostorTls.init(
        new KeyManager[] {
          new SvidKeyManager(foreign.staticSource("spiffe://secinfra.local/secinfra/server"))
        },
        null,
        null);
    HttpsServer impostor = HttpsServer.create(new InetSocketAddress("127.0.0.1", 0), 8);
    impostor.setHttpsConfigurator(new HttpsConfigurator(impostorTls));
    impostor.createContext("/", exchange -> {
      exchange.sendResponseHeaders(200, -1);
      exchange.close();
    });
    impostor.start();
    String impostorUrl = "https://127.0.0.1:" + impostor.getAddress().getPort();
    try {
      client =
          SecinfraClient.builder(List.of(b.url(), impostorUrl))
              .endpointOrder(EndpointOrder.LISTED)
              .timeSource(clock)
              .bundleFile(server.bundleFile())
              .joinToken(server.joinToken(WORKLOAD))
              .build();
      b.refusing(true);
      b.dropConnections();
      // b fails (an endpoint failure: the call moves), the impostor fails verification: the
      // call ends there, naming it, and the impostor is not cooled down as if it were down.
      TransportException error =
          assertThrows(
              TransportException.class,
              () ->
                  client
                      .identity()
                      .getCallerIdentity(
                          GetCallerIdentityRequest.builder().build(),
                          CallOptions.builder().maxAttempts(4).build()));
      assertEquals(impostorUrl, error.endpoint());
      assertEquals(2, error.attempts(), "no attempt after the verification failure");
      assertTrue(error.getMessage().contains("[endpoint " + impostorUrl + "]"), error.getMessage());
      assertEquals(0, client.endpoints().get(1).failures(), "a verification failure is no outage");
      assertEquals(1, client.endpoints().get(0).failures());
    } finally {
      impostor.stop(0);
    }
  }
}
