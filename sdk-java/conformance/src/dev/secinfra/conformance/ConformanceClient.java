package dev.secinfra.conformance;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.secinfra.EndpointOrder;
import dev.secinfra.RetryPolicy;
import dev.secinfra.SecinfraClient;
import dev.secinfra.conformance.gen.BareRequest;
import dev.secinfra.conformance.gen.CallAnswer;
import dev.secinfra.conformance.gen.CallMeta;
import dev.secinfra.conformance.gen.CallOutcome;
import dev.secinfra.conformance.gen.CallOverrides;
import dev.secinfra.conformance.gen.CallRequest;
import dev.secinfra.conformance.gen.ClientDefaults;
import dev.secinfra.conformance.gen.ConcurrentAnswer;
import dev.secinfra.conformance.gen.ConcurrentRequest;
import dev.secinfra.conformance.gen.ConcurrentResult;
import dev.secinfra.conformance.gen.ConfigureRequest;
import dev.secinfra.conformance.gen.ErrorAnswer;
import dev.secinfra.conformance.gen.EventList;
import dev.secinfra.conformance.gen.EventsAnswer;
import dev.secinfra.conformance.gen.Failure;
import dev.secinfra.conformance.gen.Feature;
import dev.secinfra.conformance.gen.Hello;
import dev.secinfra.conformance.gen.HelloLine;
import dev.secinfra.conformance.gen.IdentityAnswer;
import dev.secinfra.conformance.gen.IdentitySnapshot;
import dev.secinfra.conformance.gen.MtlsCallAnswer;
import dev.secinfra.conformance.gen.MtlsCallRequest;
import dev.secinfra.conformance.gen.MtlsServeAnswer;
import dev.secinfra.conformance.gen.MtlsServeRequest;
import dev.secinfra.conformance.gen.MtlsServing;
import dev.secinfra.conformance.gen.MtlsStopAnswer;
import dev.secinfra.conformance.gen.MtlsStopped;
import dev.secinfra.conformance.gen.ObservationList;
import dev.secinfra.conformance.gen.ObservationsAnswer;
import dev.secinfra.conformance.gen.RequestHeader;
import dev.secinfra.conformance.gen.RotationEvent;
import dev.secinfra.conformance.gen.ShutdownAnswer;
import dev.secinfra.conformance.gen.ShutdownResult;
import dev.secinfra.errors.ConflictException;
import dev.secinfra.errors.DeadlineExceededException;
import dev.secinfra.errors.FailedPreconditionException;
import dev.secinfra.errors.IdentityExpiredException;
import dev.secinfra.errors.InternalErrorException;
import dev.secinfra.errors.InvalidArgumentException;
import dev.secinfra.errors.NotFoundException;
import dev.secinfra.errors.PermissionDeniedException;
import dev.secinfra.errors.RateLimitedException;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.errors.UnauthenticatedException;
import dev.secinfra.errors.UnavailableException;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.MetaCapture;
import dev.secinfra.rpc.ResponseMeta;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;

/**
 * The Java SDK's conformance client: the adapter protocol (protocol 1) over stdin/stdout, using
 * only the SDK's public API. Its messages are the records codegen generates into {@code
 * dev.secinfra.conformance.gen} from conformance/protocol/secinfra/conformance/v1/adapter.proto
 * (explained in docs/conformance/adapter-protocol.md). stdout carries protocol lines only.
 */
