package dev.secinfra.rpc;

import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.InvalidArgumentException;
import java.time.Duration;

/**
 * Per-call options, laid over the client's defaults: a value set here wins, a value left unset
 * keeps the client's. Immutable; invalid values are rejected when set.
 */
public final class CallOptions {
  /** No overrides. */
  public static final CallOptions DEFAULTS = builder().build();

  private final Integer maxAttempts;
  private final Duration baseBackoff;
  private final Duration maxBackoff;
  private final Duration maxRetryAfter;
  private final Duration deadline;
  private final Duration attemptTimeout;
  private final String idempotencyKey;
  private final Boolean useCache;
  private final boolean revalidate;
  private final MetaCapture capture;

  private CallOptions(Builder b) {
    this.maxAttempts = b.maxAttempts;
    this.baseBackoff = b.baseBackoff;
    this.maxBackoff = b.maxBackoff;
    this.maxRetryAfter = b.maxRetryAfter;
    this.deadline = b.deadline;
    this.attemptTimeout = b.attemptTimeout;
    this.idempotencyKey = b.idempotencyKey;
    this.useCache = b.useCache;
    this.revalidate = b.revalidate;
    this.capture = b.capture;
  }

  /**
   * A builder with nothing set.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * The attempt limit, or null to keep the client's.
   *
   * @return the value or null
   */
  public Integer maxAttempts() {
    return maxAttempts;
  }

  /**
   * The backoff base, or null.
   *
   * @return the value or null
   */
  public Duration baseBackoff() {
    return baseBackoff;
  }

  /**
   * The backoff ceiling, or null.
   *
   * @return the value or null
   */
  public Duration maxBackoff() {
    return maxBackoff;
  }

  /**
   * The {@code Retry-After} cap, or null.
   *
   * @return the value or null
   */
  public Duration maxRetryAfter() {
    return maxRetryAfter;
  }

  /**
   * The deadline, or null.
   *
   * @return the value or null
   */
  public Duration deadline() {
    return deadline;
  }

  /**
   * The attempt timeout, or null.
   *
   * @return the value or null
   */
  public Duration attemptTimeout() {
    return attemptTimeout;
  }

  /**
   * The caller's Idempotency-Key, or null for a fresh UUIDv4.
   *
   * @return the key or null
   */
  public String idempotencyKey() {
    return idempotencyKey;
  }

  /**
   * Whether to use the cache, or null to keep the client's setting.
   *
   * @return the value or null
   */
  public Boolean useCache() {
    return useCache;
  }

  /**
   * Whether a cacheable call must reach the server even when a fresh entry is cached.
   *
   * @return true to revalidate
   */
  public boolean revalidate() {
    return revalidate;
  }

  /**
   * Where the call's {@link ResponseMeta} is recorded, or null.
   *
   * @return the capture or null
   */
  public MetaCapture capture() {
    return capture;
  }

  /** Builds {@link CallOptions}. */
  public static final class Builder {
    private Integer maxAttempts;
    private Duration baseBackoff;
    private Duration maxBackoff;
    private Duration maxRetryAfter;
    private Duration deadline;
    private Duration attemptTimeout;
    private String idempotencyKey;
    private Boolean useCache;
    private boolean revalidate;
    private MetaCapture capture;

    private Builder() {}

    /**
     * Sets the attempt limit for this call; 1 turns retries off.
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
     * Sets the {@code Retry-After} cap.
     *
     * @param value not negative
     * @return this builder
     */
    public Builder maxRetryAfter(Duration value) {
      this.maxRetryAfter = Validate.notNegative("maxRetryAfter", value);
      return this;
    }

    /**
     * Sets the deadline of this call.
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
     * Sets the Idempotency-Key sent on every attempt (ignored by read-only RPCs).
     *
     * @param value 1 to 255 visible ASCII characters
     * @return this builder
     * @throws InvalidArgumentException for any other key, before anything is sent (spec 4.4.2)
     */
    public Builder idempotencyKey(String value) {
      if (value == null || value.isEmpty() || value.length() > 255
          || !value.chars().allMatch(c -> c >= 0x21 && c <= 0x7e)) {
        throw new InvalidArgumentException(
            ErrorInfo.of(
                "invalid_argument",
                "secinfra: idempotency: idempotencyKey must be 1 to 255 visible ASCII characters"
                    + " (0x21-0x7E); leave it unset for a fresh UUIDv4",
                false,
                0),
            null);
      }
      this.idempotencyKey = value;
      return this;
    }

    /**
     * Sets whether this call may read and store cache entries.
     *
     * @param value false to bypass the cache
     * @return this builder
     */
    public Builder useCache(boolean value) {
      this.useCache = value;
      return this;
    }

    /**
     * Makes a cacheable call reach the server even when a fresh entry is cached (spec 7.12.2):
     * the entry's ETag makes the request conditional, a 304 keeps the entry and returns its
     * value, and a failed request is the call's error, never a stale entry in its place. The
     * trust-bundle refresh of a rotating identity uses it (spec 10.2.2).
     *
     * @param value true to revalidate
     * @return this builder
     */
    public Builder revalidate(boolean value) {
      this.revalidate = value;
      return this;
    }

    /**
     * Records this call's {@link ResponseMeta} into {@code value}.
     *
     * @param value the capture
     * @return this builder
     */
    public Builder capture(MetaCapture value) {
      this.capture = value;
      return this;
    }

    /**
     * The options.
     *
     * @return new options
     */
    public CallOptions build() {
      return new CallOptions(this);
    }
  }
}
