package dev.secinfra;

/**
 * A client's retry budget (spec 6): a bucket of whole tokens; retries spend them, successful calls
 * earn them back, and an empty bucket stops retries (never first attempts). Thread-safe.
 */
public final class RetryBudget {
  /** Bucket capacity; a new client starts full. */
  public static final int DEFAULT_CAPACITY = 500;
  /** Cost of a retry. */
  public static final int DEFAULT_RETRY_COST = 5;
  /** Cost of a retry after a timed-out attempt. */
  public static final int DEFAULT_TIMEOUT_RETRY_COST = 10;
  /** Refund for a call that ends in success. */
  public static final int DEFAULT_SUCCESS_REFUND = 1;

  private final int capacity;
  private final int retryCost;
  private final int timeoutRetryCost;
  private final int successRefund;
  private int tokens;

  /** A budget with the default sizes. */
  public RetryBudget() {
    this(DEFAULT_CAPACITY, DEFAULT_RETRY_COST, DEFAULT_TIMEOUT_RETRY_COST, DEFAULT_SUCCESS_REFUND);
  }

  /**
   * A full budget.
   *
   * @param capacity tokens held at most (not negative)
   * @param retryCost cost of a retry (not negative)
   * @param timeoutRetryCost cost of a retry after a timeout (not negative)
   * @param successRefund refund per successful call (not negative)
   */
  public RetryBudget(int capacity, int retryCost, int timeoutRetryCost, int successRefund) {
    if (capacity < 0 || retryCost < 0 || timeoutRetryCost < 0 || successRefund < 0) {
      throw new IllegalArgumentException("secinfra: config: retry budget values must not be negative");
    }
    this.capacity = capacity;
    this.retryCost = retryCost;
    this.timeoutRetryCost = timeoutRetryCost;
    this.successRefund = successRefund;
    this.tokens = capacity;
  }

  /**
   * Takes the cost of one retry, atomically, if the bucket holds it.
   *
   * @param afterTimeout the failed attempt timed out
   * @return true when the retry may happen
   */
  public synchronized boolean tryRetry(boolean afterTimeout) {
    int cost = afterTimeout ? timeoutRetryCost : retryCost;
    if (tokens < cost) {
      return false;
    }
    tokens -= cost;
    return true;
  }

  /** Adds the success refund, never beyond the capacity. */
  public synchronized void onSuccess() {
    tokens = Math.min(capacity, tokens + successRefund);
  }

  /**
   * The tokens left.
   *
   * @return the tokens
   */
  public synchronized int tokens() {
    return tokens;
  }

  /**
   * The capacity.
   *
   * @return the capacity
   */
  public int capacity() {
    return capacity;
  }
}