public final class ConformanceClient {
  private static final int PROTOCOL = 1;
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final TypeReference<Map<String, Object>> OBJECT = new TypeReference<>() {};
  /** The SDK's default longest endpoint cooldown (spec 12.9): raised to a longer first one. */
  private static final Duration DEFAULT_COOLDOWN_MAX = Duration.ofSeconds(30);
  /** Everything the protocol knows: the Java SDK has every option and op. */
  private static final List<Feature> FEATURES =
      Arrays.stream(Feature.values()).filter(f -> f != Feature.UNSPECIFIED).toList();
  /** Most specific first. */
  private static final List<Map.Entry<Class<?>, String>> FAMILIES =
      List.of(
          Map.entry(InvalidArgumentException.class, "InvalidArgument"),
          Map.entry(UnauthenticatedException.class, "Unauthenticated"),
          Map.entry(PermissionDeniedException.class, "PermissionDenied"),
          Map.entry(NotFoundException.class, "NotFound"),
          Map.entry(ConflictException.class, "Conflict"),
          Map.entry(FailedPreconditionException.class, "FailedPrecondition"),
          Map.entry(RateLimitedException.class, "RateLimited"),
          Map.entry(UnavailableException.class, "Unavailable"),
          Map.entry(InternalErrorException.class, "InternalError"),
          Map.entry(DeadlineExceededException.class, "DeadlineExceeded"),
          Map.entry(TransportException.class, "TransportError"),
          Map.entry(IdentityExpiredException.class, "IdentityExpired"));

  private final PrintStream out;
  private SecinfraClient client;
  private final List<RotationEvent> events = new ArrayList<>();
  private MtlsOps.Server mtlsServer;
  /** The recording observer of configure.observer, or null. */
  private RecordingObserver observer;

  private ConformanceClient(PrintStream out) {
    this.out = out;
  }

  /** A request the runner should not have sent. */
  static final class AdapterError extends Exception {
    private static final long serialVersionUID = 1L;

    AdapterError(String message) {
      super(message);
    }
  }

  /** Something this client cannot drive. */
  static final class Unsupported extends Exception {
    private static final long serialVersionUID = 1L;

    Unsupported(String message) {
      super(message);
    }
  }

