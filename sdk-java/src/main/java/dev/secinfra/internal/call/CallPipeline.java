package dev.secinfra.internal.call;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.RetryBudget;
import dev.secinfra.RetryPolicy;
import dev.secinfra.TimeSource;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.IdentityExpiredException;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.TransportException;
import dev.secinfra.internal.Errors;
import dev.secinfra.internal.cache.CacheControl;
import dev.secinfra.internal.cache.ResponseCache;
import dev.secinfra.internal.cache.SingleFlight;
import dev.secinfra.internal.endpoints.EndpointSet;
import dev.secinfra.internal.observe.Observers;
import dev.secinfra.internal.retry.Retry;
import dev.secinfra.internal.transport.HttpTransport;
import dev.secinfra.internal.transport.Tls;
import dev.secinfra.observe.AttemptFinished;
import dev.secinfra.observe.AttemptStarted;
import dev.secinfra.observe.CacheLookup;
import dev.secinfra.observe.CacheResult;
import dev.secinfra.observe.CallFinished;
import dev.secinfra.observe.TraceContext;
import dev.secinfra.rpc.Auth;
import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.Idempotency;
import dev.secinfra.rpc.Invoker;
import dev.secinfra.rpc.MetaCapture;
import dev.secinfra.rpc.MethodDescriptor;
import dev.secinfra.rpc.ResponseMeta;
import dev.secinfra.rpc.Wire;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.random.RandomGenerator;

/**
 * The call pipeline, the {@link Invoker} behind every generated client: options laid over the
 * client's defaults, idempotency keys (spec 4), the cache with single-flight (7), the attempts with
 * their deadline (5), each mTLS attempt after the identity gate (9.7), the retry decisions of
 * {@link Retry} paid from the budget (6), the one bundle refresh after a verification failure
 * (10.3), and invalidation after writes (7.9). The order is sdk-python's: a fresh cache entry is
 * served without a request and without asking for the identity; anything that needs a request
 * asks before each attempt, so an expired identity ends the call with {@code identity_expired}
 * before anything is sent (9.7.3), and a stale entry never masks that (7.6.3). Each attempt goes
 * to the endpoint {@link EndpointSet} chooses, and its outcome updates that endpoint's cooldown
 * (12); a move to another endpoint is an ordinary retry. It sends through {@link HttpTransport}
 * and reads answers with {@link Answers}. It notifies the client's {@link Observers} of each call,
 * its cache lookup and its attempts (spec 14.2), and sends the trace context they return (14.3).
 * Thread-safe.
 */
public final class CallPipeline implements Invoker {
  /** The code of an attempt that got no answer (spec 14.2.1: the transport failure's code). */
  private static final String TRANSPORT_FAILURE = "unavailable";

  /**
   * Client-wide settings of the pipeline.
   *
   * @param endpoints the client's endpoints and their state (one endpoint for one URL)
   * @param policy the client's retry and time-limit defaults
   * @param useCache whether cacheable calls use the cache by default
   * @param userAgent the {@code User-Agent} header
   * @param time the clocks
   * @param random the jitter source
   * @param observers the client's observers ({@link Observers#NONE} for none)
   */
  public record Settings(
      EndpointSet endpoints,
      RetryPolicy policy,
      boolean useCache,
      String userAgent,
      TimeSource time,
      RandomGenerator random,
      Observers observers) {}

  /** The metadata of a call answered from a fresh entry, without a request. */
  private static final ResponseMeta FRESH_HIT = new ResponseMeta(true, false, 0, null, null);

  /** The outcome of a call before decoding. */
  private record Result(JsonNode body, ResponseMeta meta) {}

  /** One call's settings: the client's with the call's options laid over them. */
  private record Effective(
      Retry.Policy retry, Duration deadline, Duration attemptTimeout, boolean useCache,
      boolean revalidate) {}

  /** The answer that ended a call's attempts. */
  private record Answer(
      int status, JsonNode body, HttpTransport.Outcome outcome, int attempts, String endpoint) {}

