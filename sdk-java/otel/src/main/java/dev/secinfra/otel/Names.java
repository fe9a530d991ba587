package dev.secinfra.otel;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.common.AttributesBuilder;

/** The attribute keys and instrument names of the integration (spec 14.4, 14.5). */
final class Names {
  /** The instrumentation scope of the tracer and the meter. */
  static final String SCOPE = "dev.secinfra.otel";

  // OpenTelemetry semantic conventions (RPC, HTTP client spans, errors).
  static final AttributeKey<String> RPC_SERVICE = AttributeKey.stringKey("rpc.service");
  static final AttributeKey<String> RPC_METHOD = AttributeKey.stringKey("rpc.method");
  static final AttributeKey<String> HTTP_REQUEST_METHOD = AttributeKey.stringKey("http.request.method");
  static final AttributeKey<Long> HTTP_RESPONSE_STATUS_CODE =
      AttributeKey.longKey("http.response.status_code");
  static final AttributeKey<Long> HTTP_REQUEST_RESEND_COUNT =
      AttributeKey.longKey("http.request.resend_count");
  static final AttributeKey<String> SERVER_ADDRESS = AttributeKey.stringKey("server.address");
  static final AttributeKey<Long> SERVER_PORT = AttributeKey.longKey("server.port");
  static final AttributeKey<String> ERROR_TYPE = AttributeKey.stringKey("error.type");

  // secinfra's own.
  static final AttributeKey<String> IDEMPOTENCY = AttributeKey.stringKey("secinfra.idempotency");
  static final AttributeKey<Long> ATTEMPT = AttributeKey.longKey("secinfra.attempt");
  static final AttributeKey<Long> ATTEMPTS = AttributeKey.longKey("secinfra.attempts");
  static final AttributeKey<Boolean> FROM_CACHE = AttributeKey.booleanKey("secinfra.from_cache");
  static final AttributeKey<Boolean> STALE = AttributeKey.booleanKey("secinfra.stale");
  static final AttributeKey<String> CACHE_RESULT = AttributeKey.stringKey("secinfra.cache.result");

  /** The event on a call's span that says what the cache answered. */
  static final String CACHE_EVENT = "cache";

  // The counters of 14.5.4.
  static final String CALLS = "secinfra.client.calls";
  static final String ATTEMPTS_COUNTER = "secinfra.client.attempts";
  static final String CACHE_LOOKUPS = "secinfra.client.cache.lookups";
  static final String RENEWALS = "secinfra.client.renewals";

  /**
   * {@code rpc.service} and {@code rpc.method} of an RPC's full name: {@code
   * secinfra.v1.SecretsService/GetSecret} is {@code secinfra.v1.SecretsService} and {@code
   * GetSecret} (spec 14.5.4). A name without a service has no {@code rpc.service}.
   *
   * @param rpc the RPC's full name
   * @return the two attributes
   */
  static Attributes rpc(String rpc) {
    int slash = rpc.lastIndexOf('/');
    AttributesBuilder attributes = Attributes.builder().put(RPC_METHOD, rpc.substring(slash + 1));
    if (slash > 0) {
      attributes.put(RPC_SERVICE, rpc.substring(0, slash));
    }
    return attributes.build();
  }

  private Names() {}
}