  /**
   * Runs the protocol until shutdown or end of input.
   *
   * @param args ignored
   * @throws Exception on an I/O failure of stdin
   */
  public static void main(String[] args) throws Exception {
    PrintStream stdout = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    System.setOut(new PrintStream(System.err, true, StandardCharsets.UTF_8));
    ConformanceClient adapter = new ConformanceClient(stdout);
    List<String> ops =
        List.of(
            "configure",
            "call",
            "concurrent",
            "identity",
            "events",
            "mtls_serve",
            "mtls_stop",
            "mtls_call",
            "observations",
            "shutdown");
    adapter.send(
        new HelloLine(new Hello(PROTOCOL, "java", SecinfraClient.VERSION, ops, FEATURES)).toJson());
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      JsonNode msg;
      RequestHeader header;
      try {
        msg = JSON.readTree(line);
        header = RequestHeader.fromJson(msg, false);
      } catch (Exception e) {
        adapter.send(problem(null, "AdapterError", String.valueOf(e.getMessage())));
        continue;
      }
      if (header.op().equals("shutdown")) {
        adapter.send(new ShutdownAnswer(header.id(), true, new ShutdownResult()).toJson());
        break;
      }
      adapter.send(adapter.handle(header.id(), header.op(), msg));
    }
    adapter.stopMtls();
    if (adapter.client != null) {
      adapter.client.close();
    }
    stdout.flush();
    System.exit(0);
  }

  private synchronized void send(JsonNode message) {
    out.print(message.toString());
    out.print('\n');
    out.flush();
  }

  private static JsonNode problem(Integer id, String type, String message) {
    Failure failure = Failure.builder().type(type).message(message).build();
    return new ErrorAnswer(id, false, failure).toJson();
  }

  private JsonNode handle(int id, String op, JsonNode msg) {
    try {
      switch (op) {
        case "configure":
          ConfigureRequest request = ConfigureRequest.fromJson(msg, true);
          try {
            return answerIdentity(id, () -> configure(request));
          } catch (IllegalArgumentException | IllegalStateException e) {
            // The SDK refused a setting at creation (spec 1.4.4).
            return problem(id, "InvalidSetting", String.valueOf(e.getMessage()));
          }
        case "call":
          CallOutcome o;
          try {
            o = run(prepare(CallRequest.fromJson(msg, true)));
          } catch (SecinfraException e) {
            // Call options the SDK refuses (an invalid idempotency key, spec 4.4.2) end the call.
            o = new CallOutcome(false, null, null, failure(e));
          }
          return new CallAnswer(id, o.ok(), o.result(), o.meta(), o.error()).toJson();
        case "concurrent":
          return new ConcurrentAnswer(id, true, concurrent(ConcurrentRequest.fromJson(msg, true)), null)
              .toJson();
        case "identity":
          BareRequest.fromJson(msg, true);
          return answerIdentity(id, this::identity);
        case "events":
          BareRequest.fromJson(msg, true);
          synchronized (events) {
            return new EventsAnswer(id, true, new EventList(List.copyOf(events)), null).toJson();
          }
        case "observations":
          BareRequest.fromJson(msg, true);
          if (observer == null) {
            throw new AdapterError("configure with an observer first");
          }
          return new ObservationsAnswer(id, true, new ObservationList(observer.take()), null)
              .toJson();
        case "mtls_serve":
          return new MtlsServeAnswer(id, true, serveMtls(MtlsServeRequest.fromJson(msg, true)), null)
              .toJson();
        case "mtls_stop":
          BareRequest.fromJson(msg, true);
          stopMtls();
          return new MtlsStopAnswer(id, true, new MtlsStopped(), null).toJson();
        case "mtls_call":
          MtlsOps.Outcome called = MtlsOps.call(client().source(), MtlsCallRequest.fromJson(msg, true));
          return new MtlsCallAnswer(
                  id, called.failure() == null, called.result(), called.failure())
              .toJson();
        default:
          return problem(id, "Unsupported", "op '" + op + "'");
      }
    } catch (Unsupported e) {
      return problem(id, "Unsupported", e.getMessage());
    } catch (Exception e) {
      return problem(id, "AdapterError", e.getClass().getSimpleName() + ": " + e.getMessage());
    }
  }

  private MtlsServing serveMtls(MtlsServeRequest msg) throws Exception {
    if (mtlsServer != null) {
      throw new AdapterError("an mtls server already runs: mtls_stop first");
    }
    mtlsServer = new MtlsOps.Server(client().source(), MtlsOps.authorizer(msg.authorizer()));
    return new MtlsServing(mtlsServer.port());
  }

  private void stopMtls() {
    if (mtlsServer != null) {
      mtlsServer.close();
      mtlsServer = null;
    }
  }

  /** An op whose result is the identity snapshot (configure, identity). */
  private interface IdentityOp {
    IdentitySnapshot run() throws Exception;
  }

  private static JsonNode answerIdentity(int id, IdentityOp op) throws Exception {
    try {
      return new IdentityAnswer(id, true, op.run(), null).toJson();
    } catch (SecinfraException e) {
      return new IdentityAnswer(id, false, null, failure(e)).toJson();
    }
  }

  private IdentitySnapshot configure(ConfigureRequest msg) throws Exception {
    if (client != null) {
      throw new AdapterError("configure was already called");
    }
    ClientDefaults options =
        msg.options() != null ? msg.options() : ClientDefaults.builder().build();
    RetryPolicy.Builder policy = RetryPolicy.builder();
    if (options.maxAttempts() != null) {
      policy.maxAttempts(options.maxAttempts());
    }
    if (options.deadlineSeconds() != null) {
      policy.deadline(seconds(options.deadlineSeconds()));
    }
    if (options.attemptTimeoutSeconds() != null) {
      policy.attemptTimeout(seconds(options.attemptTimeoutSeconds()));
    }
    boolean hasToken = msg.joinToken() != null && !msg.joinToken().isEmpty();
    boolean hasJwt = msg.jwt() != null && !msg.jwt().isEmpty();
    if (hasToken == hasJwt) {
      throw new AdapterError("configure takes exactly one of join_token and jwt");
    }
    SecinfraClient.Builder builder =
        (msg.endpoints().isEmpty()
                ? SecinfraClient.builder(msg.serverUrl())
                : SecinfraClient.builder(msg.endpoints()))
            .bundlePem(msg.bundlePem())
            .retryPolicy(policy.build());
    if (options.endpointOrder() != null) {
      switch (options.endpointOrder()) {
        case "random":
          builder.endpointOrder(EndpointOrder.RANDOM);
          break;
        case "listed":
          builder.endpointOrder(EndpointOrder.LISTED);
          break;
        default:
          throw new AdapterError(
              "endpoint_order must be random or listed, got " + options.endpointOrder());
      }
    }
    if (options.endpointCooldownSeconds() != null) {
      Duration cooldown = seconds(options.endpointCooldownSeconds());
      builder.endpointCooldown(cooldown);
      if (cooldown.compareTo(DEFAULT_COOLDOWN_MAX) > 0) {
        builder.endpointCooldownMax(cooldown);
      }
    }
    if (hasToken) {
      builder.joinToken(msg.joinToken());
    } else {
      String jwt = msg.jwt();
      builder.jwtProvider(() -> jwt);
    }
    if (options.cacheSize() != null) {
      builder.cacheMaxEntries(options.cacheSize());
    }
    builder.onRotation(this::record);
    if (msg.observer() != null) {
      if (msg.observer().failingFirst()) {
        builder.observer(new FailingObserver());
      }
      observer = new RecordingObserver(msg.observer());
      builder.observer(observer);
    }
    client = builder.build();
    return identity();
  }

  private void record(dev.secinfra.identity.RotationEvent event) {
    var snapshot = event.snapshot();
    RotationEvent recorded =
        new RotationEvent(
            event.kind().wire(),
            snapshot != null ? snapshot.serial() : null,
            snapshot != null ? snapshot.spiffeId() : null,
            (int) event.bundle().sequence(),
            event.error() != null ? String.valueOf(event.error().getMessage()) : null,
            event.at().toEpochMilli() / 1000.0);
    synchronized (events) {
      events.add(recorded);
    }
  }

  private SecinfraClient client() throws AdapterError {
    if (client == null) {
      throw new AdapterError("configure first");
    }
    return client;
  }

  private IdentitySnapshot identity() throws AdapterError {
    SecinfraClient c = client();
    int sequence = (int) c.source().bundle().sequence();
    dev.secinfra.identity.IdentitySnapshot current = c.source().snapshot();
    if (current == null) {
      return new IdentitySnapshot(null, null, null, sequence);
    }
    return new IdentitySnapshot(
        current.spiffeId(),
        current.serial(),
        DateTimeFormatter.ISO_INSTANT.format(current.notAfter()),
        sequence);
  }

  /** A prepared call: the generated method, its request and options. */
  private record Prepared(Object service, Method method, Object request, CallOptions.Builder options) {}

  private Prepared prepare(CallRequest msg) throws Exception {
    return prepare(msg.rpc(), msg.request(), msg.callOptions());
  }

  private Prepared prepare(String rpc, Map<String, Object> requestJson, CallOverrides overrides)
      throws Exception {
    SecinfraClient c = client();
    if (rpc.isEmpty()) {
      throw new AdapterError("call without an rpc");
    }
    Class<?> requestType;
    try {
      requestType = Class.forName("dev.secinfra.gen." + rpc + "Request");
    } catch (ClassNotFoundException e) {
      throw new Unsupported("rpc '" + rpc + "'");
    }
    String name = Character.toLowerCase(rpc.charAt(0)) + rpc.substring(1);
    JsonNode body = JSON.valueToTree(requestJson != null ? requestJson : Map.of());
    for (Object service : new Object[] {c.secrets(), c.authz(), c.identity()}) {
      try {
        Method method = service.getClass().getMethod(name, requestType, CallOptions.class);
        Method decode = requestType.getMethod("fromJson", JsonNode.class, boolean.class);
        Object request;
        try {
          request = decode.invoke(null, body, true);
        } catch (InvocationTargetException e) {
          throw new AdapterError("request does not decode: " + e.getCause().getMessage());
        }
        return new Prepared(service, method, request, callOptions(overrides));
      } catch (NoSuchMethodException e) {
        // try the next service
      }
    }
    throw new Unsupported("rpc '" + rpc + "'");
  }

  private static CallOptions.Builder callOptions(CallOverrides o) {
    CallOptions.Builder builder = CallOptions.builder();
    if (o == null) {
      return builder;
    }
    if (o.maxAttempts() != null) {
      builder.maxAttempts(o.maxAttempts());
    }
    if (o.deadlineSeconds() != null) {
      builder.deadline(seconds(o.deadlineSeconds()));
    }
    if (o.attemptTimeoutSeconds() != null) {
      builder.attemptTimeout(seconds(o.attemptTimeoutSeconds()));
    }
    if (o.idempotencyKey() != null) {
      builder.idempotencyKey(o.idempotencyKey());
    }
    if (o.useCache() != null) {
      builder.useCache(o.useCache());
    }
    return builder;
  }

  private static Duration seconds(double value) {
    return Duration.ofNanos(Math.round(value * 1e9));
  }

  private CallOutcome run(Prepared prepared) throws Exception {
    MetaCapture capture = new MetaCapture();
    CallOptions options = prepared.options().capture(capture).build();
    Object response;
    try {
      response = prepared.method().invoke(prepared.service(), prepared.request(), options);
    } catch (InvocationTargetException e) {
      if (e.getCause() instanceof SecinfraException) {
        return new CallOutcome(false, null, null, failure((SecinfraException) e.getCause()));
      }
      if (e.getCause() instanceof Exception) {
        throw (Exception) e.getCause();
      }
      throw e;
    }
    JsonNode result = (JsonNode) response.getClass().getMethod("toJson").invoke(response);
    return new CallOutcome(true, JSON.convertValue(result, OBJECT), meta(capture.last()), null);
  }

  private static CallMeta meta(ResponseMeta meta) {
    if (meta == null) {
      return null;
    }
    // endpoint: null until the SDK implements several endpoints (spec 12).
    return new CallMeta(
        meta.fromCache(),
        meta.stale(),
        meta.attempts(),
        meta.requestId(),
        meta.status(),
        meta.endpoint());
  }

  private ConcurrentResult concurrent(ConcurrentRequest msg) throws Exception {
    int count = msg.count();
    if (count < 1 || count > 256) {
      throw new AdapterError("count must be from 1 to 256");
    }
    Prepared prepared = prepare(msg.rpc(), msg.request(), msg.callOptions());
    CallOutcome[] outcomes = new CallOutcome[count];
    CyclicBarrier barrier = new CyclicBarrier(count);
    CountDownLatch done = new CountDownLatch(count);
    for (int i = 0; i < count; i++) {
      int index = i;
      Thread thread =
          new Thread(
              () -> {
                try {
                  barrier.await();
                  outcomes[index] = run(prepared);
                } catch (Exception e) {
                  Failure failure =
                      Failure.builder()
                          .type("AdapterError")
                          .message(e.getClass().getSimpleName() + ": " + e.getMessage())
                          .build();
                  outcomes[index] = new CallOutcome(false, null, null, failure);
                } finally {
                  done.countDown();
                }
              });
      thread.setDaemon(true);
      thread.start();
    }
    done.await();
    return new ConcurrentResult(List.of(outcomes));
  }

  private static Failure failure(SecinfraException e) {
    String type = "InternalError";
    for (Map.Entry<Class<?>, String> family : FAMILIES) {
      if (family.getKey().isInstance(e)) {
        type = family.getValue();
        break;
      }
    }
    return new Failure(
        type,
        e.code(),
        e.getMessage(),
        e.status(),
        e.requestId(),
        e.retryable(),
        e.retryAfter(),
        e.attempts(),
        e.endpoint());
  }
}
