package dev.secinfra.otel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.secinfra.SecinfraClient;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.NotFoundException;
import dev.secinfra.errors.UnavailableException;
import dev.secinfra.gen.GetCallerIdentityRequest;
import dev.secinfra.gen.GetSecretRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.gen.TupleKey;
import dev.secinfra.gen.WriteTuplesRequest;
import dev.secinfra.identity.RotationEvent;
import dev.secinfra.testing.ReferenceServer;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.metrics.SdkMeterProvider;
import io.opentelemetry.sdk.metrics.data.LongPointData;
import io.opentelemetry.sdk.metrics.data.MetricData;
import io.opentelemetry.sdk.testing.exporter.InMemoryMetricReader;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.EventData;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The OpenTelemetry observer (spec 14.4, 14.5) on a client of a real reference server over TLS. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SecinfraTelemetryTest {
  private static final byte[] VALUE = "traced".getBytes(StandardCharsets.UTF_8);
  private static final String WORKLOAD = "spiffe://secinfra.local/java/otel";
  private static final String GET_SECRET = "secinfra.v1.SecretsService/GetSecret";
  private static final String CALLER = "secinfra.v1.IdentityService/GetCallerIdentity";
  private static final AttributeKey<String> RPC_SERVICE = AttributeKey.stringKey("rpc.service");
  private static final AttributeKey<String> RPC_METHOD = AttributeKey.stringKey("rpc.method");
  private static final AttributeKey<String> ERROR_TYPE = AttributeKey.stringKey("error.type");
  private static final AttributeKey<Long> STATUS = AttributeKey.longKey("http.response.status_code");
  private static final AttributeKey<String> CACHE_RESULT = AttributeKey.stringKey("secinfra.cache.result");
  /** 14.5.4: the RPC as {@code rpc.service} and {@code rpc.method}, split from its full name. */
  private static final Attributes GET_SECRET_RPC =
      Attributes.of(RPC_SERVICE, "secinfra.v1.SecretsService", RPC_METHOD, "GetSecret");
  private static final Attributes CALLER_RPC =
      Attributes.of(RPC_SERVICE, "secinfra.v1.IdentityService", RPC_METHOD, "GetCallerIdentity");
  private static ReferenceServer server;
  private static SecinfraClient admin;

  private InMemorySpanExporter spans;
  private InMemoryMetricReader metrics;
  private OpenTelemetrySdk otel;
  private SecinfraTelemetry telemetry;
  private SecinfraClient client;

  @BeforeAll
  static void start() throws Exception {
    server = ReferenceServer.start();
    admin = server.admin();
    admin.secrets().putSecret(PutSecretRequest.builder().name("otel/db").value(VALUE).build());
    admin
        .authz()
        .writeTuples(
            WriteTuplesRequest.builder()
                .writes(List.of(new TupleKey("workload:" + WORKLOAD, "reader", "folder:otel/", null)))
                .build());
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
  void telemetry() throws Exception {
    spans = InMemorySpanExporter.create();
    metrics = InMemoryMetricReader.create();
    otel =
        OpenTelemetrySdk.builder()
            .setTracerProvider(
                SdkTracerProvider.builder().addSpanProcessor(SimpleSpanProcessor.create(spans)).build())
            .setMeterProvider(SdkMeterProvider.builder().registerMetricReader(metrics).build())
            .build();
    telemetry = SecinfraTelemetry.create(otel);
    client =
        server
            .enrolling(WORKLOAD)
            .observer(telemetry.observer())
            .onRotation(telemetry.rotationListener())
            .build();
    spans.reset(); // the enrolment's spans
  }

  @AfterEach
  void close() throws Exception {
    if (client != null) {
      client.close();
    }
    otel.close();
    server.control("DELETE", "/_test/scripts", null);
  }

  private SpanData only(String name, SpanKind kind) {
    List<SpanData> found =
        spans.getFinishedSpanItems().stream()
            .filter(s -> s.getName().equals(name) && s.getKind() == kind)
            .toList();
    assertEquals(1, found.size(), "spans named " + name + ": " + spans.getFinishedSpanItems());
    return found.get(0);
  }

  private List<SpanData> attempts() {
    return spans.getFinishedSpanItems().stream().filter(s -> s.getKind() == SpanKind.CLIENT).toList();
  }

  private static String header(JsonNode entry, String name) {
    for (Map.Entry<String, JsonNode> field : entry.path("headers").properties()) {
      if (field.getKey().equalsIgnoreCase(name)) {
        return field.getValue().asText();
      }
    }
    return null;
  }

  /** The attribute sets of a counter's points, all of them: no other attribute than 14.5.4's. */
  private List<Attributes> points(String name) {
    return metrics.collectAllMetrics().stream()
        .filter(metric -> metric.getName().equals(name))
        .flatMap(metric -> metric.getLongSumData().getPoints().stream())
        .map(LongPointData::getAttributes)
        .toList();
  }

  /** The attribute sets of a counter's points of one RPC (the enrolment's are counted too). */
  private List<Attributes> points(String name, Attributes rpc) {
    return points(name).stream()
        .filter(
            a ->
                rpc.get(RPC_SERVICE).equals(a.get(RPC_SERVICE))
                    && rpc.get(RPC_METHOD).equals(a.get(RPC_METHOD)))
        .toList();
  }

  private static Attributes with(Attributes base, Attributes more) {
    return base.toBuilder().putAll(more).build();
  }

  private long counter(String name, Attributes attributes) {
    for (MetricData metric : metrics.collectAllMetrics()) {
      if (metric.getName().equals(name)) {
        for (LongPointData point : metric.getLongSumData().getPoints()) {
          if (point.getAttributes().equals(attributes)) {
            return point.getValue();
          }
        }
      }
    }
    return 0;
  }

  @Test
  void aCallIsAnInternalSpanUnderTheCurrentOneAndEachAttemptAClientSpanUnderIt() throws Exception {
    Tracer app = otel.getTracer("app");
    Span parent = app.spanBuilder("handle request").startSpan();
    Scope scope = parent.makeCurrent();
    try {
      assertArrayEquals(
          VALUE, client.secrets().getSecret(GetSecretRequest.builder().name("otel/db").build()).value());
    } finally {
      scope.close();
      parent.end();
    }

    SpanData call = only(GET_SECRET, SpanKind.INTERNAL);
    assertEquals(parent.getSpanContext().getSpanId(), call.getParentSpanId());
    assertEquals(parent.getSpanContext().getTraceId(), call.getTraceId());
    assertEquals(StatusCode.UNSET, call.getStatus().getStatusCode());
    List<EventData> events = call.getEvents();
    assertEquals(1, events.size());
    assertEquals("cache", events.get(0).getName());
    assertEquals("miss", events.get(0).getAttributes().get(CACHE_RESULT));
    assertEquals("secinfra.v1.SecretsService", call.getAttributes().get(RPC_SERVICE));
    assertEquals("GetSecret", call.getAttributes().get(RPC_METHOD));
    assertNull(call.getAttributes().get(AttributeKey.stringKey("secinfra.rpc")));
    assertNull(call.getAttributes().get(ERROR_TYPE));

    SpanData attempt = only("GET", SpanKind.CLIENT);
    assertEquals(call.getSpanId(), attempt.getParentSpanId());
    Attributes a = attempt.getAttributes();
    assertEquals("GET", a.get(AttributeKey.stringKey("http.request.method")));
    assertEquals("127.0.0.1", a.get(AttributeKey.stringKey("server.address")));
    assertEquals(
        (long) java.net.URI.create(server.url()).getPort(), a.get(AttributeKey.longKey("server.port")));
    assertEquals(200L, a.get(STATUS));
    assertEquals(1L, a.get(AttributeKey.longKey("secinfra.attempt")));
    assertEquals("secinfra.v1.SecretsService", a.get(RPC_SERVICE));
    assertEquals("GetSecret", a.get(RPC_METHOD));
    assertNull(a.get(ERROR_TYPE));

    // 14.5.2: the attempt's traceparent carries the attempt span's context.
    List<JsonNode> log = server.requests("GetSecret");
    String traceparent = header(log.get(log.size() - 1), "traceparent");
    assertEquals("00-" + attempt.getTraceId() + "-" + attempt.getSpanId() + "-" + attempt.getSpanContext().getTraceFlags().asHex(), traceparent);
  }

  @Test
  void aRetriedCallHasAnAttemptSpanPerAttemptAndAFailedOneIsMarked() throws Exception {
    server.script(
        "GetCallerIdentity", "[{\"status\": 503, \"headers\": {\"Retry-After\": \"0\"}}]");
    client.identity().getCallerIdentity(GetCallerIdentityRequest.builder().build());

    SpanData call = only(CALLER, SpanKind.INTERNAL);
    List<SpanData> tries = attempts();
    assertEquals(2, tries.size());
    SpanData first = tries.get(0);
    SpanData second = tries.get(1);
    assertEquals(call.getSpanId(), first.getParentSpanId());
    assertEquals(call.getSpanId(), second.getParentSpanId());
    assertEquals(503L, first.getAttributes().get(STATUS));
    assertEquals("unavailable", first.getAttributes().get(ERROR_TYPE));
    assertEquals(StatusCode.ERROR, first.getStatus().getStatusCode());
    assertEquals(2L, second.getAttributes().get(AttributeKey.longKey("secinfra.attempt")));
    assertEquals(1L, second.getAttributes().get(AttributeKey.longKey("http.request.resend_count")));
    assertNull(second.getAttributes().get(ERROR_TYPE));
    assertEquals(StatusCode.UNSET, call.getStatus().getStatusCode());

    List<JsonNode> log = server.requests("GetCallerIdentity");
    List<JsonNode> sent = log.subList(log.size() - 2, log.size());
    assertEquals("00-" + first.getTraceId() + "-" + first.getSpanId() + "-" + first.getSpanContext().getTraceFlags().asHex(), header(sent.get(0), "traceparent"));
    assertEquals("00-" + second.getTraceId() + "-" + second.getSpanId() + "-" + second.getSpanContext().getTraceFlags().asHex(), header(sent.get(1), "traceparent"));

    Attributes failed = with(CALLER_RPC, Attributes.of(STATUS, 503L, ERROR_TYPE, "unavailable"));
    Attributes answered = with(CALLER_RPC, Attributes.of(STATUS, 200L));
    assertEquals(1, counter("secinfra.client.attempts", failed));
    assertEquals(1, counter("secinfra.client.attempts", answered));
    assertEquals(Set.of(failed, answered), Set.copyOf(points("secinfra.client.attempts", CALLER_RPC)));
    // A call that succeeded: the RPC and no error.type, no outcome.
    assertEquals(1, counter("secinfra.client.calls", CALLER_RPC));
    assertEquals(List.of(CALLER_RPC), points("secinfra.client.calls", CALLER_RPC));
  }

  @Test
  void aFailedCallSpanIsAnErrorWithTheErrorsCode() {
    assertThrows(
        NotFoundException.class,
        () -> client.secrets().getSecret(GetSecretRequest.builder().name("otel/missing").build()));
    SpanData call = only(GET_SECRET, SpanKind.INTERNAL);
    assertEquals(StatusCode.ERROR, call.getStatus().getStatusCode());
    assertEquals("not_found", call.getAttributes().get(ERROR_TYPE));
    SpanData attempt = only("GET", SpanKind.CLIENT);
    assertEquals(404L, attempt.getAttributes().get(STATUS));
    assertEquals("not_found", attempt.getAttributes().get(ERROR_TYPE));
    Attributes failed = with(GET_SECRET_RPC, Attributes.of(ERROR_TYPE, "not_found"));
    assertEquals(1, counter("secinfra.client.calls", failed));
    assertEquals(List.of(failed), points("secinfra.client.calls", GET_SECRET_RPC));
    assertEquals(
        List.of(with(GET_SECRET_RPC, Attributes.of(STATUS, 404L, ERROR_TYPE, "not_found"))),
        points("secinfra.client.attempts", GET_SECRET_RPC));
  }

  @Test
  void aCacheHitIsAnEventOnTheCallSpanWithNoAttempt() {
    GetSecretRequest request = GetSecretRequest.builder().name("otel/db").build();
    client.secrets().getSecret(request);
    spans.reset();
    client.secrets().getSecret(request);

    SpanData call = only(GET_SECRET, SpanKind.INTERNAL);
    assertEquals("hit", call.getEvents().get(0).getAttributes().get(CACHE_RESULT));
    assertTrue(call.getAttributes().get(AttributeKey.booleanKey("secinfra.from_cache")));
    assertTrue(attempts().isEmpty());
    Attributes miss = with(GET_SECRET_RPC, Attributes.of(CACHE_RESULT, "miss"));
    Attributes hit = with(GET_SECRET_RPC, Attributes.of(CACHE_RESULT, "hit"));
    assertEquals(1, counter("secinfra.client.cache.lookups", miss));
    assertEquals(1, counter("secinfra.client.cache.lookups", hit));
    assertEquals(Set.of(miss, hit), Set.copyOf(points("secinfra.client.cache.lookups", GET_SECRET_RPC)));
  }

  @Test
  void theClientsOwnCallsAreTracedToo() throws Exception {
    SecinfraClient other = server.enrolling(WORKLOAD).observer(telemetry.observer()).build();
    other.close();
    SpanData issue = only("secinfra.v1.IdentityService/IssueCertificate", SpanKind.INTERNAL);
    assertFalse(issue.getParentSpanContext().isValid(), "no application span: a root");
  }

  @Test
  void renewalsAreCountedWithTheErrorTypeOfTheFailedOnes() {
    ErrorInfo unavailable =
        new ErrorInfo("unavailable", "secinfra: no answer", null, null, true, null, 3, null);
    telemetry
        .rotationListener()
        .accept(new RotationEvent(RotationEvent.Kind.RENEWED, null, null, null, Instant.now()));
    telemetry
        .rotationListener()
        .accept(
            new RotationEvent(
                RotationEvent.Kind.RENEWAL_FAILED,
                null,
                null,
                new UnavailableException(unavailable, null),
                Instant.now()));
    telemetry
        .rotationListener()
        .accept(
            new RotationEvent(
                RotationEvent.Kind.RENEWAL_FAILED,
                null,
                null,
                new IllegalStateException("refused"),
                Instant.now()));
    // Only error.type, and only on a failed renewal: a success has no attribute.
    Attributes failed = Attributes.of(ERROR_TYPE, "unavailable");
    Attributes other = Attributes.of(ERROR_TYPE, IllegalStateException.class.getName());
    assertEquals(1, counter("secinfra.client.renewals", Attributes.empty()));
    assertEquals(1, counter("secinfra.client.renewals", failed));
    assertEquals(1, counter("secinfra.client.renewals", other));
    assertEquals(
        Set.of(Attributes.empty(), failed, other), Set.copyOf(points("secinfra.client.renewals")));
  }
}
