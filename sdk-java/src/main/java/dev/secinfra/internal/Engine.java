package dev.secinfra.internal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.MetaCapture;
import dev.secinfra.rpc.ResponseMeta;
import dev.secinfra.RetryBudget;
import dev.secinfra.RetryPolicy;
import dev.secinfra.TimeSource;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.IdentityExpiredException;
import dev.secinfra.errors.RateLimitedException;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.errors.UnavailableException;
import dev.secinfra.rpc.Invoker;
import dev.secinfra.rpc.Idempotency;
import dev.secinfra.rpc.MethodDescriptor;
import dev.secinfra.rpc.Wire;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.random.RandomGenerator;

/**
 * The call engine: request building, retries (spec 3), idempotency keys (4), deadlines (5), the
 * retry budget (6) and the cache with single-flight (7). Thread-safe.
 */
public final class Engine implements Invoker {
  /** Statuses retried whatever the idempotency. */
  private static final java.util.Set<Integer> ALWAYS_RETRIED = java.util.Set.of(408, 429, 502, 503, 504);

  /** Client-wide settings of the engine. */
  public record Settings(
      URI baseUri,
      RetryPolicy policy,
      boolean useCache,
      String userAgent,
      TimeSource time,
      RandomGenerator random) {}

  /** The outcome of a call before decoding. */
  record Result(JsonNode body, ResponseMeta meta) {}

  private record Effective(
      int maxAttempts,
      Duration baseBackoff,
      Duration maxBackoff,
      Duration maxRetryAfter,
      Duration deadline,
      Duration attemptTimeout,
      boolean useCache) {}

  private record Answer(int status, JsonNode body, HttpTransport.Outcome outcome, int attempts) {}

  private final Settings settings;
  private final RetryBudget budget;
  private final ResponseCache cache;
  private final Executor asyncExecutor;
  private final Map<String, CompletableFuture<Result>> flights = new HashMap<>();
  private volatile HttpTransport transport;
  private volatile IdentityGate identity;
  private volatile boolean closed;

  /**
   * An engine; {@link #attach} completes it.
   *
   * @param settings client-wide settings
   * @param budget the client's retry budget
   * @param cache the client's cache
   * @param asyncExecutor runs the asynchronous variants
   */
  public Engine(Settings settings, RetryBudget budget, ResponseCache cache, Executor asyncExecutor) {
    this.settings = settings;
    this.budget = budget;
    this.cache = cache;
    this.asyncExecutor = asyncExecutor;
  }

  /**
   * Connects the transport and the identity manager.
   *
   * @param transport the transport
   * @param identity the identity manager
   */
  public void attach(HttpTransport transport, IdentityGate identity) {
    this.transport = transport;
    this.identity = identity;
  }

  @Override
  public <T> T invoke(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode) {
    if (closed) {
      throw Errors.transport("secinfra: client: the client is closed", false, 0, null);
    }
    CallOptions opts = options == null ? CallOptions.DEFAULTS : options;
    MetaCapture capture = opts.capture();
    Result result;
    try {
      result = execute(method, request, opts);
    } catch (SecinfraException e) {
      if (capture != null) {
        capture.record(new ResponseMeta(false, false, e.attempts(), e.requestId(), e.status()));
      }
      throw e;
    }
    if (capture != null) {
      capture.record(result.meta());
    }
    try {
      return decode.apply(result.body());
    } catch (Wire.DecodeException e) {
      throw new TransportException(
          new ErrorInfo(
              "unavailable",
              "secinfra: transport: "
                  + method.name()
                  + " answered a body that does not decode: "
                  + e.path(),
              result.meta().status(),
              result.meta().requestId(),
              false,
              null,
              result.meta().attempts(),
              null),
          e);
    }
  }

  @Override
  public <T> CompletableFuture<T> invokeAsync(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode) {
    try {
      return CompletableFuture.supplyAsync(
          () -> invoke(method, request, options, decode), asyncExecutor);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      return CompletableFuture.failedFuture(
          Errors.transport("secinfra: client: the client is closed", false, 0, e));
    }
  }

