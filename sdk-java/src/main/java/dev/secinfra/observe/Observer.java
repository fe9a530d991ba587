package dev.secinfra.observe;

/**
 * Is told what a client does (spec 14.2): for every call, {@link #callStarted}, then {@link #cache}
 * when the cache was asked, then {@link #attemptStarted} and {@link #attemptFinished} for each
 * attempt, then {@link #callFinished}. Calls the client makes on its own (enrolment, renewal,
 * bundle refresh) are observed the same way (14.2.4). Every method has a default that does
 * nothing, so an observer implements only what it needs.
 *
 * <p>Notifications arrive on the thread making the call, in order for one call; calls on several
 * threads are observed concurrently, so an observer must be thread-safe. {@link
 * CallStarted#callId()} ties one call's notifications together (a bundle refresh made inside a
 * call is a call of its own, observed in between). An observer that throws does not fail the call
 * or stop the other observers; the SDK logs the failure once per observer and kind of
 * notification (logger {@code dev.secinfra.observe}, spec 14.1.3). An observer must be quick: it
 * runs inside the call.
 *
 * <pre>{@code
 * Observer counter = new Observer() {
 *   @Override
 *   public void callFinished(CallFinished call) {
 *     calls.add(call.rpc() + " " + (call.ok() ? "ok" : call.code()));
 *   }
 * };
 * SecinfraClient client = SecinfraClient.builder(url).bundleFile(bundle).joinToken(token)
 *     .observer(counter)
 *     .build();
 * }</pre>
 */
public interface Observer {
  /**
   * A call started.
   *
   * @param call the RPC and its idempotency
   */
  default void callStarted(CallStarted call) {}

  /**
   * The cache answered a cacheable call's lookup (spec 7.1): only when the call uses the cache.
   *
   * @param lookup hit, miss or revalidate
   */
  default void cache(CacheLookup lookup) {}

  /**
   * An attempt is about to be sent. The observer may return the trace context the attempt sends
   * as its {@code traceparent} and {@code tracestate} headers (spec 14.3): the first valid one of
   * the observers, in the order registered, is sent; an invalid one is not.
   *
   * @param attempt the attempt's number and endpoint
   * @return the attempt's trace context, or null for none
   */
  default TraceContext attemptStarted(AttemptStarted attempt) {
    return null;
  }

  /**
   * An attempt ended: answered (with its HTTP status) or not.
   *
   * @param attempt the status and the error code of a failed attempt
   */
  default void attemptFinished(AttemptFinished attempt) {}

  /**
   * A call finished, successfully or not; exactly once per call, also when it failed before its
   * first attempt (spec 14.2.2).
   *
   * @param call the outcome and the call's result metadata
   */
  default void callFinished(CallFinished call) {}
}
