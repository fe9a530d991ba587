package dev.secinfra.internal.retry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.RetryPolicy;
import dev.secinfra.internal.retry.Retry.Decision;
import dev.secinfra.internal.retry.Retry.Outcome;
import dev.secinfra.internal.retry.Retry.Reason;
import dev.secinfra.rpc.Idempotency;
import java.time.Duration;
import java.time.Instant;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The retry decision, backoff and Retry-After (spec 3), as tables. */
class RetryTest {
  private static final Instant NOW = Instant.parse("2026-11-22T08:00:00Z");
  private static final Retry.Policy DEFAULTS =
      new Retry.Policy(
          RetryPolicy.DEFAULT_MAX_ATTEMPTS,
          RetryPolicy.DEFAULT_BASE_BACKOFF,
          RetryPolicy.DEFAULT_MAX_BACKOFF,
          RetryPolicy.DEFAULT_MAX_RETRY_AFTER);
  private static final long SECOND = 1_000_000_000L;

  /** One row: an outcome and the call's state, and the decision wanted. */
  record Row(
      String name,
      Outcome outcome,
      Idempotency idempotency,
      boolean hasKey,
      int attempt,
      long remainingNanos,
      Reason want,
      long wantDelayNanos,
      Double wantRetryAfter) {
    @Override
    public String toString() {
      return name;
    }
  }

  private static Row row(
      String name, Outcome outcome, Idempotency idempotency, boolean hasKey, int attempt,
      long remaining, Reason want, long delay, Double retryAfter) {
    return new Row(name, outcome, idempotency, hasKey, attempt, remaining, want, delay, retryAfter);
  }

