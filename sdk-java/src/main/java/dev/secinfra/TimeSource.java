package dev.secinfra;

import java.time.Instant;

/**
 * The clocks a client reads: monotonic for durations, wall for certificates and HTTP-dates.
 * Tests replace it to pin schedules (spec 1.5.3).
 */
public interface TimeSource {
  /** The system clocks. */
  TimeSource SYSTEM =
      new TimeSource() {
        @Override
        public long nanoTime() {
          return System.nanoTime();
        }

        @Override
        public Instant now() {
          return Instant.now();
        }
      };

  /**
   * The monotonic clock, in nanoseconds from an arbitrary origin.
   *
   * @return the monotonic time
   */
  long nanoTime();

  /**
   * The wall clock.
   *
   * @return the current instant
   */
  Instant now();
}
