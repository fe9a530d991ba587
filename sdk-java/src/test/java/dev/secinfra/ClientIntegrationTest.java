package dev.secinfra;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.secinfra.errors.DeadlineExceededException;
import dev.secinfra.errors.NotFoundException;
import dev.secinfra.errors.PermissionDeniedException;
import dev.secinfra.errors.RateLimitedException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.errors.UnauthenticatedException;
import dev.secinfra.errors.UnavailableException;
import dev.secinfra.gen.CheckRequest;
import dev.secinfra.gen.CheckResponse;
import dev.secinfra.gen.GetCallerIdentityRequest;
import dev.secinfra.gen.GetCallerIdentityResponse;
import dev.secinfra.gen.GetSecretRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.gen.Secret;
import dev.secinfra.gen.SecretVersionInfo;
import dev.secinfra.gen.TupleKey;
import dev.secinfra.gen.WriteTuplesRequest;
import dev.secinfra.identity.RotationEvent;
import dev.secinfra.testing.ReferenceServer;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.MetaCapture;
import dev.secinfra.rpc.ResponseMeta;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The client against a real reference server over real TLS on loopback. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ClientIntegrationTest {
  private static final byte[] VALUE = "hunter2-java".getBytes(StandardCharsets.UTF_8);
  private static ReferenceServer server;
  private static SecinfraClient admin;
  private static String workload;
  private static SecinfraClient client;

  @BeforeAll
  static void start() throws Exception {
    server = ReferenceServer.start();
    admin = server.admin();
    workload = "spiffe://secinfra.local/java/it";
    admin.secrets().putSecret(PutSecretRequest.builder().name("java/db").value(VALUE).build());
    server.grant(workload, "reader", "folder:java/");
    client = server.enrolling(workload).build();
  }

  @AfterAll
  static void stop() throws Exception {
    if (client != null) {
      client.close();
    }
    if (admin != null) {
      admin.close();
    }
    if (server != null) {
      server.close();
    }
  }

  @AfterEach
  void clearScripts() throws Exception {
    server.control("DELETE", "/_test/scripts", null);
  }

  @Test
  void enrolledIdentityIsTheWorkloads() {
    GetCallerIdentityResponse me =
        client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
    assertEquals(workload, me.spiffeId());
    assertEquals(client.source().snapshot().serial(), me.serial());
    assertFalse(me.admin());
  }

  @Test
  void readsASecretThenServesItFromTheCache() {
    GetSecretRequest request = GetSecretRequest.builder().name("java/db").build();
    MetaCapture meta = new MetaCapture();
    CallOptions options = CallOptions.builder().capture(meta).build();
    Secret first = client.secrets().getSecret(request, options);
    Secret second = client.secrets().getSecret(request, options);
    assertArrayEquals(VALUE, first.value());
    assertArrayEquals(VALUE, second.value());
    assertFalse(first.toString().contains("hunter2"), "toString must not show the value");
    List<ResponseMeta> calls = meta.calls();
    assertEquals(2, calls.size());
    assertEquals(200, calls.get(0).status());
    assertTrue(calls.get(1).fromCache());
    assertEquals(0, calls.get(1).attempts());
  }

  @Test
  void asyncVariantCompletesWithTheSameValue() throws Exception {
    CompletableFuture<Secret> future =
        client
            .secrets()
            .getSecretAsync(
                GetSecretRequest.builder().name("java/db").build(),
                CallOptions.builder().useCache(false).build());
    assertArrayEquals(VALUE, future.get(30, TimeUnit.SECONDS).value());
  }

  @Test
  void asyncVariantCompletesExceptionallyWithTheTypedError() {
    CompletableFuture<Secret> future =
        client.secrets().getSecretAsync(GetSecretRequest.builder().name("java/missing").build());
    ExecutionException error = assertThrows(ExecutionException.class, () -> future.get(30, TimeUnit.SECONDS));
    assertTrue(error.getCause() instanceof NotFoundException, String.valueOf(error.getCause()));
  }

  @Test
  void missingSecretIsNotFoundWithRequestId() {
    NotFoundException error =
        assertThrows(
            NotFoundException.class,
            () -> client.secrets().getSecret(GetSecretRequest.builder().name("java/missing").build()));
    assertEquals("not_found", error.code());
    assertEquals(404, error.status());
    assertNotNull(error.requestId());
    assertEquals(1, error.attempts());
    assertFalse(error.retryable());
    assertTrue(error.toString().endsWith("(request id " + error.requestId() + ")"));
  }

  @Test
  void transportErrorKeepsTheRequestIdOfTheLastAnsweredAttempt() throws Exception {
    // Spec 2.5.1, 11.5: a 503, then resets on every retry; the transport error has no status
    // (11.4.2) but the 503's Request-Id, the last request the server's logs hold for the call.
    server.script(
        "GetCallerIdentity",
        "[{\"status\": 503, \"headers\": {\"Retry-After\": \"0\"}},"
            + " {\"reset\": \"before_headers\"}, {\"reset\": \"before_headers\"},"
            + " {\"reset\": \"before_headers\"}]");
    TransportException error =
        assertThrows(
            TransportException.class,
            () -> client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build()));
    assertFalse(error instanceof DeadlineExceededException, String.valueOf(error));
    assertEquals(4, error.attempts());
    assertNull(error.status());
    assertNotNull(error.requestId());
    assertTrue(error.toString().endsWith("(request id " + error.requestId() + ")"));
  }

  @Test
  void secretOutsideTheGrantIsPermissionDenied() {
    admin.secrets().putSecret(PutSecretRequest.builder().name("other/x").value(VALUE).build());
    PermissionDeniedException error =
        assertThrows(
            PermissionDeniedException.class,
            () -> client.secrets().getSecret(GetSecretRequest.builder().name("other/x").build()));
    assertFalse(error.getMessage().contains("hunter2"));
  }

  @Test
  void checkSeesOwnWriteThroughTheRevisionMark() {
    TupleKey tuple = new TupleKey("workload:" + workload, "reader", "secret:rw/only", null);
    CheckRequest check = CheckRequest.builder().tupleKey(tuple).build();
    assertFalse(admin.authz().check(check).allowed());
    // The admin's own cache holds the denial; its write must make the next check ask again.
    admin.authz().writeTuples(WriteTuplesRequest.builder().writes(List.of(tuple)).build());
    MetaCapture meta = new MetaCapture();
    CheckResponse after = admin.authz().check(check, CallOptions.builder().capture(meta).build());
    assertTrue(after.allowed());
    assertFalse(meta.last().fromCache());
  }

  @Test
  void concurrentMissesShareOneRequest() throws Exception {
    TupleKey tuple = new TupleKey("workload:" + workload, "reader", "secret:java/flight", null);
    CheckRequest check = CheckRequest.builder().tupleKey(tuple).build();
    server.script("Check", "[{\"pass\": true, \"delay_ms\": 300}]");
    int before = server.requests("Check").size();
    List<CompletableFuture<CheckResponse>> calls = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      calls.add(client.authz().checkAsync(check));
    }
    for (CompletableFuture<CheckResponse> call : calls) {
      assertTrue(call.get(30, TimeUnit.SECONDS).allowed());
    }
    assertEquals(1, server.requests("Check").size() - before);
  }

  @Test
  void retriesA503AndSendsOneIdempotencyKeyOnEveryAttempt() throws Exception {
    server.script("PutSecret", "[{\"status\": 503}, {\"reset\": \"before_headers\"}]");
    int before = server.requests("PutSecret").size();
    MetaCapture meta = new MetaCapture();
    SecretVersionInfo info =
        admin
            .secrets()
            .putSecret(
                PutSecretRequest.builder().name("java/retried").value(VALUE).build(),
                CallOptions.builder().capture(meta).build());
    assertEquals(1, info.version());
    assertEquals(3, meta.last().attempts());
    List<JsonNode> log = server.requests("PutSecret");
    List<JsonNode> mine = log.subList(before, log.size());
    assertEquals(3, mine.size());
    Set<String> keys = new HashSet<>();
    List<String> attempts = new ArrayList<>();
    for (JsonNode entry : mine) {
      keys.add(entry.path("headers").path("Idempotency-Key").asText());
      attempts.add(entry.path("headers").path("Secinfra-Attempt").asText());
    }
    assertEquals(1, keys.size());
    assertEquals(List.of("1", "2", "3"), attempts);
  }

  @Test
  void retryAfterBeyondTheCapEndsTheCallAtOnce() throws Exception {
    server.script("GetCallerIdentity", "[{\"status\": 429, \"headers\": {\"Retry-After\": \"120\"}}]");
    long start = System.nanoTime();
    RateLimitedException error =
        assertThrows(
            RateLimitedException.class,
            () -> client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build()));
    assertTrue(System.nanoTime() - start < 5_000_000_000L);
    assertEquals(120.0, error.retryAfter());
    assertEquals(1, error.attempts());
    assertTrue(error.retryable());
  }

  @Test
  void staleValueIsServedWhenTheServerFails() throws Exception {
    admin
        .secrets()
        .putSecret(
            PutSecretRequest.builder()
                .name("java/stale")
                .value(VALUE)
                .policy(new dev.secinfra.gen.SecretPolicy(0, 1, 300))
                .build());
    GetSecretRequest request = GetSecretRequest.builder().name("java/stale").build();
    client.secrets().getSecret(request);
    Thread.sleep(1_200);
    server.script("GetSecret", "[{\"status\": 503}, {\"status\": 503}, {\"status\": 503}, {\"status\": 503}]");
    MetaCapture meta = new MetaCapture();
    Secret stale = client.secrets().getSecret(request, CallOptions.builder().capture(meta).build());
    assertArrayEquals(VALUE, stale.value());
    assertTrue(meta.last().stale());
    assertTrue(meta.last().fromCache());
    assertEquals(4, meta.last().attempts());
  }

  @Test
  void revalidateReachesTheServerAndNeverServesStaleInPlaceOfAnError() throws Exception {
    admin
        .secrets()
        .putSecret(
            PutSecretRequest.builder()
                .name("java/revalidated")
                .value(VALUE)
                .policy(new dev.secinfra.gen.SecretPolicy(0, 60, 300))
                .build());
    GetSecretRequest request = GetSecretRequest.builder().name("java/revalidated").build();
    client.secrets().getSecret(request);
    int before = server.requests("GetSecret").size();
    MetaCapture meta = new MetaCapture();
    CallOptions revalidate = CallOptions.builder().revalidate(true).capture(meta).build();

    Secret again = client.secrets().getSecret(request, revalidate);

    assertArrayEquals(VALUE, again.value());
    assertEquals(304, meta.last().status(), "a fresh entry was revalidated, not served");
    assertTrue(meta.last().fromCache());
    List<JsonNode> log = server.requests("GetSecret");
    assertEquals(1, log.size() - before);
    assertNotNull(log.get(log.size() - 1).path("headers").path("If-None-Match").asText(null));

    server.script("GetSecret", "[{\"status\": 503}, {\"status\": 503}, {\"status\": 503}, {\"status\": 503}]");
    assertThrows(UnavailableException.class, () -> client.secrets().getSecret(request, revalidate));
    client.secrets().getSecret(request, CallOptions.builder().capture(meta).build());
    assertEquals(0, meta.last().attempts(), "without revalidate the fresh entry is served");
  }

  @Test
  void deadlineEndsACallToASlowServer() throws Exception {
    server.script("GetCallerIdentity", "[{\"status\": 200, \"delay_ms\": 3000, \"body\": {}}]");
    long start = System.nanoTime();
    DeadlineExceededException error =
        assertThrows(
            DeadlineExceededException.class,
            () ->
                client
                    .identity()
                    .getCallerIdentity(
                        GetCallerIdentityRequest.builder().build(),
                        CallOptions.builder().deadline(Duration.ofMillis(500)).build()));
    long elapsed = System.nanoTime() - start;
    assertTrue(elapsed < 750_000_000L, "returned " + elapsed / 1_000_000 + " ms after the call");
    assertEquals("deadline_exceeded", error.code());
  }

  @Test
  void aSpentJoinTokenFailsEnrolment() {
    String token = server.joinToken("spiffe://secinfra.local/java/once");
    SecinfraClient.builder(server.url()).bundleFile(server.bundleFile()).joinToken(token).build().close();
    UnauthenticatedException error =
        assertThrows(
            UnauthenticatedException.class,
            () ->
                SecinfraClient.builder(server.url())
                    .bundleFile(server.bundleFile())
                    .joinToken(token)
                    .build());
    assertFalse(error.toString().contains(token.substring(4)), "the token must not leak");
  }

  @Test
  void wrongServerIdIsAVerificationFailure() {
    Exception error =
        assertThrows(
            dev.secinfra.errors.TransportException.class,
            () ->
                server
                    .enrolling("spiffe://secinfra.local/java/wrong-id")
                    .serverId("spiffe://secinfra.local/not/the/server")
                    .build());
    assertTrue(error.getMessage().contains("expected SPIFFE ID"), error.getMessage());
  }

  @Test
  void fileSinkWritesMatchingFilesWithAPrivateKeyFile(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws Exception {
    try (SecinfraClient sinking =
        server.enrolling("spiffe://secinfra.local/java/sink").fileSink(dir).build()) {
      java.nio.file.Path key = dir.resolve("key.pem");
      java.nio.file.Path cert = dir.resolve("cert.pem");
      assertTrue(java.nio.file.Files.isSymbolicLink(cert));
      assertEquals(
          java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"),
          java.nio.file.Files.getPosixFilePermissions(key));
      var chain = dev.secinfra.identity.Pem.parseCertificates(java.nio.file.Files.readString(cert));
      assertEquals(sinking.source().snapshot().serial(), chain.get(0).getSerialNumber().toString(16));
      var written = dev.secinfra.identity.Pem.parsePrivateKey(java.nio.file.Files.readString(key));
      assertArrayEquals(sinking.source().snapshot().key().getEncoded(), written.getEncoded());
      assertTrue(java.nio.file.Files.readString(dir.resolve("bundle.pem")).contains("BEGIN CERTIFICATE"));
    }
  }

  @Test
  void aClosedClientRefusesCalls() {
    SecinfraClient closing = server.enrolling("spiffe://secinfra.local/java/closing").build();
    closing.close();
    closing.close();
    dev.secinfra.errors.TransportException error =
        assertThrows(
            dev.secinfra.errors.TransportException.class,
            () -> closing.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build()));
    assertEquals(0, error.attempts());
    assertTrue(error.getMessage().contains("closed"));
  }

  @Test
  void bundleRefreshesAreConditionalAndA304KeepsTheBundle() throws Exception {
    RotationPolicy everySecond =
        new RotationPolicy(
            RotationPolicy.DEFAULT_RENEWAL_FRACTION,
            RotationPolicy.DEFAULT_RENEWAL_JITTER,
            RotationPolicy.DEFAULT_RENEWAL_RETRY_BASE,
            RotationPolicy.DEFAULT_RENEWAL_RETRY_MAX,
            RotationPolicy.DEFAULT_RENEWAL_EXPIRY_MARGIN,
            RotationPolicy.DEFAULT_REENROL_RETRY,
            RotationPolicy.DEFAULT_BUNDLE_RETRY,
            RotationPolicy.DEFAULT_BUNDLE_REFRESH,
            RotationPolicy.DEFAULT_BUNDLE_REFRESH_MIN,
            Duration.ofSeconds(1));
    int before = server.requests("GetTrustBundle").size();
    List<RotationEvent> events = new java.util.concurrent.CopyOnWriteArrayList<>();
    try (SecinfraClient refreshing =
        server
            .enrolling("spiffe://secinfra.local/java/bundle-refresh")
            .rotationPolicy(everySecond)
            .onRotation(events::add)
            .build()) {
      long until = System.nanoTime() + 20_000_000_000L;
      List<JsonNode> mine = List.of();
      while (System.nanoTime() < until && mine.size() < 3) {
        Thread.sleep(200);
        List<JsonNode> log = server.requests("GetTrustBundle");
        mine = log.subList(before, log.size());
      }
      assertTrue(mine.size() >= 3, "refreshes seen: " + mine.size());
      String etag = null;
      for (int i = 1; i < mine.size(); i++) {
        JsonNode entry = mine.get(i);
        String ifNoneMatch = entry.path("headers").path("If-None-Match").asText(null);
        assertNotNull(ifNoneMatch, "refresh " + i + " is conditional: " + entry);
        assertEquals(304, entry.path("status").asInt(), "refresh " + i + ": " + entry);
        if (etag != null) {
          assertEquals(etag, ifNoneMatch, "every refresh names the held bundle's ETag");
        }
        etag = ifNoneMatch;
      }
      // The first fetch replaces the PEM bundle given at build (sequence 0); the 304s keep it.
      assertEquals(
          1,
          events.stream().filter(e -> e.kind() == RotationEvent.Kind.BUNDLE_UPDATED).count(),
          "a 304 keeps the bundle: " + events);
      assertEquals(200, mine.get(0).path("status").asInt(), "the first fetch is unconditional");
      assertTrue(refreshing.source().bundle().sequence() > 0, "the fetched bundle is held");
    }
  }

  @Test
  void renewsBeforeExpiryAndReportsIt() throws Exception {
    try (ReferenceServer shortLived = ReferenceServer.start("--leaf-ttl-seconds", "4")) {
      List<RotationEvent> events = new java.util.concurrent.CopyOnWriteArrayList<>();
      try (SecinfraClient rotating =
          shortLived.enrolling("spiffe://secinfra.local/java/rotating").onRotation(events::add).build()) {
        String first = rotating.source().snapshot().serial();
        long until = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < until
            && events.stream().noneMatch(e -> e.kind() == RotationEvent.Kind.RENEWED)) {
          Thread.sleep(100);
        }
        assertEquals(RotationEvent.Kind.ENROLLED, events.get(0).kind());
        assertTrue(events.stream().anyMatch(e -> e.kind() == RotationEvent.Kind.RENEWED));
        String renewed = rotating.source().snapshot().serial();
        assertFalse(first.equals(renewed));
        GetCallerIdentityResponse me =
            rotating.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
        assertEquals(renewed, me.serial());
      }
    }
  }
}
