package dev.secinfra;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.errors.IdentityExpiredException;
import dev.secinfra.gen.GetCallerIdentityRequest;
import dev.secinfra.gen.GetSecretRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.gen.Secret;
import dev.secinfra.gen.SecretPolicy;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.MetaCapture;
import dev.secinfra.testing.FakeTimeSource;
import dev.secinfra.testing.ReferenceServer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A join-token client whose certificate has expired (it cannot re-enrol) and its response cache,
 * against a real reference server on loopback, in sdk-python's order: a fresh entry is served
 * without a request and without asking for the identity; every call that needs a request asks for
 * the identity before each attempt and ends with {@code identity_expired}, sending nothing (spec
 * 9.7.3), and a stale entry never masks that error (7.6.3). The client's clock is a {@link
 * FakeTimeSource}: moving it past NotAfter expires the certificate for the client only.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ExpiredIdentityIntegrationTest {
  private static final String WORKLOAD = "spiffe://secinfra.local/java/expiring";
  private static final byte[] VALUE = "hunter2-expiring".getBytes(StandardCharsets.UTF_8);
  /** The longest {@code max-age} the server allows: fresh long after a one-hour certificate. */
  private static final int A_DAY = 86_400;

  private static ReferenceServer server;
  private static SecinfraClient admin;

  private FakeTimeSource clock;
  private SecinfraClient client;

  @BeforeAll
  static void start() throws Exception {
    server = ReferenceServer.start();
    admin = server.admin();
    server.grant(WORKLOAD, "reader", "folder:expiring/");
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

  @AfterEach
  void close() throws Exception {
    if (client != null) {
      client.close();
    }
    server.control("DELETE", "/_test/scripts", null);
  }

  private SecinfraClient enrol() {
    clock = new FakeTimeSource(Instant.now());
    client = server.enrolling(WORKLOAD).timeSource(clock).build();
    return client;
  }

  /** Moves the client's clock one second past its certificate's NotAfter. */
  private void expire() {
    Instant notAfter = client.source().snapshot().notAfter();
    clock.advance(Duration.between(clock.now(), notAfter).plusSeconds(1));
  }

  /**
   * One cached entry, then the certificate expires, then the same read.
   *
   * @param name what the case shows
   * @param maxAge the secret's {@code max-age}
   * @param staleIfError the secret's {@code stale-if-error}
   * @param revalidate whether the second read asks to revalidate
   * @param served whether the second read is served from the cache (else identity_expired)
   */
  record Case(String name, int maxAge, int staleIfError, boolean revalidate, boolean served) {
    @Override
    public String toString() {
      return name;
    }
  }

  static Stream<Case> cases() {
    return Stream.of(
        new Case("a fresh entry is served without a request", A_DAY, 0, false, true),
        new Case("a fresh entry to revalidate needs a request", A_DAY, 0, true, false),
        new Case("a stale entry usable on error does not mask it", 1, A_DAY, false, false),
        new Case("a stale entry to revalidate needs a request", 1, 0, false, false));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void anExpiredIdentityAndTheCache(Case c) throws Exception {
    enrol();
    String secret = "expiring/" + c.name().replace(' ', '-');
    admin
        .secrets()
        .putSecret(
            PutSecretRequest.builder()
                .name(secret)
                .value(VALUE)
                .policy(new SecretPolicy(0, c.maxAge(), c.staleIfError()))
                .build());
    GetSecretRequest request = GetSecretRequest.builder().name(secret).build();
    MetaCapture meta = new MetaCapture();
    client.secrets().getSecret(request, CallOptions.builder().capture(meta).build());
    assertEquals(200, meta.last().status(), "the first read reaches the server");
    expire();
    int before = server.requests("GetSecret").size();
    CallOptions options = CallOptions.builder().capture(meta).revalidate(c.revalidate()).build();

    if (c.served()) {
      Secret cached = client.secrets().getSecret(request, options);
      assertArrayEquals(VALUE, cached.value());
      assertTrue(meta.last().fromCache());
      assertFalse(meta.last().stale());
      assertEquals(0, meta.last().attempts());
    } else {
      IdentityExpiredException error =
          assertThrows(
              IdentityExpiredException.class, () -> client.secrets().getSecret(request, options));
      assertEquals("identity_expired", error.code());
      assertEquals(0, error.attempts());
      assertTrue(error.getMessage().contains("expired"), error.getMessage());
      assertFalse(meta.last().fromCache(), "no cached value in place of the error");
    }
    assertEquals(before, server.requests("GetSecret").size(), "no request was sent");
  }

  @Test
  void anIdentityThatExpiresBetweenAttemptsEndsTheCallBeforeTheRetry() throws Exception {
    enrol();
    server.script("GetCallerIdentity", "[{\"status\": 503, \"delay_ms\": 1000}]");
    int before = server.requests("GetCallerIdentity").size();
    // A deadline the clock's move leaves time in: the retry is refused for the identity alone.
    CallOptions options = CallOptions.builder().deadline(Duration.ofDays(2)).build();
    CompletableFuture<?> call =
        CompletableFuture.supplyAsync(
            () ->
                client
                    .identity()
                    .getCallerIdentity(GetCallerIdentityRequest.builder().build(), options));
    // The server logs the first attempt as it arrives, then holds its 503 for a second.
    long until = System.nanoTime() + 10_000_000_000L;
    while (server.requests("GetCallerIdentity").size() == before && System.nanoTime() < until) {
      Thread.sleep(20);
    }
    assertEquals(before + 1, server.requests("GetCallerIdentity").size(), "attempt 1 arrived");
    expire();

    ExecutionException failed = assertThrows(ExecutionException.class, call::get);
    IdentityExpiredException error =
        assertInstanceOf(IdentityExpiredException.class, failed.getCause());
    assertEquals(1, error.attempts(), "attempt 1 was made, attempt 2 was not");
    assertEquals(before + 1, server.requests("GetCallerIdentity").size(), "no second request");
  }
}
