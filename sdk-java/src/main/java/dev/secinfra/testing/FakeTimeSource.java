package dev.secinfra.testing;

import dev.secinfra.TimeSource;
import java.time.Duration;
import java.time.Instant;

/**
 * Clocks a test moves by hand ({@code SecinfraClient.Builder.timeSource}): the wall clock and
 * the monotonic clock advance together, only when {@link #advance} is called. Thread-safe.
 */
public final class FakeTimeSource implements TimeSource {
  private Instant now;
  private long nanos;

  /**
   * Clocks that start at {@code start}.
   *
   * @param start the wall-clock time to start at
   */
  public FakeTimeSource(Instant start) {
    this.now = start;
  }

  /**
   * Moves both clocks forward.
   *
   * @param by how far (not negative)
   * @throws IllegalArgumentException when {@code by} is negative
   */
  public synchronized void advance(Duration by) {
    if (by.isNegative()) {
      throw new IllegalArgumentException("secinfra: testing: clocks do not go back");
    }
    now = now.plus(by);
    nanos += by.toNanos();
  }

  @Override
  public synchronized long nanoTime() {
    return nanos;
  }

  @Override
  public synchronized Instant now() {
    return now;
  }
}
