package dev.secinfra.internal.cache;

import dev.secinfra.errors.SecinfraException;
import dev.secinfra.internal.Errors;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * One request for concurrent misses of one cache key (spec 7.8): the first caller (the leader)
 * runs the fetch, the others wait for its result within their own deadline and get its value or
 * its error. Thread-safe.
 *
 * @param <T> the result type
 */
public final class SingleFlight<T> {
  private final Map<String, CompletableFuture<T>> flights = new HashMap<>();
  private final LongSupplier nanoTime;

  /**
   * A single-flight group.
   *
   * @param nanoTime the monotonic clock the waiters' deadlines are on
   */
  public SingleFlight(LongSupplier nanoTime) {
    this.nanoTime = nanoTime;
  }

  /**
   * Runs {@code fetch} unless a flight for {@code key} is under way; then waits for that one.
   *
   * @param key the flight's key
   * @param deadlineNanos a waiter's deadline on the monotonic clock
   * @param fetch the request, run by the leader only
   * @return the leader's result
   * @throws SecinfraException the leader's error, or {@code deadline_exceeded} for a waiter whose
   *     deadline passed first
   */
  public T run(String key, long deadlineNanos, Supplier<T> fetch) {
    CompletableFuture<T> flight;
    boolean leader = false;
    synchronized (flights) {
      flight = flights.get(key);
      if (flight == null) {
        flight = new CompletableFuture<>();
        flights.put(key, flight);
        leader = true;
      }
    }
    if (!leader) {
      return await(flight, deadlineNanos);
    }
    try {
      T result = fetch.get();
      flight.complete(result);
      return result;
    } catch (RuntimeException e) {
      flight.completeExceptionally(e);
      throw e;
    } finally {
      synchronized (flights) {
        flights.remove(key, flight);
      }
    }
  }

  private T await(CompletableFuture<T> flight, long deadlineNanos) {
    long wait = deadlineNanos - nanoTime.getAsLong();
    try {
      if (wait <= 0) {
        throw new TimeoutException();
      }
      return flight.get(wait, TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      throw Errors.deadline(
          "secinfra: cache: deadline exceeded while waiting for a shared request", 0, null);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof SecinfraException) {
        throw (SecinfraException) e.getCause();
      }
      throw Errors.transport("secinfra: cache: shared request failed", false, 0, e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Errors.transport("secinfra: cache: interrupted", false, 0, e);
    }
  }
}