  /** Refuses every later call: the client was closed. */
  public void close() {
    closed = true;
  }

  private Effective effective(CallOptions o) {
    RetryPolicy p = settings.policy();
    return new Effective(
        o.maxAttempts() != null ? o.maxAttempts() : p.maxAttempts(),
        o.baseBackoff() != null ? o.baseBackoff() : p.baseBackoff(),
        o.maxBackoff() != null ? o.maxBackoff() : p.maxBackoff(),
        o.maxRetryAfter() != null ? o.maxRetryAfter() : p.maxRetryAfter(),
        o.deadline() != null ? o.deadline() : p.deadline(),
        o.attemptTimeout() != null ? o.attemptTimeout() : p.attemptTimeout(),
        o.useCache() != null ? o.useCache() : settings.useCache());
  }

  private Result execute(MethodDescriptor method, ObjectNode request, CallOptions opts) {
    Effective eff = effective(opts);
    long deadline = settings.time().nanoTime() + eff.deadline().toNanos();
    if (method.auth() == dev.secinfra.rpc.Auth.MTLS) {
      identity.awaitIdentity(deadline);
    }
    String key = null;
    if (method.idempotency() != Idempotency.READ_ONLY) {
      key = opts.idempotencyKey() != null ? opts.idempotencyKey() : UUID.randomUUID().toString();
    }
    if (method.cache() != null && eff.useCache()) {
      return cached(method, request, eff, deadline);
    }
    Answer answer;
    try {
      answer = send(method, request, key, eff, deadline, null);
    } catch (SecinfraException e) {
      boolean unknownOutcome =
          e instanceof TransportException || (e.status() != null && e.status() >= 500);
      if (unknownOutcome) {
        invalidate(method, request, null);
      }
      throw e;
    }
    invalidate(method, request, answer.body());
    return new Result(
        answer.body(),
        new ResponseMeta(
            false, false, answer.attempts(), answer.outcome().header("Request-Id"), answer.status()));
  }

  private void invalidate(MethodDescriptor method, ObjectNode request, JsonNode body) {
    if (method.invalidates() == null) {
      return;
    }
    String family = method.invalidates().resource();
    String field = method.invalidates().keyField();
    cache.invalidate(family, field.isEmpty() ? null : text(request.get(field)));
    if (body != null) {
      JsonNode revision = body.get("revision");
      if (revision != null && revision.isTextual() && !revision.textValue().isEmpty()) {
        cache.mark(family, revision.textValue());
      }
    }
  }

  // ---- cache ----------------------------------------------------------------------------------

  private Result cached(MethodDescriptor method, ObjectNode request, Effective eff, long deadline) {
    String cacheKey = CanonicalJson.cacheKey(method.fullName(), request);
    long now = settings.time().nanoTime();
    ResponseCache.Entry entry = cache.lookup(cacheKey, now);
    if (entry != null && entry.fresh(now)) {
      return new Result(entry.body, new ResponseMeta(true, false, 0, null, null));
    }
    CompletableFuture<Result> flight;
    boolean leader = false;
    synchronized (flights) {
      flight = flights.get(cacheKey);
      if (flight == null) {
        flight = new CompletableFuture<>();
        flights.put(cacheKey, flight);
        leader = true;
      }
    }
    if (!leader) {
      return await(flight, deadline);
    }
    try {
      Result result = fetch(method, request, eff, deadline, cacheKey);
      flight.complete(result);
      return result;
    } catch (RuntimeException e) {
      flight.completeExceptionally(e);
      throw e;
    } finally {
      synchronized (flights) {
        flights.remove(cacheKey, flight);
      }
    }
  }

