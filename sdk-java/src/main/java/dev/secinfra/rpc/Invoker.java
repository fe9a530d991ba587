package dev.secinfra.rpc;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

/**
 * The one interface generated service clients call. Generated code builds the request, hands it
 * with the RPC's {@link MethodDescriptor} to an invoker and decodes the answer; everything else
 * (retries, cache, identity, errors) is the invoker's, so generated code depends on this package
 * only.
 */
public interface Invoker {
  /**
   * Makes one call and decodes its answer.
   *
   * @param <T> the response type
   * @param method the RPC's descriptor
   * @param request the request message's JSON form
   * @param options per-call options ({@link CallOptions#DEFAULTS} for none)
   * @param decode decodes the response JSON
   * @return the decoded response
   * @throws dev.secinfra.errors.SecinfraException when the call fails
   */
  <T> T invoke(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode);

  /**
   * {@link #invoke} on the client's executor.
   *
   * @param <T> the response type
   * @param method the RPC's descriptor
   * @param request the request message's JSON form
   * @param options per-call options
   * @param decode decodes the response JSON
   * @return a future of the decoded response, completed exceptionally with the typed error
   */
  <T> CompletableFuture<T> invokeAsync(
      MethodDescriptor method, ObjectNode request, CallOptions options, Function<JsonNode, T> decode);
}
