package dev.secinfra.otel;

import dev.secinfra.observe.AttemptFinished;
import dev.secinfra.observe.AttemptStarted;
import dev.secinfra.observe.CacheLookup;
import dev.secinfra.observe.CallFinished;
import dev.secinfra.observe.CallStarted;
import dev.secinfra.observe.Observer;
import dev.secinfra.observe.TraceContext;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Context;
import java.net.URI;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The spans of spec 14.5: per call a span of kind INTERNAL named by the RPC's full name, child of
 * the span current when the call started; per attempt a span of kind CLIENT, child of the call's,
 * whose context the attempt sends as {@code traceparent} (14.5.2); a {@code cache} event on the
 * call's span; ERROR and {@code error.type} on a failed call or attempt (14.5.3). Both kinds name
 * the RPC with {@code rpc.service} and {@code rpc.method} (14.5.4).
 */
final class CallTracer implements Observer {
  /** A call in flight: its span, the context its attempts are children of, its open attempt. */
  private static final class Call {
    final Span span;
    final Context context;
    volatile Span attempt;

    Call(Span span, Context context) {
      this.span = span;
      this.context = context;
    }
  }

  private final Tracer tracer;
  private final Map<Long, Call> calls = new ConcurrentHashMap<>();

  CallTracer(Tracer tracer) {
    this.tracer = tracer;
  }

  @Override
  public void callStarted(CallStarted call) {
    Context parent = Context.current();
    Span span =
        tracer
            .spanBuilder(call.rpc())
            .setSpanKind(SpanKind.INTERNAL)
            .setParent(parent)
            .setAllAttributes(Names.rpc(call.rpc()))
            .setAttribute(Names.IDEMPOTENCY, call.idempotency().wire())
            .startSpan();
    calls.put(call.callId(), new Call(span, parent.with(span)));
  }

  @Override
  public void cache(CacheLookup lookup) {
    Call call = calls.get(lookup.callId());
    if (call != null) {
      call.span.addEvent(Names.CACHE_EVENT, Attributes.of(Names.CACHE_RESULT, lookup.result().wire()));
    }
  }

  @Override
  public TraceContext attemptStarted(AttemptStarted attempt) {
    Call call = calls.get(attempt.callId());
    if (call == null) {
      return null;
    }
    URI endpoint = URI.create(attempt.endpoint());
    var builder =
        tracer
            .spanBuilder(attempt.httpMethod())
            .setSpanKind(SpanKind.CLIENT)
            .setParent(call.context)
            .setAttribute(Names.HTTP_REQUEST_METHOD, attempt.httpMethod())
            .setAttribute(Names.SERVER_ADDRESS, endpoint.getHost())
            .setAttribute(Names.SERVER_PORT, (long) (endpoint.getPort() > 0 ? endpoint.getPort() : 443))
            .setAllAttributes(Names.rpc(attempt.rpc()))
            .setAttribute(Names.ATTEMPT, (long) attempt.attempt());
    if (attempt.attempt() > 1) {
      builder.setAttribute(Names.HTTP_REQUEST_RESEND_COUNT, (long) attempt.attempt() - 1);
    }
    Span span = builder.startSpan();
    Span previous = call.attempt;
    if (previous != null) {
      previous.end(); // never left open, even if a finish went missing
    }
    call.attempt = span;
    Map<String, String> headers = new HashMap<>();
    W3CTraceContextPropagator.getInstance()
        .inject(call.context.with(span), headers, (carrier, key, value) -> carrier.put(key, value));
    String traceparent = headers.get("traceparent");
    if (traceparent == null) {
      return null; // an invalid span context (a no-op tracer): nothing to send
    }
    String tracestate = headers.get("tracestate");
    return new TraceContext(traceparent, tracestate == null || tracestate.isEmpty() ? null : tracestate);
  }

  @Override
  public void attemptFinished(AttemptFinished attempt) {
    Call call = calls.get(attempt.callId());
    if (call == null) {
      return;
    }
    Span span = call.attempt;
    if (span == null) {
      return;
    }
    call.attempt = null;
    if (attempt.status() != null) {
      span.setAttribute(Names.HTTP_RESPONSE_STATUS_CODE, (long) attempt.status());
    }
    if (!attempt.ok()) {
      span.setAttribute(Names.ERROR_TYPE, attempt.code());
      span.setStatus(StatusCode.ERROR);
    }
    span.end();
  }

  @Override
  public void callFinished(CallFinished finished) {
    Call call = calls.remove(finished.callId());
    if (call == null) {
      return;
    }
    Span open = call.attempt;
    if (open != null) {
      open.end();
    }
    Span span = call.span;
    span.setAttribute(Names.ATTEMPTS, (long) finished.meta().attempts());
    span.setAttribute(Names.FROM_CACHE, finished.meta().fromCache());
    if (finished.meta().stale()) {
      span.setAttribute(Names.STALE, true);
    }
    if (!finished.ok()) {
      span.setAttribute(Names.ERROR_TYPE, finished.code());
      span.setStatus(StatusCode.ERROR, finished.code());
    }
    span.end();
  }
}
