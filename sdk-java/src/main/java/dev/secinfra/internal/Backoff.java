package dev.secinfra.internal;

import java.time.Duration;
import java.util.random.RandomGenerator;

/** Full-jitter backoff (spec 3.5), in its own small function so tests can pin it. */
public final class Backoff {
  private Backoff() {}

  /**
   * The ceiling before retry {@code n}: {@code min(max, base * 2^(n-1))}, in nanoseconds.
   *
   * @param retry the retry number, 1 for the second attempt
   * @param base the base
   * @param max the ceiling
   * @return the ceiling in nanoseconds
   */
  public static long ceilingNanos(int retry, Duration base, Duration max) {
    double ceiling = base.toNanos() * Math.pow(2, Math.max(0, retry - 1));
    return (long) Math.min((double) max.toNanos(), ceiling);
  }

  /**
   * The wait before retry {@code n}: uniform in [0, ceiling].
   *
   * @param retry the retry number, 1 for the second attempt
   * @param base the base
   * @param max the ceiling
   * @param random the client's random source
   * @return the wait in nanoseconds
   */
  public static long jitterNanos(int retry, Duration base, Duration max, RandomGenerator random) {
    long ceiling = ceilingNanos(retry, base, max);
    if (ceiling <= 0) {
      return 0;
    }
    return (long) (random.nextDouble() * ceiling);
  }
}
