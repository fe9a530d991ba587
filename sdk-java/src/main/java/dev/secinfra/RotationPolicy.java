package dev.secinfra;

import dev.secinfra.rpc.Validate;
import java.time.Duration;

/**
 * A client's rotation settings (spec 9 and 10), per client only. Immutable.
 *
 * @param renewalFraction renew at this fraction of the lifetime (0 &lt; f &lt; 1)
 * @param renewalJitter minus up to this fraction of the lifetime, drawn uniformly
 * @param renewalRetryBase first backoff ceiling after a failed renewal
 * @param renewalRetryMax largest backoff ceiling after failed renewals
 * @param renewalExpiryMargin the last retry is scheduled no later than this before NotAfter
 * @param reenrolRetry re-enrolment retry interval after expiry (reusable attestations only)
 * @param bundleRetry retry interval after a failed bundle fetch (or the refresh, if shorter)
 * @param bundleRefreshDefault refresh interval when the bundle has no usable hint
 * @param bundleRefreshMin smallest refresh interval
 * @param bundleRefreshMax largest refresh interval
 */
public record RotationPolicy(
    double renewalFraction,
    double renewalJitter,
    Duration renewalRetryBase,
    Duration renewalRetryMax,
    Duration renewalExpiryMargin,
    Duration reenrolRetry,
    Duration bundleRetry,
    Duration bundleRefreshDefault,
    Duration bundleRefreshMin,
    Duration bundleRefreshMax) {
  /** Renewal starts at half the lifetime... */
  public static final double DEFAULT_RENEWAL_FRACTION = 0.5;
  /** ...minus up to a tenth of it. */
  public static final double DEFAULT_RENEWAL_JITTER = 0.1;
  /** First backoff ceiling after a failed renewal. */
  public static final Duration DEFAULT_RENEWAL_RETRY_BASE = Duration.ofSeconds(1);
  /** Largest backoff ceiling after failed renewals. */
  public static final Duration DEFAULT_RENEWAL_RETRY_MAX = Duration.ofSeconds(60);
  /** The last renewal retry is no later than this before NotAfter. */
  public static final Duration DEFAULT_RENEWAL_EXPIRY_MARGIN = Duration.ofSeconds(1);
  /** Re-enrolment retry interval. */
  public static final Duration DEFAULT_REENROL_RETRY = Duration.ofSeconds(30);
  /** Bundle fetch retry interval. */
  public static final Duration DEFAULT_BUNDLE_RETRY = Duration.ofSeconds(30);
  /** Refresh without a usable hint. */
  public static final Duration DEFAULT_BUNDLE_REFRESH = Duration.ofSeconds(300);
  /** Smallest refresh. */
  public static final Duration DEFAULT_BUNDLE_REFRESH_MIN = Duration.ofSeconds(1);
  /** Largest refresh. */
  public static final Duration DEFAULT_BUNDLE_REFRESH_MAX = Duration.ofSeconds(86_400);

  /** The defaults above. */
  public static final RotationPolicy DEFAULTS =
      new RotationPolicy(
          DEFAULT_RENEWAL_FRACTION,
          DEFAULT_RENEWAL_JITTER,
          DEFAULT_RENEWAL_RETRY_BASE,
          DEFAULT_RENEWAL_RETRY_MAX,
          DEFAULT_RENEWAL_EXPIRY_MARGIN,
          DEFAULT_REENROL_RETRY,
          DEFAULT_BUNDLE_RETRY,
          DEFAULT_BUNDLE_REFRESH,
          DEFAULT_BUNDLE_REFRESH_MIN,
          DEFAULT_BUNDLE_REFRESH_MAX);

  /**
   * Rejects invalid settings, naming them.
   *
   * @param renewalFraction renew at this fraction of the lifetime (0 &lt; f &lt; 1)
   * @param renewalJitter minus up to this fraction of the lifetime, drawn uniformly
   * @param renewalRetryBase first backoff ceiling after a failed renewal
   * @param renewalRetryMax largest backoff ceiling after failed renewals
   * @param renewalExpiryMargin the last retry is scheduled no later than this before NotAfter
   * @param reenrolRetry re-enrolment retry interval after expiry (reusable attestations only)
   * @param bundleRetry retry interval after a failed bundle fetch (or the refresh, if shorter)
   * @param bundleRefreshDefault refresh interval when the bundle has no usable hint
   * @param bundleRefreshMin smallest refresh interval
   * @param bundleRefreshMax largest refresh interval
   */
  public RotationPolicy {
    if (!(renewalFraction > 0 && renewalFraction < 1)) {
      throw new IllegalArgumentException("secinfra: config: renewalFraction must be in (0, 1)");
    }
    if (!(renewalJitter >= 0 && renewalJitter < renewalFraction)) {
      throw new IllegalArgumentException(
          "secinfra: config: renewalJitter must be in [0, renewalFraction)");
    }
    Validate.notNegative("renewalRetryBase", renewalRetryBase);
    Validate.notNegative("renewalRetryMax", renewalRetryMax);
    Validate.notNegative("renewalExpiryMargin", renewalExpiryMargin);
    Validate.positive("reenrolRetry", reenrolRetry);
    Validate.positive("bundleRetry", bundleRetry);
    Validate.positive("bundleRefreshDefault", bundleRefreshDefault);
    Validate.positive("bundleRefreshMin", bundleRefreshMin);
    Validate.positive("bundleRefreshMax", bundleRefreshMax);
  }
}
