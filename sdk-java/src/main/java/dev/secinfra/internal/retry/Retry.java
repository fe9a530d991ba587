package dev.secinfra.internal.retry;

import dev.secinfra.rpc.Idempotency;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.Set;
import java.util.function.DoubleSupplier;

/**
 * The retry rules of spec 3 as one pure decision: {@link #decide} looks at how an attempt ended
 * and says whether to try again, after how long, or why not. Nothing here sends, sleeps, reads a
 * clock or spends the budget; the call pipeline does that with the decision in hand, so every
 * rule can be tested with a table (as stripe-python's {@code _should_retry} and the Go SDK's
 * {@code retry.Decide}).
 */
public final class Retry {
  /** Statuses retried whatever the call's idempotency (spec 3.3 c). */
  public static final Set<Integer> ALWAYS_RETRIED = Set.of(408, 429, 502, 503, 504);

  private static final DateTimeFormatter IMF =
      DateTimeFormatter.ofPattern("EEE, dd MMM yyyy HH:mm:ss 'GMT'", Locale.US).withZone(ZoneOffset.UTC);
  private static final DateTimeFormatter RFC850 =
      DateTimeFormatter.ofPattern("EEEE, dd-MMM-yy HH:mm:ss 'GMT'", Locale.US).withZone(ZoneOffset.UTC);
  private static final DateTimeFormatter ASCTIME =
      DateTimeFormatter.ofPattern("EEE MMM ppd HH:mm:ss yyyy", Locale.US).withZone(ZoneOffset.UTC);

  private Retry() {}

  /**
   * How one attempt ended: a response ({@code status > 0}) or no response.
   *
   * @param status the HTTP status, or 0 without a response
   * @param retryAfter the {@code Retry-After} header, or null
   * @param shouldRetry the {@code Secinfra-Should-Retry} header, or null
   * @param beforeSend without a response: the request was certainly not sent
   * @param timedOut without a response: the attempt ran out of time
   */
  public record Outcome(
      int status, String retryAfter, String shouldRetry, boolean beforeSend, boolean timedOut) {
    /**
     * A response.
     *
     * @param status the HTTP status
     * @param retryAfter the {@code Retry-After} header, or null
     * @param shouldRetry the {@code Secinfra-Should-Retry} header, or null
     * @return the outcome
     */
    public static Outcome response(int status, String retryAfter, String shouldRetry) {
      return new Outcome(status, retryAfter, shouldRetry, false, false);
    }

    /**
     * No response: a connection failure or a timeout.
     *
     * @param beforeSend the request was certainly not sent
     * @param timedOut the attempt ran out of time
     * @return the outcome
     */
    public static Outcome failure(boolean beforeSend, boolean timedOut) {
      return new Outcome(0, null, null, beforeSend, timedOut);
    }

    /**
     * Whether there was a response.
     *
     * @return true for a response
     */
    public boolean answered() {
      return status > 0;
    }
  }

  /**
   * The settings of one call that the rules read: the client's, with the call's options laid
   * over them.
   *
   * @param maxAttempts attempts in all, the first included
   * @param baseBackoff the backoff ceiling before the first retry
   * @param maxBackoff the largest backoff ceiling
   * @param maxRetryAfter the longest {@code Retry-After} waited for
   */
  public record Policy(
      int maxAttempts, Duration baseBackoff, Duration maxBackoff, Duration maxRetryAfter) {}

  /**
   * Everything {@link #decide} reads besides the outcome.
   *
   * @param policy the call's settings
   * @param idempotency the RPC's idempotency
   * @param hasKey the call carries an {@code Idempotency-Key}
   * @param attempt the attempt that just ended, from 1
   * @param remainingNanos time left before the call's deadline
   * @param now the wall clock, for a {@code Retry-After} HTTP-date
   * @param uniform draws a uniform value in [0, 1) for the jitter
   */
  public record Input(
      Policy policy,
      Idempotency idempotency,
      boolean hasKey,
      int attempt,
      long remainingNanos,
      Instant now,
      DoubleSupplier uniform) {}

  /** Why a decision came out as it did. */
  public enum Reason {
    /** Try again after {@link Decision#delayNanos}. */
    RETRY,
    /** The status is not retried (spec 3.3). */
    NOT_RETRYABLE,
    /** {@code Secinfra-Should-Retry: false}. */
    SERVER_SAID_NO,
    /** The request may have reached the server and the call is not safe to repeat (3.2). */
    UNSAFE_TO_RESEND,
    /** The attempt limit is reached. */
    ATTEMPTS_EXHAUSTED,
    /** The deadline has passed. */
    DEADLINE_REACHED,
    /** The next backoff would end after the deadline. */
    BACKOFF_PAST_DEADLINE,
    /** {@code Retry-After} is longer than {@code maxRetryAfter} (3.6.6). */
    RETRY_AFTER_TOO_LONG,
    /** {@code Retry-After} ends after the deadline (3.6.6). */
    RETRY_AFTER_PAST_DEADLINE
  }

  /**
   * What to do after a failed attempt.
   *
   * @param reason why; {@link Reason#RETRY} to try again
   * @param delayNanos the wait before the next attempt (for {@link Reason#RETRY})
   * @param retryAfter the server's valid {@code Retry-After} in seconds, or null
   */
  public record Decision(Reason reason, long delayNanos, Double retryAfter) {
    /**
     * Whether to try again.
     *
     * @return true for {@link Reason#RETRY}
     */
    public boolean retry() {
      return reason == Reason.RETRY;
    }
  }

