package dev.secinfra;

import dev.secinfra.rpc.CallOptions;
import dev.secinfra.rpc.Validate;
import java.time.Duration;

/**
 * A client's defaults for retries and time limits (spec 3 and 5); every value can be overridden
 * per call with {@link CallOptions}. Immutable; invalid values are rejected when set.
 */
public final class RetryPolicy {
  /** Attempts per call, the first included (1 + 3 retries). */
  public static final int DEFAULT_MAX_ATTEMPTS = 4;
  /** Backoff base: retry n waits up to {@code base * 2^(n-1)}. */
  public static final Duration DEFAULT_BASE_BACKOFF = Duration.ofMillis(100);
  /** Backoff ceiling. */
  public static final Duration DEFAULT_MAX_BACKOFF = Duration.ofSeconds(5);
  /** The longest {@code Retry-After} a call waits for. */
  public static final Duration DEFAULT_MAX_RETRY_AFTER = Duration.ofSeconds(60);
  /** Per-call deadline. */
  public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(30);
  /** Per-attempt timeout. */
  public static final Duration DEFAULT_ATTEMPT_TIMEOUT = Duration.ofSeconds(10);

  /** The defaults above. */
  public static final RetryPolicy DEFAULTS = builder().build();

  private final int maxAttempts;
  private final Duration baseBackoff;
  private final Duration maxBackoff;
  private final Duration maxRetryAfter;
  private final Duration deadline;
  private final Duration attemptTimeout;

  private RetryPolicy(Builder b) {
    this.maxAttempts = b.maxAttempts;
    this.baseBackoff = b.baseBackoff;
    this.maxBackoff = b.maxBackoff;
    this.maxRetryAfter = b.maxRetryAfter;
    this.deadline = b.deadline;
    this.attemptTimeout = b.attemptTimeout;
  }

  /**
   * A builder starting from the defaults.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Attempts per call.
   *
   * @return the attempt limit
   */
  public int maxAttempts() {
    return maxAttempts;
  }

  /**
   * Backoff base.
   *
   * @return the base
   */
  public Duration baseBackoff() {
    return baseBackoff;
  }

  /**
   * Backoff ceiling.
   *
   * @return the ceiling
   */
  public Duration maxBackoff() {
    return maxBackoff;
  }

  /**
   * The longest {@code Retry-After} waited for.
   *
   * @return the cap
   */
  public Duration maxRetryAfter() {
    return maxRetryAfter;
  }

  /**
   * Per-call deadline.
   *
   * @return the deadline
   */
  public Duration deadline() {
    return deadline;
  }

  /**
   * Per-attempt timeout.
   *
   * @return the timeout
   */
  public Duration attemptTimeout() {
    return attemptTimeout;
  }

  /** Builds a {@link RetryPolicy}. */
  public static final class Builder {
    private int maxAttempts = DEFAULT_MAX_ATTEMPTS;
    private Duration baseBackoff = DEFAULT_BASE_BACKOFF;
    private Duration maxBackoff = DEFAULT_MAX_BACKOFF;
    private Duration maxRetryAfter = DEFAULT_MAX_RETRY_AFTER;
    private Duration deadline = DEFAULT_DEADLINE;
    private Duration attemptTimeout = DEFAULT_ATTEMPT_TIMEOUT;

    private Builder() {}

    /**
     * Sets the attempt limit; 1 turns retries off.
     *
     * @param value at least 1
     * @return this builder
     */
    public Builder maxAttempts(int value) {
      this.maxAttempts = Validate.attempts(value);
      return this;
    }

    /**
     * Sets the backoff base.
     *
     * @param value not negative
     * @return this builder
     */
    public Builder baseBackoff(Duration value) {
      this.baseBackoff = Validate.notNegative("baseBackoff", value);
      return this;
    }

    /**
     * Sets the backoff ceiling.
     *
     * @param value not negative
     * @return this builder
     */
    public Builder maxBackoff(Duration value) {
      this.maxBackoff = Validate.notNegative("maxBackoff", value);
      return this;
    }

    /**
     * Sets the longest {@code Retry-After} waited for.
     *
     * @param value not negative
     * @return this builder
     */
    public Builder maxRetryAfter(Duration value) {
      this.maxRetryAfter = Validate.notNegative("maxRetryAfter", value);
      return this;
    }

    /**
     * Sets the per-call deadline.
     *
     * @param value greater than zero
     * @return this builder
     */
    public Builder deadline(Duration value) {
      this.deadline = Validate.positive("deadline", value);
      return this;
    }

    /**
     * Sets the per-attempt timeout.
     *
     * @param value greater than zero
     * @return this builder
     */
    public Builder attemptTimeout(Duration value) {
      this.attemptTimeout = Validate.positive("attemptTimeout", value);
      return this;
    }

    /**
     * The policy.
     *
     * @return a new policy
     */
    public RetryPolicy build() {
      return new RetryPolicy(this);
    }
  }
}
