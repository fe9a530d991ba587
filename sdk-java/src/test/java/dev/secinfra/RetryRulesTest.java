package dev.secinfra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.internal.Backoff;
import dev.secinfra.internal.RetryAfter;
import dev.secinfra.rpc.CallOptions;
import java.time.Duration;
import java.time.Instant;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Backoff, Retry-After, the retry budget and option validation (spec 3, 6, 1.4). */
class RetryRulesTest {
  private static final Instant NOW = Instant.parse("2026-11-22T08:00:00Z");

  static Stream<Arguments> ceilings() {
    return Stream.of(
        Arguments.of(1, 100), Arguments.of(2, 200), Arguments.of(3, 400), Arguments.of(4, 800),
        Arguments.of(5, 1600), Arguments.of(6, 3200), Arguments.of(7, 5000), Arguments.of(30, 5000));
  }

  @ParameterizedTest(name = "retry {0} ceiling {1} ms")
  @MethodSource("ceilings")
  void backoffCeilingsMatchTheSpecTable(int retry, long millis) {
    assertEquals(
        Duration.ofMillis(millis).toNanos(),
        Backoff.ceilingNanos(retry, RetryPolicy.DEFAULT_BASE_BACKOFF, RetryPolicy.DEFAULT_MAX_BACKOFF));
  }

  @Test
  void jitterStaysWithinTheCeilingAndIsPinnedBySeed() {
    SplittableRandom a = new SplittableRandom(7);
    SplittableRandom b = new SplittableRandom(7);
    for (int retry = 1; retry <= 10; retry++) {
      long wait = Backoff.jitterNanos(retry, RetryPolicy.DEFAULT_BASE_BACKOFF, RetryPolicy.DEFAULT_MAX_BACKOFF, a);
      long ceiling = Backoff.ceilingNanos(retry, RetryPolicy.DEFAULT_BASE_BACKOFF, RetryPolicy.DEFAULT_MAX_BACKOFF);
      assertTrue(wait >= 0 && wait <= ceiling, "wait " + wait + " ceiling " + ceiling);
      assertEquals(wait, Backoff.jitterNanos(retry, RetryPolicy.DEFAULT_BASE_BACKOFF, RetryPolicy.DEFAULT_MAX_BACKOFF, b));
    }
  }

  static Stream<Arguments> retryAfterValues() {
    return Stream.of(
        Arguments.of("0", 0.0),
        Arguments.of(" 12 ", 12.0),
        Arguments.of("Sun, 22 Nov 2026 08:00:30 GMT", 30.0),
        Arguments.of("Sunday, 22-Nov-26 08:00:05 GMT", 5.0),
        Arguments.of("Sun Nov 22 08:00:02 2026", 2.0),
        Arguments.of("Sun, 22 Nov 2026 07:00:00 GMT", 0.0),
        Arguments.of("-1", null),
        Arguments.of("1.5", null),
        Arguments.of("", null),
        Arguments.of("soon", null));
  }

  @ParameterizedTest(name = "Retry-After {0}")
  @MethodSource("retryAfterValues")
  void retryAfterReadsBothForms(String header, Double seconds) {
    assertEquals(seconds, RetryAfter.parse(header, NOW));
  }

  @Test
  void budgetFollowsTheSpecExample() {
    RetryBudget small = new RetryBudget(12, 5, 10, 1);
    assertTrue(small.tryRetry(false));
    assertTrue(small.tryRetry(false));
    assertEquals(2, small.tokens());
    assertFalse(small.tryRetry(false), "a retry the bucket cannot pay is refused");
    assertEquals(2, small.tokens(), "a refused retry takes nothing");
    small.onSuccess();
    assertEquals(3, small.tokens());
  }

  @Test
  void budgetNeverExceedsItsCapacity() {
    RetryBudget budget = new RetryBudget();
    budget.onSuccess();
    assertEquals(RetryBudget.DEFAULT_CAPACITY, budget.tokens());
    assertTrue(budget.tryRetry(true));
    assertEquals(RetryBudget.DEFAULT_CAPACITY - RetryBudget.DEFAULT_TIMEOUT_RETRY_COST, budget.tokens());
  }

  @Test
  void invalidSettingsAreRejectedWhenGiven() {
    assertThrows(IllegalArgumentException.class, () -> RetryPolicy.builder().maxAttempts(0));
    assertThrows(IllegalArgumentException.class, () -> RetryPolicy.builder().deadline(Duration.ZERO));
    assertThrows(IllegalArgumentException.class, () -> CallOptions.builder().attemptTimeout(Duration.ofSeconds(-1)));
    assertThrows(IllegalArgumentException.class, () -> CallOptions.builder().idempotencyKey("has space"));
    assertThrows(IllegalArgumentException.class, () -> SecinfraClient.builder("http://127.0.0.1:1"));
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> RetryPolicy.builder().maxAttempts(-2));
    assertTrue(error.getMessage().contains("maxAttempts"));
  }

  @Test
  void callOptionsLeaveUnsetValuesToTheClient() {
    CallOptions options = CallOptions.builder().maxAttempts(1).build();
    assertEquals(1, options.maxAttempts());
    assertNull(options.deadline());
    assertNull(options.useCache());
  }
}