  /**
   * Applies the rules of spec 3 in order to a failed attempt (a response of 400 or more, or no
   * response). A retry it allows is not yet paid for: the caller asks the budget next.
   *
   * @param outcome how the attempt ended
   * @param in the call's settings and state
   * @return the decision
   */
  public static Decision decide(Outcome outcome, Input in) {
    Double retryAfter = null;
    if (outcome.answered()) {
      retryAfter = parseRetryAfter(outcome.retryAfter(), in.now());
      Reason refused = statusRefused(outcome.status(), outcome.shouldRetry(), in.idempotency());
      if (refused != null) {
        return new Decision(refused, 0, retryAfter);
      }
    } else {
      if (outcome.timedOut() && in.remainingNanos() <= 0) {
        return new Decision(Reason.DEADLINE_REACHED, 0, null);
      }
      if (!outcome.beforeSend() && !in.idempotency().safeToRepeat() && !in.hasKey()) {
        return new Decision(Reason.UNSAFE_TO_RESEND, 0, null);
      }
    }
    Policy p = in.policy();
    if (in.attempt() >= p.maxAttempts()) {
      return new Decision(Reason.ATTEMPTS_EXHAUSTED, 0, retryAfter);
    }
    if (in.remainingNanos() <= 0) {
      return new Decision(Reason.DEADLINE_REACHED, 0, retryAfter);
    }
    if (retryAfter != null) {
      double capSeconds = p.maxRetryAfter().toNanos() / 1e9;
      if (retryAfter > capSeconds) {
        return new Decision(Reason.RETRY_AFTER_TOO_LONG, 0, retryAfter);
      }
      if (retryAfter * 1e9 >= in.remainingNanos()) {
        return new Decision(Reason.RETRY_AFTER_PAST_DEADLINE, 0, retryAfter);
      }
      return new Decision(Reason.RETRY, (long) (retryAfter * 1e9), retryAfter);
    }
    long ceiling = backoffCeilingNanos(in.attempt(), p.baseBackoff(), p.maxBackoff());
    long wait = ceiling <= 0 ? 0 : fullJitter(ceiling, in.uniform().getAsDouble());
    if (wait >= in.remainingNanos()) {
      return new Decision(Reason.BACKOFF_PAST_DEADLINE, 0, null);
    }
    return new Decision(Reason.RETRY, wait, null);
  }

  /**
   * Whether a response's status is refused a retry (spec 3.3 b to f), and why; null when it may
   * be retried. {@code Secinfra-Should-Retry} overrides the status rules.
   *
   * @param status the HTTP status (400 or more)
   * @param shouldRetry the {@code Secinfra-Should-Retry} header, or null
   * @param idempotency the RPC's idempotency
   * @return the reason for no retry, or null
   */
  public static Reason statusRefused(int status, String shouldRetry, Idempotency idempotency) {
    if (shouldRetry != null) {
      String verdict = shouldRetry.strip().toLowerCase(Locale.ROOT);
      if (verdict.equals("false")) {
        return Reason.SERVER_SAID_NO;
      }
      if (verdict.equals("true")) {
        return null;
      }
    }
    if (ALWAYS_RETRIED.contains(status)) {
      return null;
    }
    return status == 500 && idempotency.safeToRepeat() ? null : Reason.NOT_RETRYABLE;
  }

  /**
   * The backoff ceiling before retry {@code n}: {@code min(max, base * 2^(n-1))} (spec 3.5).
   *
   * @param retry the retry number, 1 for the second attempt
   * @param base the base
   * @param max the ceiling
   * @return the ceiling in nanoseconds
   */
  public static long backoffCeilingNanos(int retry, Duration base, Duration max) {
    double ceiling = base.toNanos() * Math.pow(2, Math.max(0, retry - 1));
    return (long) Math.min((double) max.toNanos(), ceiling);
  }

  /**
   * Full jitter: uniform in [0, ceiling], from one uniform draw {@code u} in [0, 1). Its own
   * function so that tests can pin it.
   *
   * @param ceilingNanos the ceiling
   * @param u a uniform value in [0, 1)
   * @return the wait in nanoseconds
   */
  public static long fullJitter(long ceilingNanos, double u) {
    return (long) (u * ceilingNanos);
  }

  /**
   * {@code Retry-After} in both forms of RFC 9110 (spec 3.6): delay-seconds, or an HTTP-date
   * measured from {@code now} (a past date is 0).
   *
   * @param value the header value, or null
   * @param now the wall-clock time
   * @return seconds, or null when the value is absent or invalid
   */
  public static Double parseRetryAfter(String value, Instant now) {
    if (value == null) {
      return null;
    }
    String text = value.strip();
    if (text.isEmpty()) {
      return null;
    }
    if (text.chars().allMatch(c -> c >= '0' && c <= '9')) {
      try {
        return (double) Long.parseLong(text);
      } catch (NumberFormatException e) {
        return Double.MAX_VALUE;
      }
    }
    Instant date = parseHttpDate(text);
    if (date == null) {
      return null;
    }
    double seconds = (date.toEpochMilli() - now.toEpochMilli()) / 1000.0;
    return Math.max(0.0, seconds);
  }

  private static Instant parseHttpDate(String text) {
    for (DateTimeFormatter format : new DateTimeFormatter[] {IMF, ASCTIME}) {
      try {
        return ZonedDateTime.parse(text, format).toInstant();
      } catch (DateTimeParseException e) {
        // next form
      }
    }
    try {
      ZonedDateTime parsed = ZonedDateTime.parse(text, RFC850);
      // Two-digit years: RFC 9110 reads a year more than 50 years ahead as the past century.
      if (parsed.getYear() > ZonedDateTime.now(ZoneOffset.UTC).getYear() + 50) {
        parsed = parsed.minusYears(100);
      }
      return parsed.toInstant();
    } catch (DateTimeParseException e) {
      return null;
    }
  }
}
