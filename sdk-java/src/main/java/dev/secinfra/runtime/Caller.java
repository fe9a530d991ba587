package dev.secinfra.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.CallOptions;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

/**
 * What generated service clients call: the SDK client's runtime (retries, cache, identity).
 * Generated code only builds the request and decodes the answer.
 */
public interface Caller {
  /**
   * Makes one call and decodes its answer.
   *
   * @param <T> the response type
   * @param method the RPC's descriptor
   * @param request the request message's JSON form
   * @param options per-call options (never null; {@link CallOptions#DEFAULTS} for none)
   * @param decode decodes the response JSON
   * @return the decoded response
   * @throws dev.secinfra.errors.SecinfraException when the call fails
   */
  <T> T call(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode);

  /**
   * {@link #call} on the client's executor.
   *
   * @param <T> the response type
   * @param method the RPC's descriptor
   * @param request the request message's JSON form
   * @param options per-call options
   * @param decode decodes the response JSON
   * @return a future of the decoded response
   */
  <T> CompletableFuture<T> callAsync(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode);
}
