package dev.secinfra.internal.rotation;

import dev.secinfra.RotationPolicy;
import dev.secinfra.identity.X509Bundle;
import dev.secinfra.internal.retry.Retry;
import java.time.Duration;
import java.time.Instant;

/**
 * Rotation timing (spec 9.2, 9.4, 10.2) as pure functions of the client's {@link RotationPolicy}:
 * when to renew, how long to wait after a failed renewal, when to refresh the trust bundle. No
 * I/O and no clock: the rotating identity source passes the time and the uniform draws in, so a
 * table of inputs pins every schedule.
 */
public final class Rotation {
  private Rotation() {}

  /**
   * When to renew a certificate: {@code issueTime + fraction * lifetime - u * jitter * lifetime}
   * (spec 9.2), with {@code u} uniform in [0, 1).
   *
   * @param issueTime the certificate's issue time (spec 9.1)
   * @param lifetime its lifetime, {@code NotAfter - issueTime}
   * @param policy the client's rotation settings
   * @param u a uniform draw in [0, 1) for the jitter
   * @return the renewal time
   */
  public static Instant renewalTime(
      Instant issueTime, Duration lifetime, RotationPolicy policy, double u) {
    long lifetimeMillis = lifetime.toMillis();
    double jitter = u * policy.renewalJitter() * lifetimeMillis;
    return issueTime.plusMillis((long) (policy.renewalFraction() * lifetimeMillis - jitter));
  }

  /**
   * The wait before the next renewal try after {@code failures} consecutive failures (spec 9.4).
   *
   * @param delay how long to wait
   * @param lastChance the retry limit ({@code renewal_expiry_margin} before NotAfter) has passed:
   *     this is the one try made at once, and there is none after it
   */
  public record RetryDelay(Duration delay, boolean lastChance) {}

  /**
   * The wait before the next renewal try: {@code u * min(retry_max, retry_base * 2^(k-1))}, but
   * never past {@code renewal_expiry_margin} before NotAfter; once that moment has passed, one
   * last try at once (spec 9.4.1, 9.4.2).
   *
   * @param failures consecutive failed renewals, from 1
   * @param policy the client's rotation settings
   * @param u a uniform draw in [0, 1)
   * @param now the wall clock
   * @param notAfter the current certificate's NotAfter
   * @return the wait, and whether it is the last chance
   */
  public static RetryDelay retryDelay(
      int failures, RotationPolicy policy, double u, Instant now, Instant notAfter) {
    long ceilingNanos =
        Retry.backoffCeilingNanos(failures, policy.renewalRetryBase(), policy.renewalRetryMax());
    Duration delay = Duration.ofNanos(Retry.fullJitter(ceilingNanos, u));
    Instant limit = notAfter.minus(policy.renewalExpiryMargin());
    if (!now.plus(delay).isAfter(limit)) {
      return new RetryDelay(delay, false);
    }
    if (now.isBefore(limit)) {
      return new RetryDelay(Duration.between(now, limit), false);
    }
    return new RetryDelay(Duration.ZERO, true);
  }

  /**
   * The interval to the next bundle refresh after a successful fetch (spec 10.2.1): the bundle's
   * refresh hint, {@code bundle_refresh_default} without a positive one, clamped to [{@code
   * bundle_refresh_min}, {@code bundle_refresh_max}].
   *
   * @param bundle the bundle held
   * @param policy the client's rotation settings
   * @return the interval
   */
  public static Duration bundleRefresh(X509Bundle bundle, RotationPolicy policy) {
    Duration interval =
        bundle
            .refreshHintSeconds()
            .filter(h -> h > 0)
            .map(h -> Duration.ofSeconds(h))
            .orElse(policy.bundleRefreshDefault());
    if (interval.compareTo(policy.bundleRefreshMin()) < 0) {
      return policy.bundleRefreshMin();
    }
    return interval.compareTo(policy.bundleRefreshMax()) > 0 ? policy.bundleRefreshMax() : interval;
  }

  /**
   * The wait before the next try after a failed bundle fetch: {@code min(refresh, bundle_retry)}
   * (spec 10.2.3).
   *
   * @param bundle the bundle held
   * @param policy the client's rotation settings
   * @return the wait
   */
  public static Duration bundleRetry(X509Bundle bundle, RotationPolicy policy) {
    Duration refresh = bundleRefresh(bundle, policy);
    return refresh.compareTo(policy.bundleRetry()) < 0 ? refresh : policy.bundleRetry();
  }
}
