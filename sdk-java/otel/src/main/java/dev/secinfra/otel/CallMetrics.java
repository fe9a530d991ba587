package dev.secinfra.otel;

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
 * The counters of spec 14.4: calls by RPC and outcome, attempts by RPC and status, cache lookups by
 * RPC and result (from the notifications), renewals by outcome (from rotation events).
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
            .setDescription("Calls made by the secinfra client, by RPC and outcome.")
            .setUnit("{call}")
            .build();
    this.attempts =
        meter
            .counterBuilder(Names.ATTEMPTS_COUNTER)
            .setDescription("HTTP attempts of the secinfra client's calls, by RPC and status.")
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
            .setDescription("Certificate renewals of the secinfra client, by outcome.")
            .setUnit("{renewal}")
            .build();
  }

  @Override
  public void cache(CacheLookup lookup) {
    lookups.add(1, Attributes.of(Names.RPC, lookup.rpc(), Names.CACHE_RESULT, lookup.result().wire()));
  }

  @Override
  public void attemptFinished(AttemptFinished attempt) {
    AttributesBuilder attributes = Attributes.builder().put(Names.RPC, attempt.rpc());
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
    AttributesBuilder attributes =
        Attributes.builder().put(Names.RPC, call.rpc()).put(Names.OUTCOME, call.ok() ? "ok" : "error");
    if (!call.ok()) {
      attributes.put(Names.ERROR_TYPE, call.code());
    }
    calls.add(1, attributes.build());
  }

  @Override
  public void accept(RotationEvent event) {
    switch (event.kind()) {
      case RENEWED:
        renewals.add(1, Attributes.of(Names.OUTCOME, "ok"));
        break;
      case RENEWAL_FAILED:
        renewals.add(1, Attributes.of(Names.OUTCOME, "error"));
        break;
      default:
        break;
    }
  }
}
