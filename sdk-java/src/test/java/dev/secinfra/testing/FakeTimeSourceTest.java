package dev.secinfra.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/** The fake clocks move together and only when told. */
class FakeTimeSourceTest {
  @Test
  void bothClocksAdvanceTogetherAndNeverBack() {
    Instant start = Instant.parse("2026-11-22T12:00:00Z");
    FakeTimeSource time = new FakeTimeSource(start);
    assertEquals(start, time.now());
    time.advance(Duration.ofMillis(1500));
    assertEquals(start.plusMillis(1500), time.now());
    assertEquals(1_500_000_000L, time.nanoTime());
    assertThrows(IllegalArgumentException.class, () -> time.advance(Duration.ofSeconds(-1)));
  }
}