  private final Settings settings;
  /** The settings of a call without options, laid out once. */
  private final Effective defaults;
  private final RetryBudget budget;
  private final ResponseCache cache;
  private final SingleFlight<Result> flights;
  private final Executor asyncExecutor;
  private volatile HttpTransport transport;
  private volatile IdentityGate identity;
  private volatile boolean closed;

  /**
   * A pipeline; {@link #attach} completes it.
   *
   * @param settings client-wide settings
   * @param budget the client's retry budget
   * @param cache the client's cache
   * @param asyncExecutor runs the asynchronous variants
   */
  public CallPipeline(
      Settings settings, RetryBudget budget, ResponseCache cache, Executor asyncExecutor) {
    this.settings = settings;
    this.defaults = effective(CallOptions.DEFAULTS);
    this.budget = budget;
    this.cache = cache;
    this.flights = new SingleFlight<>(settings.time()::nanoTime);
    this.asyncExecutor = asyncExecutor;
  }

  /**
   * Connects the transport and the identity source (which itself calls through this pipeline).
   *
   * @param transport the transport
   * @param identity what mTLS calls wait on, and what refreshes the bundle
   */
  public void attach(HttpTransport transport, IdentityGate identity) {
    this.transport = transport;
    this.identity = identity;
  }

  @Override
  public <T> T invoke(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode) {
    Observers observers = settings.observers();
    long call =
        observers.none() ? 0 : observers.callStarted(method.fullName(), method.idempotency());
    ResponseMeta meta = null;
    String code = null;
    try {
      if (closed) {
        throw Errors.transport("secinfra: client: the client is closed", false, 0, null);
      }
      CallOptions opts = options == null ? CallOptions.DEFAULTS : options;
      MetaCapture capture = opts.capture();
      Result result;
      try {
        result = execute(call, method, request, opts);
      } catch (SecinfraException e) {
        if (capture != null) {
          capture.record(meta(e));
        }
        throw e;
      }
      if (capture != null) {
        capture.record(result.meta());
      }
      meta = result.meta();
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
                null,
                result.meta().endpoint()),
            e);
      }
    } catch (SecinfraException e) {
      code = e.code();
      meta = meta(e);
      throw e;
    } catch (RuntimeException | Error e) {
      code = "internal";
      meta = meta == null ? new ResponseMeta(false, false, 0, null, null) : meta;
      throw e;
    } finally {
      if (!observers.none()) {
        observers.callFinished(new CallFinished(call, method.fullName(), code, meta));
      }
    }
  }

  /** The metadata of a failed call, as {@link MetaCapture} records it. */
  private static ResponseMeta meta(SecinfraException e) {
    return new ResponseMeta(false, false, e.attempts(), e.requestId(), e.status(), e.endpoint());
  }

  @Override
  public <T> CompletableFuture<T> invokeAsync(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode) {
    try {
      return CompletableFuture.supplyAsync(
          () -> invoke(method, request, options, decode), asyncExecutor);
    } catch (RejectedExecutionException e) {
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
        new Retry.Policy(
            o.maxAttempts() != null ? o.maxAttempts() : p.maxAttempts(),
            o.baseBackoff() != null ? o.baseBackoff() : p.baseBackoff(),
            o.maxBackoff() != null ? o.maxBackoff() : p.maxBackoff(),
            o.maxRetryAfter() != null ? o.maxRetryAfter() : p.maxRetryAfter()),
        o.deadline() != null ? o.deadline() : p.deadline(),
        o.attemptTimeout() != null ? o.attemptTimeout() : p.attemptTimeout(),
        o.useCache() != null ? o.useCache() : settings.useCache(),
        o.revalidate());
  }

  private Result execute(long call, MethodDescriptor method, ObjectNode request, CallOptions opts) {
    Effective eff = opts == CallOptions.DEFAULTS ? defaults : effective(opts);
    long deadline = settings.time().nanoTime() + eff.deadline().toNanos();
    String key = null;
    if (method.idempotency() != Idempotency.READ_ONLY) {
      key = opts.idempotencyKey() != null ? opts.idempotencyKey() : UUID.randomUUID().toString();
    }
    if (method.cache() != null && eff.useCache()) {
      return cached(call, method, request, eff, deadline);
    }
    Answer answer;
    try {
      answer = send(call, method, request, key, eff, deadline, null);
    } catch (SecinfraException e) {
      // Unknown only when a request may have gone out (7.9.3): not when the call ended before its
      // first attempt, waiting for an identity.
      boolean unknownOutcome =
          (e instanceof TransportException && e.attempts() > 0)
              || (e.status() != null && e.status() >= 500);
      if (unknownOutcome) {
        invalidate(method, request, null);
      }
      throw e;
    }
    invalidate(method, request, answer.body());
    return new Result(
        answer.body(),
        new ResponseMeta(
            false,
            false,
            answer.attempts(),
            answer.outcome().header("Request-Id"),
            answer.status(),
            answer.endpoint()));
  }

  private void invalidate(MethodDescriptor method, ObjectNode request, JsonNode body) {
    if (method.invalidates() == null) {
      return;
    }
    String family = method.invalidates().resource();
    String field = method.invalidates().keyField();
    cache.invalidate(family, field.isEmpty() ? null : RequestEncoder.text(request.get(field)));
    if (body != null) {
      JsonNode revision = body.get("revision");
      if (revision != null && revision.isTextual() && !revision.textValue().isEmpty()) {
        cache.mark(family, revision.textValue());
      }
    }
  }

  // ---- cache ----------------------------------------------------------------------------------

  private Result cached(
      long call, MethodDescriptor method, ObjectNode request, Effective eff, long deadline) {
    ResponseCache.Key cacheKey = ResponseCache.key(method.service(), method.name(), request);
    long now = settings.time().nanoTime();
    ResponseCache.Entry entry = cache.lookup(cacheKey, now);
    if (entry != null && entry.fresh(now) && !eff.revalidate()) {
      observeCache(call, method, CacheResult.HIT);
      return new Result(entry.body(), FRESH_HIT);
    }
    observeCache(call, method, entry == null ? CacheResult.MISS : CacheResult.REVALIDATE);
    // A revalidation must reach the server: it never shares a flight that may not (7.12.2).
    String flight = eff.revalidate() ? cacheKey.text() + "\u0000revalidate" : cacheKey.text();
    return flights.run(flight, deadline, () -> fetch(call, method, request, eff, deadline, cacheKey));
  }

  private void observeCache(long call, MethodDescriptor method, CacheResult result) {
    if (!settings.observers().none()) {
      settings.observers().cache(new CacheLookup(call, method.fullName(), result));
    }
  }

  private Result fetch(
      long call,
      MethodDescriptor method,
      ObjectNode request,
      Effective eff,
      long deadline,
      ResponseCache.Key cacheKey) {
    long now = settings.time().nanoTime();
    ResponseCache.Entry entry = cache.lookup(cacheKey, now);
    if (entry != null && entry.fresh(now) && !eff.revalidate()) {
      return new Result(entry.body(), FRESH_HIT);
    }
    String family = method.cache().resource();
    String keyField = method.cache().keyField();
    String resourceKey = keyField.isEmpty() ? "" : RequestEncoder.text(request.get(keyField));
    long generation = cache.generation(family);
    Answer answer;
    try {
      answer =
          send(call, method, request, null, eff, deadline, entry == null ? null : entry.etag());
    } catch (SecinfraException e) {
      if (entry != null
          && serverFailed(e)
          && !eff.revalidate()
          && entry.usableOnError(settings.time().nanoTime())) {
        return new Result(
            entry.body(),
            new ResponseMeta(true, true, e.attempts(), e.requestId(), e.status(), e.endpoint()));
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
      } else if (etag == null || etag.equals(entry.etag())) {
        CacheControl kept = controlHeader != null ? control : entry.control();
        cache.store(
            cacheKey,
            new ResponseCache.Entry(
                entry.body(), entry.etag(), kept, received - ageNanos, entry.revision(), family,
                resourceKey, requestId, 304),
            generation);
      }
      return new Result(
          entry.body(),
          new ResponseMeta(true, false, answer.attempts(), requestId, 304, answer.endpoint()));
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
        body,
        new ResponseMeta(
            false, false, answer.attempts(), requestId, answer.status(), answer.endpoint()));
  }

  /**
   * Whether {@code e} means the server could not answer, so that stale-if-error applies (spec
   * 7.6.1): never when no request was made, as when the call ended waiting for an identity
   * ({@code identity_expired}, or its deadline before the first attempt; 7.6.3).
   */
  private static boolean serverFailed(SecinfraException e) {
    if (e instanceof IdentityExpiredException || e.attempts() == 0) {
      return false;
    }
    return e instanceof TransportException || (e.status() != null && e.status() >= 500);
  }

  // ---- one call's attempts ----------------------------------------------------------------------

  private Answer send(
      long call,
      MethodDescriptor method,
      ObjectNode request,
      String idempotencyKey,
      Effective eff,
      long deadline,
      String ifNoneMatch) {
    EndpointSet.Endpoint[] last = new EndpointSet.Endpoint[1];
    String[] answeredId = new String[1];
    try {
      return attempts(
          call, method, request, idempotencyKey, eff, deadline, ifNoneMatch, last, answeredId);
    } catch (SecinfraException e) {
      SecinfraException error = Errors.answeredBy(e, answeredId[0]);
      throw last[0] == null ? error : Errors.atEndpoint(error, last[0].url());
    }
  }

  /**
   * A call's attempts; {@code last[0]} is the endpoint of the latest attempt, {@code
   * answeredId[0]} the {@code Request-Id} of the latest attempt that got an answer (spec 11.5).
   */
  private Answer attempts(
      long call,
      MethodDescriptor method,
      ObjectNode request,
      String idempotencyKey,
      Effective eff,
      long deadline,
      String ifNoneMatch,
      EndpointSet.Endpoint[] last,
      String[] answeredId) {
    EndpointSet endpoints = settings.endpoints();
    String target = RequestEncoder.target(method, request);
    byte[] body = RequestEncoder.body(method, request);
    boolean mtls = method.auth() == Auth.MTLS;
    boolean refreshed = false;
    EndpointSet.Endpoint repeatOn = null;
    int attempt = 0;
    while (true) {
      attempt++;
      long start = settings.time().nanoTime();
      long remaining = deadline - start;
      if (remaining <= 0) {
        throw Errors.deadline(deadlineMessage(method, eff, attempt - 1), attempt - 1, null);
      }
      if (mtls) {
        // Asked before each attempt, within the deadline (9.7.2): an identity that expired since
        // the last attempt ends the call with identity_expired before the next is sent (9.7.3).
        awaitIdentity(deadline, attempt - 1);
        remaining = deadline - settings.time().nanoTime();
        if (remaining <= 0) {
          throw Errors.deadline(deadlineMessage(method, eff, attempt - 1), attempt - 1, null);
        }
      }
      EndpointSet.Endpoint endpoint = repeatOn != null ? repeatOn : endpoints.choose();
      repeatOn = null;
      last[0] = endpoint;
      long timeout = Math.min(eff.attemptTimeout().toNanos(), remaining);
      Map<String, String> headers = headers(attempt, idempotencyKey, body != null, ifNoneMatch);
      traceContext(call, method, attempt, endpoint, headers);
      HttpTransport.Outcome outcome =
          transport.send(
              mtls, method.httpMethod(), endpoint.resolve(target), body, headers, timeout);
      remaining = deadline - settings.time().nanoTime();
      HttpTransport.Failure failure = outcome.failure();
      if (failure == null) {
        int status = outcome.status();
        answeredId[0] = outcome.header("Request-Id");
        endpoints.record(endpoint, EndpointSet.isEndpointFailure(status));
        if (status >= 200 && status < 300) {
          JsonNode parsed;
          try {
            parsed = Answers.body(method, outcome, attempt);
          } catch (SecinfraException e) {
            attemptFinished(call, method, attempt, endpoint, status, e.code());
            throw e;
          }
          attemptFinished(call, method, attempt, endpoint, status, null);
          budget.onSuccess();
          return new Answer(status, parsed, outcome, attempt, endpoint.url());
        }
        if (status == 304 && ifNoneMatch != null) {
          attemptFinished(call, method, attempt, endpoint, status, null);
          budget.onSuccess();
          return new Answer(status, null, outcome, attempt, endpoint.url());
        }
        if (status < 400) {
          SecinfraException unexpected = Answers.unexpected(method, outcome, attempt);
          attemptFinished(call, method, attempt, endpoint, status, unexpected.code());
          throw unexpected;
        }
        if (!settings.observers().none()) {
          String code = Answers.decodeError(method, outcome, attempt, false, null, null).code();
          attemptFinished(call, method, attempt, endpoint, status, code);
        }
        Retry.Decision decision =
            Retry.decide(
                Retry.Outcome.response(
                    status, outcome.header("Retry-After"), outcome.header("Secinfra-Should-Retry")),
                input(method, eff, idempotencyKey, attempt, remaining));
        if (!decision.retry()) {
          throw responseError(method, outcome, attempt, decision);
        }
        if (!budget.tryRetry(false)) {
          throw Answers.decodeError(
              method, outcome, attempt, true, decision.retryAfter(), "retry budget spent");
        }
        sleep(decision.delayNanos(), attempt);
        continue;
      }
      attemptFinished(call, method, attempt, endpoint, null, TRANSPORT_FAILURE);
      if (failure.verification() != null) {
        // Never an endpoint failure, never a move (12.6.1): refresh the bundle (a call like any
        // other, which the unchanged endpoint state normally sends here too) and repeat the
        // attempt on this endpoint (12.6.2).
        if (failure.verification().check() == Tls.VerificationFailure.Check.CHAIN
            && !refreshed
            && !method.name().equals("GetTrustBundle")) {
          refreshed = true;
          if (identity.refreshBundleNow(deadline)) {
            attempt--;
            repeatOn = endpoint;
            continue;
          }
        }
        throw Errors.transport(failure.verification().getMessage(), false, attempt, failure.cause());
      }
      endpoints.record(endpoint, true);
      Retry.Decision decision =
          Retry.decide(
              Retry.Outcome.failure(failure.beforeSend(), failure.timedOut()),
              input(method, eff, idempotencyKey, attempt, remaining));
      if (!decision.retry()) {
        throw failureError(method, eff, failure, attempt, decision);
      }
      if (!budget.tryRetry(failure.timedOut())) {
        throw Errors.transport(
            "secinfra: transport: " + method.name() + " failed: " + describe(failure.cause())
                + " (retry budget spent)",
            true, attempt, failure.cause());
      }
      sleep(decision.delayNanos(), attempt);
    }
  }

  /**
   * Notifies {@code attempt_started} and adds the trace context the observers return (spec 14.3):
   * without an observer nothing is added (14.3.3).
   */
  private void traceContext(
      long call,
      MethodDescriptor method,
      int attempt,
      EndpointSet.Endpoint endpoint,
      Map<String, String> headers) {
    Observers observers = settings.observers();
    if (observers.none()) {
      return;
    }
    TraceContext trace =
        observers.attemptStarted(
            new AttemptStarted(
                call, method.fullName(), attempt, endpoint.url(), method.httpMethod()));
    if (trace != null) {
      headers.put("traceparent", trace.traceparent());
      if (trace.tracestate() != null) {
        headers.put("tracestate", trace.tracestate());
      }
    }
  }

  private void attemptFinished(
      long call,
      MethodDescriptor method,
      int attempt,
      EndpointSet.Endpoint endpoint,
      Integer status,
      String code) {
    Observers observers = settings.observers();
    if (!observers.none()) {
      observers.attemptFinished(
          new AttemptFinished(call, method.fullName(), attempt, endpoint.url(), status, code));
    }
  }

  /**
   * Waits for the identity the next attempt presents; its errors count the attempts made so far.
   *
   * @param deadline the call's deadline
   * @param attempts the attempts already made
   */
  private void awaitIdentity(long deadline, int attempts) {
    try {
      identity.awaitIdentity(deadline);
    } catch (SecinfraException e) {
      throw e.attempts() == attempts ? e : Errors.withAttempts(e, attempts);
    }
  }

  private Map<String, String> headers(
      int attempt, String idempotencyKey, boolean hasBody, String ifNoneMatch) {
    Map<String, String> headers = new LinkedHashMap<>();
    headers.put("User-Agent", settings.userAgent());
    headers.put("Accept", "application/json");
    headers.put("Secinfra-Attempt", Integer.toString(attempt));
    if (idempotencyKey != null) {
      headers.put("Idempotency-Key", idempotencyKey);
    }
    if (hasBody) {
      headers.put("Content-Type", "application/json");
    }
    if (ifNoneMatch != null) {
      headers.put("If-None-Match", ifNoneMatch);
    }
    return headers;
  }

  private Retry.Input input(
      MethodDescriptor method, Effective eff, String idempotencyKey, int attempt, long remaining) {
    return new Retry.Input(
        eff.retry(),
        method.idempotency(),
        idempotencyKey != null,
        attempt,
        remaining,
        settings.time().now(),
        settings.random()::nextDouble);
  }

  /** The error that ends a call whose last attempt was answered with an error status. */
  private static SecinfraException responseError(
      MethodDescriptor method, HttpTransport.Outcome outcome, int attempt, Retry.Decision decision) {
    Double retryAfter = decision.retryAfter();
    switch (decision.reason()) {
      case ATTEMPTS_EXHAUSTED:
        return Answers.decodeError(method, outcome, attempt, true, retryAfter, "attempts exhausted");
      case DEADLINE_REACHED:
        return Answers.decodeError(method, outcome, attempt, true, retryAfter, "deadline reached");
      case BACKOFF_PAST_DEADLINE:
        return Answers.decodeError(
            method, outcome, attempt, true, null, "the next backoff would pass the deadline");
      case RETRY_AFTER_TOO_LONG:
        return Answers.retryAfterRefused(method, outcome, attempt, retryAfter, true);
      case RETRY_AFTER_PAST_DEADLINE:
        return Answers.retryAfterRefused(method, outcome, attempt, retryAfter, false);
      default:
        return Answers.decodeError(method, outcome, attempt, false, retryAfter, null);
    }
  }

  /** The error that ends a call whose last attempt got no answer. */
  private static SecinfraException failureError(
      MethodDescriptor method,
      Effective eff,
      HttpTransport.Failure failure,
      int attempt,
      Retry.Decision decision) {
    String what = describe(failure.cause());
    switch (decision.reason()) {
      case UNSAFE_TO_RESEND:
        return Errors.transport(
            "secinfra: transport: " + method.name() + " failed after the request was sent: " + what,
            false, attempt, failure.cause());
      case ATTEMPTS_EXHAUSTED:
        return Errors.transport(
            "secinfra: transport: " + method.name() + " failed: " + what
                + " (attempts exhausted after " + attempt + ")",
            true, attempt, failure.cause());
      default:
        return Errors.deadline(deadlineMessage(method, eff, attempt), attempt, failure.cause());
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

  private static void sleep(long nanos, int attempts) {
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
