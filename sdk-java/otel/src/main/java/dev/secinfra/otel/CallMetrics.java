package dev.secinfra.otel;

import dev.secinfra.errors.SecinfraException;
import dev.secinfra.identity.RotationEvent;
import dev.secinfra.observe.AttemptFinished;
import dev.secinfra.observe.CacheLookup;
import dev.secinfra.observe.CallFinished;
import dev.secinfra.observe.Observer;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.common.AttributesBuilder;
import io.opentelemetry.api.metrics.LongCounter;
import io.opentelemetry.api.metrics.Meter;
import java.util.function.Consumer;

/**
 * The counters of spec 14.4 with the attributes of 14.5.4: {@code secinfra.client.calls} by {@code
 * rpc.service}, {@code rpc.method} and {@code error.type} when the call failed; {@code
 * secinfra.client.attempts} by RPC, {@code http.response.status_code} when answered and {@code
 * error.type} when the attempt failed; {@code secinfra.client.cache.lookups} by RPC and {@code
 * secinfra.cache.result} (from the notifications); {@code secinfra.client.renewals} with only
 * {@code error.type} when the renewal failed (from rotation events, 9.8).
 */
final class CallMetrics implements Observer, Consumer<RotationEvent> {
  private final LongCounter calls;
  private final LongCounter attempts;
  private final LongCounter lookups;
  private final LongCounter renewals;

  CallMetrics(Meter meter) {
    this.calls =
        meter
            .counterBuilder(Names.CALLS)
            .setDescription("Calls made by the secinfra client, by RPC and error.")
            .setUnit("{call}")
            .build();
    this.attempts =
        meter
            .counterBuilder(Names.ATTEMPTS_COUNTER)
            .setDescription("HTTP attempts of the secinfra client's calls, by RPC, status and error.")
            .setUnit("{attempt}")
            .build();
    this.lookups =
        meter
            .counterBuilder(Names.CACHE_LOOKUPS)
            .setDescription("Cache lookups of the secinfra client, by RPC and result.")
            .setUnit("{lookup}")
            .build();
    this.renewals =
        meter
            .counterBuilder(Names.RENEWALS)
            .setDescription("Certificate renewals of the secinfra client, by error.")
            .setUnit("{renewal}")
            .build();
  }

  @Override
  public void cache(CacheLookup lookup) {
    lookups.add(
        1, Names.rpc(lookup.rpc()).toBuilder().put(Names.CACHE_RESULT, lookup.result().wire()).build());
  }

  @Override
  public void attemptFinished(AttemptFinished attempt) {
    AttributesBuilder attributes = Names.rpc(attempt.rpc()).toBuilder();
    if (attempt.status() != null) {
      attributes.put(Names.HTTP_RESPONSE_STATUS_CODE, (long) attempt.status());
    }
    if (!attempt.ok()) {
      attributes.put(Names.ERROR_TYPE, attempt.code());
    }
    attempts.add(1, attributes.build());
  }

  @Override
  public void callFinished(CallFinished call) {
    AttributesBuilder attributes = Names.rpc(call.rpc()).toBuilder();
    if (!call.ok()) {
      attributes.put(Names.ERROR_TYPE, call.code());
    }
    calls.add(1, attributes.build());
  }

  @Override
  public void accept(RotationEvent event) {
    switch (event.kind()) {
      case RENEWED:
        renewals.add(1);
        break;
      case RENEWAL_FAILED:
        renewals.add(1, Attributes.of(Names.ERROR_TYPE, errorType(event.error())));
        break;
      default:
        break;
    }
  }

  /**
   * A failed renewal's {@code error.type}: the SDK error's code, else the exception's class (the
   * event always carries one; {@code renewal_failed} if it did not).
   */
  private static String errorType(Throwable error) {
    if (error instanceof SecinfraException secinfra) {
      return secinfra.code();
    }
    return error != null ? error.getClass().getName() : "renewal_failed";
  }
}
