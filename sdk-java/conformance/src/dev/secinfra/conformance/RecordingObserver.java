package dev.secinfra.conformance;

import dev.secinfra.conformance.gen.CallMeta;
import dev.secinfra.conformance.gen.Observation;
import dev.secinfra.conformance.gen.ObserverSetup;
import dev.secinfra.observe.AttemptFinished;
import dev.secinfra.observe.AttemptStarted;
import dev.secinfra.observe.CacheLookup;
import dev.secinfra.observe.CallFinished;
import dev.secinfra.observe.CallStarted;
import dev.secinfra.observe.Observer;
import dev.secinfra.observe.TraceContext;
import dev.secinfra.rpc.ResponseMeta;
import java.util.ArrayList;
import java.util.List;

/**
 * The conformance client's recording observer (configure.observer, spec 14): it records every
 * notification as the protocol's {@link Observation} for the {@code observations} op, and returns
 * the configured trace context at each attempt's start, {@code {attempt}} in it replaced by the
 * attempt's number as 16 lower-case hex digits. Thread-safe.
 */
final class RecordingObserver implements Observer {
  private final String traceparent;
  private final String tracestate;
  private final List<Observation> seen = new ArrayList<>();

  RecordingObserver(ObserverSetup setup) {
    this.traceparent = setup.traceparent();
    this.tracestate = setup.tracestate();
  }

  /**
   * Every notification since the last call, oldest first; clears the list.
   *
   * @return the notifications
   */
  synchronized List<Observation> take() {
    List<Observation> out = List.copyOf(seen);
    seen.clear();
    return out;
  }

  private synchronized void add(Observation observation) {
    seen.add(observation);
  }

  @Override
  public void callStarted(CallStarted call) {
    add(
        Observation.builder()
            .kind("call_started")
            .rpc(call.rpc())
            .idempotency(call.idempotency().wire())
            .build());
  }

  @Override
  public void cache(CacheLookup lookup) {
    add(Observation.builder().kind("cache").rpc(lookup.rpc()).cache(lookup.result().wire()).build());
  }

  @Override
  public TraceContext attemptStarted(AttemptStarted attempt) {
    add(
        Observation.builder()
            .kind("attempt_started")
            .rpc(attempt.rpc())
            .attempt(attempt.attempt())
            .endpoint(attempt.endpoint())
            .build());
    if (traceparent.isEmpty()) {
      return null;
    }
    String number = String.format("%016x", attempt.attempt());
    return new TraceContext(
        traceparent.replace("{attempt}", number), tracestate.isEmpty() ? null : tracestate);
  }

  @Override
  public void attemptFinished(AttemptFinished attempt) {
    add(
        Observation.builder()
            .kind("attempt_finished")
            .rpc(attempt.rpc())
            .attempt(attempt.attempt())
            .status(attempt.status())
            .code(attempt.code())
            .build());
  }

  @Override
  public void callFinished(CallFinished call) {
    ResponseMeta meta = call.meta();
    add(
        Observation.builder()
            .kind("call_finished")
            .rpc(call.rpc())
            .ok(call.ok())
            .code(call.code())
            .meta(
                new CallMeta(
                    meta.fromCache(),
                    meta.stale(),
                    meta.attempts(),
                    meta.requestId(),
                    meta.status(),
                    meta.endpoint()))
            .build());
  }
}