  static Stream<Row> decisions() {
    Idempotency ro = Idempotency.READ_ONLY;
    Idempotency ni = Idempotency.NON_IDEMPOTENT;
    long plenty = 30 * SECOND;
    // The jitter draw is pinned at 0.5: the first retry waits half of 100 ms.
    long half = 50_000_000L;
    return Stream.of(
        row("503 is retried after the backoff", Outcome.response(503, null, null), ro, false, 1,
            plenty, Reason.RETRY, half, null),
        row("second retry doubles the ceiling", Outcome.response(429, null, null), ro, false, 2,
            plenty, Reason.RETRY, 2 * half, null),
        row("408 429 502 503 504 whatever the idempotency", Outcome.response(504, null, null), ni,
            false, 1, plenty, Reason.RETRY, half, null),
        row("500 retried when safe to repeat", Outcome.response(500, null, null), ro, false, 1,
            plenty, Reason.RETRY, half, null),
        row("500 not retried for a non-idempotent call", Outcome.response(500, null, null), ni,
            true, 1, plenty, Reason.NOT_RETRYABLE, 0, null),
        row("other 4xx never retried", Outcome.response(404, null, null), ro, false, 1, plenty,
            Reason.NOT_RETRYABLE, 0, null),
        row("501 never retried", Outcome.response(501, null, null), ro, false, 1, plenty,
            Reason.NOT_RETRYABLE, 0, null),
        row("Secinfra-Should-Retry false wins over 503", Outcome.response(503, null, " FALSE "), ro,
            false, 1, plenty, Reason.SERVER_SAID_NO, 0, null),
        row("Secinfra-Should-Retry true makes a 409 retried", Outcome.response(409, null, "true"),
            ni, true, 1, plenty, Reason.RETRY, half, null),
        row("Secinfra-Should-Retry other values are ignored", Outcome.response(404, null, "maybe"),
            ro, false, 1, plenty, Reason.NOT_RETRYABLE, 0, null),
        row("Retry-After is waited instead of the backoff", Outcome.response(503, "2", null), ro,
            false, 1, plenty, Reason.RETRY, 2 * SECOND, 2.0),
        row("Retry-After kept on a refusal", Outcome.response(400, "3", null), ro, false, 1, plenty,
            Reason.NOT_RETRYABLE, 0, 3.0),
        row("Retry-After beyond max_retry_after", Outcome.response(429, "61", null), ro, false, 1,
            100 * SECOND, Reason.RETRY_AFTER_TOO_LONG, 0, 61.0),
        row("Retry-After beyond the deadline", Outcome.response(503, "5", null), ro, false, 1,
            5 * SECOND, Reason.RETRY_AFTER_PAST_DEADLINE, 0, 5.0),
        row("attempts exhausted", Outcome.response(503, null, null), ro, false, 4, plenty,
            Reason.ATTEMPTS_EXHAUSTED, 0, null),
        row("deadline passed", Outcome.response(503, "1", null), ro, false, 1, 0,
            Reason.DEADLINE_REACHED, 0, 1.0),
        row("backoff would pass the deadline", Outcome.response(503, null, null), ro, false, 1,
            half, Reason.BACKOFF_PAST_DEADLINE, 0, null),
        row("connection refused before sending is retried", Outcome.failure(true, false), ni, false,
            1, plenty, Reason.RETRY, half, null),
        row("reset after sending a read is retried", Outcome.failure(false, false), ro, false, 1,
            plenty, Reason.RETRY, half, null),
        row("reset after sending a write with a key is retried", Outcome.failure(false, false), ni,
            true, 1, plenty, Reason.RETRY, half, null),
        row("reset after sending a write without a key", Outcome.failure(false, false), ni, false,
            1, plenty, Reason.UNSAFE_TO_RESEND, 0, null),
        row("timeout at the deadline ends the call first", Outcome.failure(false, true), ni, false,
            1, 0, Reason.DEADLINE_REACHED, 0, null),
        row("timeout with time left is retried", Outcome.failure(false, true), ro, false, 1, plenty,
            Reason.RETRY, half, null),
        row("failures exhaust attempts too", Outcome.failure(true, false), ro, false, 4, plenty,
            Reason.ATTEMPTS_EXHAUSTED, 0, null));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("decisions")
  void decideAppliesTheRulesInOrder(Row row) {
    Decision got =
        Retry.decide(
            row.outcome(),
            new Retry.Input(
                DEFAULTS, row.idempotency(), row.hasKey(), row.attempt(), row.remainingNanos(), NOW,
                () -> 0.5));
    assertEquals(row.want(), got.reason());
    assertEquals(row.wantDelayNanos(), got.delayNanos());
    assertEquals(row.wantRetryAfter(), got.retryAfter());
    assertEquals(row.want() == Reason.RETRY, got.retry());
  }

  @Test
  void decideDrawsNoJitterWhenTheCeilingIsZero() {
    Retry.Policy noBackoff = new Retry.Policy(4, Duration.ZERO, Duration.ZERO, Duration.ofSeconds(60));
    Decision got =
        Retry.decide(
            Outcome.response(503, null, null),
            new Retry.Input(
                noBackoff, Idempotency.READ_ONLY, false, 1, SECOND, NOW,
                () -> {
                  throw new AssertionError("no draw without a ceiling");
                }));
    assertEquals(new Decision(Reason.RETRY, 0, null), got);
  }

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
        Retry.backoffCeilingNanos(
            retry, RetryPolicy.DEFAULT_BASE_BACKOFF, RetryPolicy.DEFAULT_MAX_BACKOFF));
  }

  @Test
  void jitterStaysWithinTheCeilingAndIsPinnedBySeed() {
    SplittableRandom a = new SplittableRandom(7);
    SplittableRandom b = new SplittableRandom(7);
    for (int retry = 1; retry <= 10; retry++) {
      long ceiling =
          Retry.backoffCeilingNanos(
              retry, RetryPolicy.DEFAULT_BASE_BACKOFF, RetryPolicy.DEFAULT_MAX_BACKOFF);
      long wait = Retry.fullJitter(ceiling, a.nextDouble());
      assertTrue(wait >= 0 && wait <= ceiling, "wait " + wait + " ceiling " + ceiling);
      assertEquals(wait, Retry.fullJitter(ceiling, b.nextDouble()));
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
    assertEquals(seconds, Retry.parseRetryAfter(header, NOW));
  }
}
