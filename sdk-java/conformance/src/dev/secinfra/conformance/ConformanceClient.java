package dev.secinfra.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.RetryPolicy;
import dev.secinfra.SecinfraClient;
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
import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.RotationEvent;
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

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;

/**
 * The Java SDK's conformance client: docs/conformance/adapter-protocol.md (protocol 1) over
 * stdin/stdout, using only the SDK's public API. stdout carries protocol lines only.
 */
public final class ConformanceClient {
  private static final int PROTOCOL = 1;
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
  private static final Set<String> CLIENT_OPTIONS =
      Set.of("max_attempts", "deadline_seconds", "attempt_timeout_seconds", "cache_size");
  private static final Set<String> CALL_OPTIONS =
      Set.of("max_attempts", "deadline_seconds", "attempt_timeout_seconds", "idempotency_key", "use_cache");
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
  private final List<ObjectNode> events = new ArrayList<>();

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
    ObjectNode hello = NODES.objectNode();
    ObjectNode body = hello.putObject("hello");
    body.put("protocol", PROTOCOL);
    body.put("sdk", "java");
    body.put("sdk_version", SecinfraClient.VERSION);
    ArrayNode ops = body.putArray("ops");
    for (String op : List.of("configure", "call", "concurrent", "identity", "events", "shutdown")) {
      ops.add(op);
    }
    adapter.send(hello);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      JsonNode msg;
      try {
        msg = JSON.readTree(line);
        if (!msg.isObject()) {
          throw new IllegalArgumentException("a request is a JSON object");
        }
      } catch (Exception e) {
        adapter.send(adapter.problem(null, "AdapterError", String.valueOf(e.getMessage())));
        continue;
      }
      JsonNode id = msg.get("id");
      String op = msg.path("op").asText("");
      if (op.equals("shutdown")) {
        ObjectNode answer = NODES.objectNode();
        answer.set("id", id);
        answer.put("ok", true);
        answer.putObject("result");
        adapter.send(answer);
        break;
      }
      adapter.send(adapter.handle(id, op, msg));
    }
    if (adapter.client != null) {
      adapter.client.close();
    }
    stdout.flush();
    System.exit(0);
  }

  private synchronized void send(ObjectNode message) {
    out.print(message.toString());
    out.print('\n');
    out.flush();
  }

  private ObjectNode problem(JsonNode id, String type, String message) {
    ObjectNode answer = NODES.objectNode();
    answer.set("id", id);
    answer.put("ok", false);
    ObjectNode error = answer.putObject("error");
    error.put("type", type);
    error.put("message", message);
    return answer;
  }

  private ObjectNode handle(JsonNode id, String op, JsonNode msg) {
    try {
      ObjectNode outcome;
      switch (op) {
        case "configure":
          outcome = ok(configure(msg), null);
          break;
        case "call":
          outcome = call(msg);
          break;
        case "concurrent":
          outcome = ok(concurrent(msg), null);
          break;
        case "identity":
          outcome = ok(identity(), null);
          break;
        case "events":
          outcome = ok(events(), null);
          break;
        default:
          return problem(id, "Unsupported", "op '" + op + "'");
      }
      ObjectNode answer = NODES.objectNode();
      answer.set("id", id);
      answer.setAll(outcome);
      return answer;
    } catch (SecinfraException e) {
      ObjectNode answer = NODES.objectNode();
      answer.set("id", id);
      answer.put("ok", false);
      answer.set("error", errorJson(e));
      return answer;
    } catch (Unsupported e) {
      return problem(id, "Unsupported", e.getMessage());
    } catch (Exception e) {
      return problem(id, "AdapterError", e.getClass().getSimpleName() + ": " + e.getMessage());
    }
  }

  private static ObjectNode ok(JsonNode result, JsonNode meta) {
    ObjectNode outcome = NODES.objectNode();
    outcome.put("ok", true);
    outcome.set("result", result);
    if (meta != null) {
      outcome.set("meta", meta);
    }
    return outcome;
  }

  private ObjectNode configure(JsonNode msg) throws Exception {
    if (client != null) {
      throw new AdapterError("configure was already called");
    }
    JsonNode options = msg.path("options");
    for (java.util.Iterator<String> it = options.fieldNames(); it.hasNext(); ) {
      String name = it.next();
      if (!CLIENT_OPTIONS.contains(name)) {
        throw new Unsupported("client option " + name);
      }
    }
    RetryPolicy.Builder policy = RetryPolicy.builder();
    if (options.hasNonNull("max_attempts")) {
      policy.maxAttempts(options.get("max_attempts").asInt());
    }
    if (options.hasNonNull("deadline_seconds")) {
      policy.deadline(seconds(options.get("deadline_seconds")));
    }
    if (options.hasNonNull("attempt_timeout_seconds")) {
      policy.attemptTimeout(seconds(options.get("attempt_timeout_seconds")));
    }
    boolean hasToken = msg.hasNonNull("join_token") && !msg.get("join_token").asText().isEmpty();
    boolean hasJwt = msg.hasNonNull("jwt") && !msg.get("jwt").asText().isEmpty();
    if (hasToken == hasJwt) {
      throw new AdapterError("configure takes exactly one of join_token and jwt");
    }
    SecinfraClient.Builder builder =
        SecinfraClient.builder(msg.path("server_url").asText())
            .bundlePem(msg.path("bundle_pem").asText())
            .retryPolicy(policy.build());
    if (hasToken) {
      builder.joinToken(msg.get("join_token").asText());
    } else {
      String jwt = msg.get("jwt").asText();
      builder.jwtProvider(() -> jwt);
    }
    if (options.hasNonNull("cache_size")) {
      builder.cacheMaxEntries(options.get("cache_size").asInt());
    }
    builder.onRotation(this::record);
    client = builder.build();
    return identity();
  }

  private void record(RotationEvent event) {
    ObjectNode json = NODES.objectNode();
    json.put("kind", event.kind().wire());
    if (event.snapshot() != null) {
      json.put("serial", event.snapshot().serial());
      json.put("spiffe_id", event.snapshot().spiffeId());
    } else {
      json.putNull("serial");
      json.putNull("spiffe_id");
    }
    json.put("bundle_sequence", event.bundle().sequence());
    if (event.error() != null) {
      json.put("error", String.valueOf(event.error().getMessage()));
    } else {
      json.putNull("error");
    }
    json.put("at", event.at().toEpochMilli() / 1000.0);
    synchronized (events) {
      events.add(json);
    }
  }

  private SecinfraClient client() throws AdapterError {
    if (client == null) {
      throw new AdapterError("configure first");
    }
    return client;
  }

  private ObjectNode identity() throws AdapterError {
    SecinfraClient c = client();
    ObjectNode result = NODES.objectNode();
    IdentitySnapshot current = c.source().snapshot();
    if (current != null) {
      result.put("spiffe_id", current.spiffeId());
      result.put("serial", current.serial());
      result.put("not_after", DateTimeFormatter.ISO_INSTANT.format(current.notAfter()));
    }
    result.put("bundle_sequence", c.source().bundle().sequence());
    return result;
  }

  private ObjectNode events() {
    ObjectNode result = NODES.objectNode();
    ArrayNode list = result.putArray("events");
    synchronized (events) {
      events.forEach(list::add);
    }
    return result;
  }

  /** A prepared call: the generated method, its request and options. */
  private record Prepared(Object service, Method method, Object request, CallOptions.Builder options) {}

  private Prepared prepare(JsonNode msg) throws Exception {
    SecinfraClient c = client();
    String rpc = msg.path("rpc").asText("");
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
    for (Object service : new Object[] {c.secrets(), c.authz(), c.identity()}) {
      try {
        Method method = service.getClass().getMethod(name, requestType, CallOptions.class);
        Method decode = requestType.getMethod("fromJson", JsonNode.class, boolean.class);
        Object request;
        try {
          request = decode.invoke(null, msg.has("request") ? msg.get("request") : NODES.objectNode(), true);
        } catch (InvocationTargetException e) {
          throw new AdapterError("request does not decode: " + e.getCause().getMessage());
        }
        return new Prepared(service, method, request, callOptions(msg.path("call_options")));
      } catch (NoSuchMethodException e) {
        // try the next service
      }
    }
    throw new Unsupported("rpc '" + rpc + "'");
  }

  private static CallOptions.Builder callOptions(JsonNode options) throws Unsupported {
    CallOptions.Builder builder = CallOptions.builder();
    for (java.util.Iterator<String> it = options.fieldNames(); it.hasNext(); ) {
      String name = it.next();
      if (!CALL_OPTIONS.contains(name)) {
        throw new Unsupported("call option " + name);
      }
    }
    if (options.hasNonNull("max_attempts")) {
      builder.maxAttempts(options.get("max_attempts").asInt());
    }
    if (options.hasNonNull("deadline_seconds")) {
      builder.deadline(seconds(options.get("deadline_seconds")));
    }
    if (options.hasNonNull("attempt_timeout_seconds")) {
      builder.attemptTimeout(seconds(options.get("attempt_timeout_seconds")));
    }
    if (options.hasNonNull("idempotency_key")) {
      builder.idempotencyKey(options.get("idempotency_key").asText());
    }
    if (options.hasNonNull("use_cache")) {
      builder.useCache(options.get("use_cache").asBoolean());
    }
    return builder;
  }

  private static Duration seconds(JsonNode value) {
    return Duration.ofNanos(Math.round(value.asDouble() * 1e9));
  }

  private ObjectNode call(JsonNode msg) throws Exception {
    return run(prepare(msg));
  }

  private ObjectNode run(Prepared prepared) throws Exception {
    MetaCapture capture = new MetaCapture();
    CallOptions options = prepared.options().capture(capture).build();
    Object response;
    try {
      response = prepared.method().invoke(prepared.service(), prepared.request(), options);
    } catch (InvocationTargetException e) {
      if (e.getCause() instanceof SecinfraException) {
        ObjectNode outcome = NODES.objectNode();
        outcome.put("ok", false);
        outcome.set("error", errorJson((SecinfraException) e.getCause()));
        return outcome;
      }
      if (e.getCause() instanceof Exception) {
        throw (Exception) e.getCause();
      }
      throw e;
    }
    JsonNode result = (JsonNode) response.getClass().getMethod("toJson").invoke(response);
    return ok(result, meta(capture.last()));
  }

  private static JsonNode meta(ResponseMeta meta) {
    if (meta == null) {
      return null;
    }
    ObjectNode json = NODES.objectNode();
    json.put("from_cache", meta.fromCache());
    json.put("stale", meta.stale());
    json.put("attempts", meta.attempts());
    if (meta.requestId() != null) {
      json.put("request_id", meta.requestId());
    } else {
      json.putNull("request_id");
    }
    if (meta.status() != null) {
      json.put("status", meta.status());
    } else {
      json.putNull("status");
    }
    return json;
  }

  private ObjectNode concurrent(JsonNode msg) throws Exception {
    int count = msg.path("count").asInt(0);
    if (count < 1 || count > 256) {
      throw new AdapterError("count must be from 1 to 256");
    }
    Prepared prepared = prepare(msg);
    ObjectNode[] outcomes = new ObjectNode[count];
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
                  ObjectNode failed = NODES.objectNode();
                  failed.put("ok", false);
                  ObjectNode error = failed.putObject("error");
                  error.put("type", "AdapterError");
                  error.put("message", e.getClass().getSimpleName() + ": " + e.getMessage());
                  outcomes[index] = failed;
                } finally {
                  done.countDown();
                }
              });
      thread.setDaemon(true);
      thread.start();
    }
    done.await();
    ObjectNode result = NODES.objectNode();
    ArrayNode list = result.putArray("results");
    for (ObjectNode outcome : outcomes) {
      list.add(outcome);
    }
    return result;
  }

  private static ObjectNode errorJson(SecinfraException e) {
    String type = "InternalError";
    for (Map.Entry<Class<?>, String> family : FAMILIES) {
      if (family.getKey().isInstance(e)) {
        type = family.getValue();
        break;
      }
    }
    ObjectNode json = NODES.objectNode();
    json.put("type", type);
    json.put("code", e.code());
    json.put("message", e.getMessage());
    if (e.status() != null) {
      json.put("status", e.status());
    } else {
      json.putNull("status");
    }
    if (e.requestId() != null) {
      json.put("request_id", e.requestId());
    } else {
      json.putNull("request_id");
    }
    json.put("retryable", e.retryable());
    if (e.retryAfter() != null) {
      json.put("retry_after", e.retryAfter());
    } else {
      json.putNull("retry_after");
    }
    json.put("attempts", e.attempts());
    return json;
  }

}