  private Result await(CompletableFuture<Result> flight, long deadline) {
    long wait = deadline - settings.time().nanoTime();
    try {
      if (wait <= 0) {
        throw new TimeoutException();
      }
      return flight.get(wait, TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      throw Errors.deadline(
          "secinfra: cache: deadline exceeded while waiting for a shared request", 0, null);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof SecinfraException) {
        throw (SecinfraException) e.getCause();
      }
      throw Errors.transport("secinfra: cache: shared request failed", false, 0, e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Errors.transport("secinfra: cache: interrupted", false, 0, e);
    }
  }

  private Result fetch(
      MethodDescriptor method, ObjectNode request, Effective eff, long deadline, String cacheKey) {
    long now = settings.time().nanoTime();
    ResponseCache.Entry entry = cache.lookup(cacheKey, now);
    if (entry != null && entry.fresh(now)) {
      return new Result(entry.body, new ResponseMeta(true, false, 0, null, null));
    }
    String family = method.cache().resource();
    String keyField = method.cache().keyField();
    String resourceKey = keyField.isEmpty() ? "" : text(request.get(keyField));
    long generation = cache.generation(family);
    Answer answer;
    try {
      answer = send(method, request, null, eff, deadline, entry == null ? null : entry.etag);
    } catch (SecinfraException e) {
      boolean serverFailed =
          !(e instanceof IdentityExpiredException)
              && (e instanceof TransportException || (e.status() != null && e.status() >= 500));
      if (entry != null && serverFailed && entry.usableOnError(settings.time().nanoTime())) {
        return new Result(entry.body, new ResponseMeta(true, true, e.attempts(), e.requestId(), e.status()));
      }
      throw e;
    }
    HttpTransport.Outcome outcome = answer.outcome();
    long received = settings.time().nanoTime();
    String requestId = outcome.header("Request-Id");
    String controlHeader = outcome.header("Cache-Control");
    CacheControl control = CacheControl.parse(controlHeader);
    long ageNanos = CacheControl.delta(outcome.header("Age")) * 1_000_000_000L;
    String etag = outcome.header("ETag");
    if (answer.status() == 304) {
      if (control.noStore()) {
        cache.drop(cacheKey);
      } else if (etag == null || etag.equals(entry.etag)) {
        CacheControl kept = controlHeader != null ? control : entry.control;
        cache.store(
            cacheKey,
            new ResponseCache.Entry(
                entry.body, entry.etag, kept, received - ageNanos, entry.revision, family,
                resourceKey, requestId, 304),
            generation);
      }
      return new Result(entry.body, new ResponseMeta(true, false, answer.attempts(), requestId, 304));
    }
    JsonNode body = answer.body();
    if (control.noStore()) {
      cache.drop(cacheKey);
    } else if (control.maxAgeSeconds() > 0 || control.staleIfErrorSeconds() > 0 || etag != null) {
      JsonNode revision = body.get("revision");
      cache.store(
          cacheKey,
          new ResponseCache.Entry(
              body, etag, control, received - ageNanos,
              revision != null && revision.isTextual() ? revision.textValue() : null,
              family, resourceKey, requestId, answer.status()),
          generation);
    }
    return new Result(
        body, new ResponseMeta(false, false, answer.attempts(), requestId, answer.status()));
  }

  // ---- one call's attempts ----------------------------------------------------------------------

  private Answer send(
      MethodDescriptor method,
      ObjectNode request,
      String idempotencyKey,
      Effective eff,
      long deadline,
      String ifNoneMatch) {
    URI uri = uri(method, request);
    byte[] body = body(method, request);
    boolean mtls = method.auth() == dev.secinfra.rpc.Auth.MTLS;
    boolean refreshed = false;
    int attempt = 0;
    while (true) {
      attempt++;
      long start = settings.time().nanoTime();
      long remaining = deadline - start;
      if (remaining <= 0) {
        throw Errors.deadline(deadlineMessage(method, eff, attempt - 1), attempt - 1, null);
      }
      long timeout = Math.min(eff.attemptTimeout().toNanos(), remaining);
      Map<String, String> headers = new LinkedHashMap<>();
      headers.put("User-Agent", settings.userAgent());
      headers.put("Accept", "application/json");
      headers.put("Secinfra-Attempt", Integer.toString(attempt));
      if (idempotencyKey != null) {
        headers.put("Idempotency-Key", idempotencyKey);
      }
      if (body != null) {
        headers.put("Content-Type", "application/json");
      }
      if (ifNoneMatch != null) {
        headers.put("If-None-Match", ifNoneMatch);
      }
      HttpTransport.Outcome outcome =
          transport.send(mtls, method.httpMethod(), uri, body, headers, timeout);
      long after = settings.time().nanoTime();
      remaining = deadline - after;
      if (outcome.failure() == null) {
        int status = outcome.status();
        if (status >= 200 && status < 300) {
          JsonNode parsed = parse(method, outcome, attempt);
          budget.onSuccess();
          return new Answer(status, parsed, outcome, attempt);
        }
        if (status == 304 && ifNoneMatch != null) {
          budget.onSuccess();
          return new Answer(status, null, outcome, attempt);
        }
        if (status < 400) {
          throw Errors.api(
              new ErrorInfo(
                  "internal",
                  "secinfra: transport: " + method.name() + " answered unexpected HTTP " + status,
                  status, outcome.header("Request-Id"), false, null, attempt, null),
              null);
        }
        boolean retryable = retryable(status, outcome.header("Secinfra-Should-Retry"), method);
        Double retryAfter = RetryAfter.parse(outcome.header("Retry-After"), settings.time().now());
        if (!retryable) {
          throw apiError(method, outcome, attempt, false, retryAfter, null);
        }
        if (attempt >= eff.maxAttempts()) {
          throw apiError(method, outcome, attempt, true, retryAfter, "attempts exhausted");
        }
        if (remaining <= 0) {
          throw apiError(method, outcome, attempt, true, retryAfter, "deadline reached");
        }
        long wait;
        if (retryAfter != null) {
          double capSeconds = eff.maxRetryAfter().toNanos() / 1e9;
          if (retryAfter > capSeconds || retryAfter * 1e9 >= remaining) {
            throw retryAfterError(method, outcome, attempt, retryAfter, retryAfter > capSeconds);
          }
          wait = (long) (retryAfter * 1e9);
        } else {
          wait = Backoff.jitterNanos(attempt, eff.baseBackoff(), eff.maxBackoff(), settings.random());
          if (wait >= remaining) {
            throw apiError(method, outcome, attempt, true, null, "the next backoff would pass the deadline");
          }
        }
        if (!budget.tryRetry(false)) {
          throw apiError(method, outcome, attempt, true, retryAfter, "retry budget spent");
        }
        sleep(wait, attempt);
        continue;
      }
      HttpTransport.Failure failure = outcome.failure();
      if (failure.verification() != null) {
        if (failure.verification().check() == Tls.VerificationFailure.Check.CHAIN
            && !refreshed
            && !method.name().equals("GetTrustBundle")) {
          refreshed = true;
          if (identity.refreshBundleNow(deadline)) {
            attempt--;
            continue;
          }
        }
        throw Errors.transport(failure.verification().getMessage(), false, attempt, failure.cause());
      }
      String what = describe(failure.cause());
      if (failure.timedOut() && remaining <= 0) {
        throw Errors.deadline(deadlineMessage(method, eff, attempt), attempt, failure.cause());
      }
      boolean retryable =
          failure.beforeSend() || method.idempotency().safeToRepeat() || idempotencyKey != null;
      if (!retryable) {
        throw Errors.transport(
            "secinfra: transport: " + method.name() + " failed after the request was sent: " + what,
            false, attempt, failure.cause());
      }
      if (attempt >= eff.maxAttempts()) {
        throw Errors.transport(
            "secinfra: transport: " + method.name() + " failed: " + what + " (attempts exhausted after "
                + attempt + ")",
            true, attempt, failure.cause());
      }
      if (remaining <= 0) {
        throw Errors.deadline(deadlineMessage(method, eff, attempt), attempt, failure.cause());
      }
      long wait = Backoff.jitterNanos(attempt, eff.baseBackoff(), eff.maxBackoff(), settings.random());
      if (wait >= remaining) {
        throw Errors.deadline(deadlineMessage(method, eff, attempt), attempt, failure.cause());
      }
      if (!budget.tryRetry(failure.timedOut())) {
        throw Errors.transport(
            "secinfra: transport: " + method.name() + " failed: " + what + " (retry budget spent)",
            true, attempt, failure.cause());
      }
      sleep(wait, attempt);
    }
  }

  private static String deadlineMessage(MethodDescriptor method, Effective eff, int attempts) {
    return "secinfra: retry: "
        + method.name()
        + " passed its deadline of "
        + eff.deadline().toMillis() / 1000.0
        + " s after "
        + attempts
        + (attempts == 1 ? " attempt" : " attempts");
  }

  private static String describe(Throwable cause) {
    if (cause == null) {
      return "no response";
    }
    if (cause instanceof TimeoutException || cause instanceof java.net.http.HttpTimeoutException) {
      return "the attempt timed out";
    }
    String message = cause.getMessage();
    return cause.getClass().getSimpleName() + (message == null ? "" : ": " + message);
  }

  private void sleep(long nanos, int attempts) {
    if (nanos <= 0) {
      return;
    }
    try {
      TimeUnit.NANOSECONDS.sleep(nanos);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Errors.transport("secinfra: retry: interrupted while waiting to retry", false, attempts, e);
    }
  }

  private static boolean retryable(int status, String shouldRetry, MethodDescriptor method) {
    if (shouldRetry != null) {
      String verdict = shouldRetry.strip().toLowerCase(Locale.ROOT);
      if (verdict.equals("false")) {
        return false;
      }
      if (verdict.equals("true")) {
        return true;
      }
    }
    if (ALWAYS_RETRIED.contains(status)) {
      return true;
    }
    return status == 500 && method.idempotency().safeToRepeat();
  }

  private JsonNode parse(MethodDescriptor method, HttpTransport.Outcome outcome, int attempt) {
    byte[] bytes = outcome.body();
    if (bytes == null || bytes.length == 0) {
      return Wire.object();
    }
    try {
      JsonNode node = Wire.MAPPER.readTree(bytes);
      if (node == null || !node.isObject()) {
        throw new IOException("not a JSON object");
      }
      return node;
    } catch (IOException e) {
      throw new TransportException(
          new ErrorInfo(
              "unavailable",
              "secinfra: transport: " + method.name() + " answered HTTP " + outcome.status()
                  + " with a body that is not JSON",
              outcome.status(), outcome.header("Request-Id"), false, null, attempt, null),
          null);
    }
  }

  private ErrorInfo responseInfo(
      MethodDescriptor method,
      HttpTransport.Outcome outcome,
      int attempt,
      boolean retryable,
      Double retryAfter,
      String fallbackMessage) {
    int status = outcome.status();
    String code = null;
    String message = null;
    String envelopeId = null;
    Map<String, Object> details = null;
    try {
      byte[] bytes = outcome.body();
      JsonNode root = bytes == null || bytes.length == 0 ? null : Wire.MAPPER.readTree(bytes);
      JsonNode error = root == null ? null : root.get("error");
      if (error != null && error.isObject() && error.path("code").isTextual()) {
        code = error.get("code").textValue();
        message = error.path("message").asText("");
        envelopeId = error.path("request_id").isTextual() ? error.get("request_id").textValue() : null;
        if (error.path("details").isObject()) {
          details = Wire.decStruct(error.get("details"), "$.error.details");
        }
      }
    } catch (IOException | RuntimeException e) {
      code = null;
    }
    if (code == null) {
      code = Errors.codeForStatus(status);
      message =
          fallbackMessage != null
              ? fallbackMessage
              : "secinfra: transport: " + method.name() + " answered HTTP " + status
                  + " without an error envelope";
    }
    String header = outcome.header("Request-Id");
    return new ErrorInfo(
        code, message, status, header != null ? header : envelopeId, retryable, retryAfter, attempt,
        details);
  }

  private SecinfraException apiError(
      MethodDescriptor method,
      HttpTransport.Outcome outcome,
      int attempt,
      boolean retryable,
      Double retryAfter,
      String why) {
    ErrorInfo info = responseInfo(method, outcome, attempt, retryable, retryAfter, null);
    if (why != null) {
      info = info.withMessage(info.message() + " (secinfra: retry: " + why + " after " + attempt
          + (attempt == 1 ? " attempt)" : " attempts)"));
    }
    return Errors.api(info, null);
  }

  private SecinfraException retryAfterError(
      MethodDescriptor method,
      HttpTransport.Outcome outcome,
      int attempt,
      double retryAfter,
      boolean beyondCap) {
    ErrorInfo base = responseInfo(method, outcome, attempt, true, retryAfter, null);
    boolean limited = outcome.status() == 429;
    String message =
        "secinfra: retry: "
            + method.name()
            + " was asked to retry after "
            + retryAfter
            + " s, "
            + (beyondCap ? "beyond max_retry_after" : "beyond the call's deadline")
            + " (server said: "
            + base.message()
            + ")";
    ErrorInfo info =
        new ErrorInfo(
            limited ? "rate_limited" : "unavailable",
            message,
            base.status(),
            base.requestId(),
            true,
            retryAfter,
            attempt,
            base.details());
    return limited ? new RateLimitedException(info, null) : new UnavailableException(info, null);
  }

  // ---- request building ---------------------------------------------------------------------------

  private URI uri(MethodDescriptor method, ObjectNode request) {
    String base = settings.baseUri().toString();
    while (base.endsWith("/")) {
      base = base.substring(0, base.length() - 1);
    }
    StringBuilder path = new StringBuilder();
    String template = method.path();
    int i = 0;
    while (i < template.length()) {
      char c = template.charAt(i);
      if (c != '{') {
        path.append(c);
        i++;
        continue;
      }
      int end = template.indexOf('}', i);
      String variable = template.substring(i + 1, end);
      boolean multi = variable.endsWith("=**");
      String field = multi ? variable.substring(0, variable.length() - 3) : variable;
      path.append(percentEncode(text(request.get(field)), multi));
      i = end + 1;
    }
    StringBuilder query = new StringBuilder();
    if (method.httpMethod().equals("GET") || method.httpMethod().equals("DELETE")) {
      for (String field : method.queryParams()) {
        JsonNode value = request.get(field);
        if (value == null || value.isNull()) {
          continue;
        }
        if (value.isArray()) {
          for (JsonNode item : value) {
            appendQuery(query, field, text(item));
          }
        } else {
          appendQuery(query, field, text(value));
        }
      }
    }
    return URI.create(base + path + (query.length() == 0 ? "" : "?" + query));
  }

  private static void appendQuery(StringBuilder query, String name, String value) {
    if (query.length() > 0) {
      query.append('&');
    }
    query
        .append(URLEncoder.encode(name, StandardCharsets.UTF_8))
        .append('=')
        .append(URLEncoder.encode(value, StandardCharsets.UTF_8));
  }

  private static byte[] body(MethodDescriptor method, ObjectNode request) {
    String verb = method.httpMethod();
    if (verb.equals("GET") || verb.equals("DELETE")) {
      return null;
    }
    ObjectNode body = Wire.object();
    for (Map.Entry<String, JsonNode> field : request.properties()) {
      if (method.bodyFields().contains(field.getKey())) {
        body.set(field.getKey(), field.getValue());
      }
    }
    try {
      return Wire.MAPPER.writeValueAsBytes(body);
    } catch (IOException e) {
      throw new IllegalStateException("secinfra: transport: request does not encode", e);
    }
  }

  static String text(JsonNode value) {
    if (value == null || value.isNull()) {
      return "";
    }
    return value.isTextual() ? value.textValue() : value.toString();
  }

  static String percentEncode(String value, boolean keepSlash) {
    StringBuilder out = new StringBuilder();
    for (byte b : value.getBytes(StandardCharsets.UTF_8)) {
      int c = b & 0xff;
      boolean unreserved =
          (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '-' || c == '.' || c == '_' || c == '~';
      if (unreserved || (keepSlash && c == '/')) {
        out.append((char) c);
      } else {
        out.append('%').append(String.format(Locale.ROOT, "%02X", c));
      }
    }
    return out.toString();
  }

  /**
   * The client's retry budget.
   *
   * @return the budget
   */
  public RetryBudget budget() {
    return budget;
  }

  /**
   * The client's cache.
   *
   * @return the cache
   */
  public ResponseCache cache() {
    return cache;
  }
}
