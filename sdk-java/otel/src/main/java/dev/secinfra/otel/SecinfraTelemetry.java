package dev.secinfra.otel;

import dev.secinfra.identity.RotationEvent;
import dev.secinfra.observe.AttemptFinished;
import dev.secinfra.observe.AttemptStarted;
import dev.secinfra.observe.CacheLookup;
import dev.secinfra.observe.CallFinished;
import dev.secinfra.observe.CallStarted;
import dev.secinfra.observe.Observer;
import dev.secinfra.observe.TraceContext;
import io.opentelemetry.api.OpenTelemetry;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * OpenTelemetry tracing and metrics for a {@link dev.secinfra.SecinfraClient} (spec 14.4, 14.5).
 *
 * <p>Its {@link #observer()} makes, for every call, a span of kind INTERNAL named by the RPC's full
 * name ({@code secinfra.v1.SecretsService/GetSecret}), child of the span current on the calling
 * thread, with {@code rpc.service} ({@code secinfra.v1.SecretsService}) and {@code rpc.method}
 * ({@code GetSecret}); for every attempt a span of kind CLIENT, child of the call's, with {@code
 * rpc.service}, {@code rpc.method}, {@code http.request.method}, {@code server.address}, {@code
 * server.port}, {@code http.response.status_code} when answered, {@code secinfra.attempt}, and
 * {@code error.type} when it failed. The attempt sends its span's context as {@code traceparent}
 * (and {@code tracestate}), so the server's span is its child. The call's span gets a {@code cache}
 * event ({@code secinfra.cache.result}: {@code hit}, {@code miss}, {@code revalidate}), and status
 * ERROR with {@code error.type} set to the error's code when the call failed.
 *
 * <p>The same observer counts (spec 14.5.4) {@code secinfra.client.calls} ({@code rpc.service},
 * {@code rpc.method}, {@code error.type} when the call failed), {@code secinfra.client.attempts}
 * ({@code rpc.service}, {@code rpc.method}, {@code http.response.status_code} when answered, {@code
 * error.type} when the attempt failed) and {@code secinfra.client.cache.lookups} ({@code
 * rpc.service}, {@code rpc.method}, {@code secinfra.cache.result}); {@link #rotationListener()}
 * counts {@code secinfra.client.renewals} (no attribute, or {@code error.type} when the renewal
 * failed). {@code error.type} is the error's code (for a renewal that failed with an exception not
 * the SDK's, its class), absent on success; no attribute carries a path, a secret's name or an
 * error message.
 *
 * <pre>{@code
 * SecinfraTelemetry telemetry = SecinfraTelemetry.create(openTelemetry);
 * SecinfraClient client = SecinfraClient.builder(url)
 *     .bundleFile(bundle)
 *     .joinToken(token)
 *     .observer(telemetry.observer())
 *     .onRotation(telemetry.rotationListener())
 *     .build();
 * }</pre>
 *
 * <p>The asynchronous call variants run on the client's executor, where no application span is
 * current: their call spans are roots. To trace them under a span, make the synchronous call from
 * a task that carries the context ({@code Context.current().wrap(...)}).
 */
public final class SecinfraTelemetry {
  /** The instrumentation scope name of the tracer and the meter. */
  public static final String INSTRUMENTATION_SCOPE = Names.SCOPE;

  private final Observer observer;
  private final CallMetrics metrics;

  private SecinfraTelemetry(OpenTelemetry openTelemetry) {
    CallTracer tracer = new CallTracer(openTelemetry.getTracer(Names.SCOPE, VERSION));
    this.metrics = new CallMetrics(openTelemetry.getMeter(Names.SCOPE));
    this.observer = new Both(tracer, metrics);
  }

  /** This artifact's version, the SDK's. */
  private static final String VERSION = dev.secinfra.SecinfraClient.VERSION;

  /**
   * Tracing and metrics through {@code openTelemetry}'s tracer and meter providers.
   *
   * @param openTelemetry the application's OpenTelemetry (for example {@code
   *     GlobalOpenTelemetry.get()})
   * @return the integration
   */
  public static SecinfraTelemetry create(OpenTelemetry openTelemetry) {
    return new SecinfraTelemetry(Objects.requireNonNull(openTelemetry, "openTelemetry"));
  }

  /**
   * The observer to register with {@link dev.secinfra.SecinfraClient.Builder#observer}: spans and
   * the call, attempt and cache counters. One observer may serve several clients.
   *
   * @return the observer
   */
  public Observer observer() {
    return observer;
  }

  /**
   * The rotation listener to register with {@link dev.secinfra.SecinfraClient.Builder#onRotation}:
   * counts renewals, with {@code error.type} when one failed (spec 14.4.1, 14.5.4, from rotation
   * events, 9.8).
   *
   * @return the listener
   */
  public Consumer<RotationEvent> rotationListener() {
    return metrics;
  }

  /** The tracer, then the counters; the tracer's trace context is the attempt's. */
  private static final class Both implements Observer {
    private final CallTracer tracer;
    private final CallMetrics metrics;

    Both(CallTracer tracer, CallMetrics metrics) {
      this.tracer = tracer;
      this.metrics = metrics;
    }

    @Override
    public void callStarted(CallStarted call) {
      tracer.callStarted(call);
    }

    @Override
    public void cache(CacheLookup lookup) {
      try {
        tracer.cache(lookup);
      } finally {
        metrics.cache(lookup);
      }
    }

    @Override
    public TraceContext attemptStarted(AttemptStarted attempt) {
      return tracer.attemptStarted(attempt);
    }

    @Override
    public void attemptFinished(AttemptFinished attempt) {
      try {
        tracer.attemptFinished(attempt);
      } finally {
        metrics.attemptFinished(attempt);
      }
    }

    @Override
    public void callFinished(CallFinished call) {
      try {
        tracer.callFinished(call);
      } finally {
        metrics.callFinished(call);
      }
    }
  }
}
