package dev.secinfra.observe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.secinfra.SecinfraClient;
import dev.secinfra.errors.NotFoundException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.gen.GetCallerIdentityRequest;
import dev.secinfra.gen.GetSecretRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.testing.ReferenceServer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Observers (spec 14) of a client of a real reference server over real TLS on loopback. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ObserverIntegrationTest {
  private static final byte[] VALUE = "observed".getBytes(StandardCharsets.UTF_8);
  private static final String WORKLOAD = "spiffe://secinfra.local/java/observed";
  private static final String GET_SECRET = "secinfra.v1.SecretsService/GetSecret";
  private static final String CALLER = "secinfra.v1.IdentityService/GetCallerIdentity";
  private static final String TRACEPARENT =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  private static ReferenceServer server;
  private static SecinfraClient admin;

  @BeforeAll
  static void start() throws Exception {
    server = ReferenceServer.start();
    admin = server.admin();
    admin.secrets().putSecret(PutSecretRequest.builder().name("obs/db").value(VALUE).build());
    server.grant(WORKLOAD, "reader", "folder:obs/");
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
  void clearScripts() throws Exception {
    server.control("DELETE", "/_test/scripts", null);
  }

  /** Records every notification as one line, and returns a fixed trace context (or none). */
  static final class Recorder implements Observer {
    final List<String> seen = new ArrayList<>();
    final List<Object> events = new ArrayList<>();
    private final TraceContext trace;

    Recorder(TraceContext trace) {
      this.trace = trace;
    }

    synchronized List<String> take() {
      List<String> out = List.copyOf(seen);
      seen.clear();
      events.clear();
      return out;
    }

    @Override
    public synchronized void callStarted(CallStarted call) {
      events.add(call);
      seen.add("call_started " + call.rpc() + " " + call.idempotency().wire());
    }

    @Override
    public synchronized void cache(CacheLookup lookup) {
      events.add(lookup);
      seen.add("cache " + lookup.rpc() + " " + lookup.result().wire());
    }

    @Override
    public synchronized TraceContext attemptStarted(AttemptStarted attempt) {
      events.add(attempt);
      seen.add("attempt_started " + attempt.rpc() + " " + attempt.attempt());
      return trace;
    }

    @Override
    public synchronized void attemptFinished(AttemptFinished attempt) {
      events.add(attempt);
      seen.add(
          "attempt_finished " + attempt.rpc() + " " + attempt.attempt() + " " + attempt.status()
              + " " + attempt.code());
    }

    @Override
    public synchronized void callFinished(CallFinished call) {
      events.add(call);
      seen.add(
          "call_finished " + call.rpc() + " " + (call.ok() ? "ok" : call.code()) + " attempts="
              + call.meta().attempts() + " cache=" + call.meta().fromCache());
    }
  }

  /** Fails at every notification. */
  static final class Failing implements Observer {
    @Override
    public void callStarted(CallStarted call) {
      throw new IllegalStateException("observer down");
    }

    @Override
    public void cache(CacheLookup lookup) {
      throw new IllegalStateException("observer down");
    }

    @Override
    public TraceContext attemptStarted(AttemptStarted attempt) {
      throw new AssertionError("observer down");
    }

    @Override
    public void attemptFinished(AttemptFinished attempt) {
      throw new IllegalStateException("observer down");
    }

    @Override
    public void callFinished(CallFinished call) {
      throw new IllegalStateException("observer down");
    }
  }

  private static SecinfraClient client(Observer... observers) throws Exception {
    SecinfraClient.Builder builder = server.enrolling(WORKLOAD);
    for (Observer o : observers) {
      builder.observer(o);
    }
    return builder.build();
  }

  private static String header(JsonNode entry, String name) {
    for (Map.Entry<String, JsonNode> field : entry.path("headers").properties()) {
      if (field.getKey().equalsIgnoreCase(name)) {
        return field.getValue().asText();
      }
    }
    return null;
  }

  private static JsonNode lastRequest(String rpc) throws Exception {
    List<JsonNode> log = server.requests(rpc);
    return log.get(log.size() - 1);
  }

  @Test
  void enrolmentAndACachedReadAreObservedInOrder() throws Exception {
    Recorder recorder = new Recorder(null);
    try (SecinfraClient client = client(recorder)) {
      // The client's own calls are observed too (spec 14.2.4): the enrolment, then the bundle
      // fetch that follows it.
      String issue = "secinfra.v1.IdentityService/IssueCertificate";
      String bundle = "secinfra.v1.IdentityService/GetTrustBundle";
      List<String> enrolment = recorder.take();
      assertEquals(
          List.of(
              "call_started " + issue + " non_idempotent",
              "attempt_started " + issue + " 1",
              "attempt_finished " + issue + " 1 200 null",
              "call_finished " + issue + " ok attempts=1 cache=false",
              "call_started " + bundle + " read_only"),
          enrolment.subList(0, 5));
      assertEquals(
          "call_finished " + bundle + " ok attempts=1 cache=false",
          enrolment.get(enrolment.size() - 1));

      GetSecretRequest request = GetSecretRequest.builder().name("obs/db").build();
      assertArrayEquals(VALUE, client.secrets().getSecret(request).value());
      assertArrayEquals(VALUE, client.secrets().getSecret(request).value());

      assertEquals(
          List.of(
              "call_started " + GET_SECRET + " read_only",
              "cache " + GET_SECRET + " miss",
              "attempt_started " + GET_SECRET + " 1",
              "attempt_finished " + GET_SECRET + " 1 200 null",
              "call_finished " + GET_SECRET + " ok attempts=1 cache=false",
              "call_started " + GET_SECRET + " read_only",
              "cache " + GET_SECRET + " hit",
              "call_finished " + GET_SECRET + " ok attempts=0 cache=true"),
          recorder.take());
    }
  }

  @Test
  void eachAttemptIsObservedWithItsStatusAndCode() throws Exception {
    Recorder recorder = new Recorder(null);
    try (SecinfraClient client = client(recorder)) {
      recorder.take();
      server.script(
          "GetCallerIdentity",
          "[{\"status\": 503, \"headers\": {\"Retry-After\": \"0\"}}, {\"reset\": \"before_headers\"}]");
      client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
      assertEquals(
          List.of(
              "call_started " + CALLER + " read_only",
              "attempt_started " + CALLER + " 1",
              "attempt_finished " + CALLER + " 1 503 unavailable",
              "attempt_started " + CALLER + " 2",
              "attempt_finished " + CALLER + " 2 null unavailable",
              "attempt_started " + CALLER + " 3",
              "attempt_finished " + CALLER + " 3 200 null",
              "call_finished " + CALLER + " ok attempts=3 cache=false"),
          recorder.take());

      assertThrows(
          NotFoundException.class,
          () -> client.secrets().getSecret(GetSecretRequest.builder().name("obs/missing").build()));
      List<String> seen = recorder.take();
      assertEquals("attempt_finished " + GET_SECRET + " 1 404 not_found", seen.get(3));
      assertEquals("call_finished " + GET_SECRET + " not_found attempts=1 cache=false", seen.get(4));
    }
  }

  @Test
  void oneCallsNotificationsShareItsIdAndTheAttemptsEndpoint() throws Exception {
    Recorder recorder = new Recorder(null);
    try (SecinfraClient client = client(recorder)) {
      recorder.take();
      client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
      List<Object> events;
      synchronized (recorder) {
        events = List.copyOf(recorder.events);
      }
      CallStarted started = (CallStarted) events.get(0);
      AttemptStarted attempt = (AttemptStarted) events.get(1);
      AttemptFinished finished = (AttemptFinished) events.get(2);
      CallFinished call = (CallFinished) events.get(3);
      assertEquals(started.callId(), attempt.callId());
      assertEquals(started.callId(), finished.callId());
      assertEquals(started.callId(), call.callId());
      assertEquals(server.url(), attempt.endpoint());
      assertEquals("GET", attempt.httpMethod());
      assertEquals(server.url(), call.meta().endpoint());
      assertEquals(200, call.meta().status());
    }
  }

  @Test
  void theReturnedTraceContextIsSentOnEachAttempt() throws Exception {
    Recorder recorder = new Recorder(new TraceContext(TRACEPARENT, "vendor=abc"));
    try (SecinfraClient client = client(recorder)) {
      server.script("GetCallerIdentity", "[{\"status\": 503, \"headers\": {\"Retry-After\": \"0\"}}]");
      int before = server.requests("GetCallerIdentity").size();
      client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
      List<JsonNode> log = server.requests("GetCallerIdentity");
      assertEquals(2, log.size() - before);
      for (JsonNode entry : log.subList(before, log.size())) {
        assertEquals(TRACEPARENT, header(entry, "traceparent"));
        assertEquals("vendor=abc", header(entry, "tracestate"));
      }
    }
  }

  @Test
  void noObserverSendsNoTraceContext() throws Exception {
    try (SecinfraClient client = client()) {
      client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
      JsonNode entry = lastRequest("GetCallerIdentity");
      assertNull(header(entry, "traceparent"));
      assertNull(header(entry, "tracestate"));
    }
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Injected: 1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
        ""
      })
  void anInvalidTraceparentIsNotSentNorItsTracestate(String traceparent) throws Exception {
    Recorder recorder = new Recorder(new TraceContext(traceparent, "vendor=abc"));
    try (SecinfraClient client = client(recorder)) {
      client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
      JsonNode entry = lastRequest("GetCallerIdentity");
      assertNull(header(entry, "traceparent"));
      assertNull(header(entry, "tracestate"));
      assertNull(header(entry, "X-Injected"));
    }
  }

  @Test
  void theFirstValidTraceContextWinsAndABadTracestateIsDropped() throws Exception {
    Recorder invalid = new Recorder(TraceContext.of("not-a-traceparent"));
    Recorder valid = new Recorder(new TraceContext(TRACEPARENT, "a=1\r\nX-Injected: 1"));
    Recorder later =
        new Recorder(TraceContext.of("00-11111111111111111111111111111111-2222222222222222-01"));
    try (SecinfraClient client = client(invalid, valid, later)) {
      client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());
      JsonNode entry = lastRequest("GetCallerIdentity");
      assertEquals(TRACEPARENT, header(entry, "traceparent"));
      assertNull(header(entry, "tracestate"));
      assertNull(header(entry, "X-Injected"));
      assertFalse(later.take().isEmpty(), "every observer is notified");
    }
  }

  @Test
  void aFailingObserverNeitherFailsTheCallNorStopsTheNext() throws Exception {
    Recorder recorder = new Recorder(TraceContext.of(TRACEPARENT));
    try (SecinfraClient client = client(new Failing(), recorder)) {
      recorder.take();
      GetSecretRequest request = GetSecretRequest.builder().name("obs/db").build();
      assertArrayEquals(VALUE, client.secrets().getSecret(request).value());
      assertEquals(5, recorder.take().size());
      assertEquals(TRACEPARENT, header(lastRequest("GetSecret"), "traceparent"));
    }
  }

  @Test
  void aCallThatFailsBeforeItsFirstAttemptIsStillStartedAndFinished() throws Exception {
    Recorder recorder = new Recorder(null);
    SecinfraClient client = client(recorder);
    client.close();
    recorder.take();
    assertThrows(
        TransportException.class,
        () -> client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build()));
    assertEquals(
        List.of(
            "call_started " + CALLER + " read_only",
            "call_finished " + CALLER + " unavailable attempts=0 cache=false"),
        recorder.take());
  }
}
