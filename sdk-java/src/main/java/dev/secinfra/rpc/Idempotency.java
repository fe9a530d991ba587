package dev.secinfra.rpc;

/** An RPC's idempotency, from its descriptor. */
public enum Idempotency {
  /** Reads only; safe to repeat; never carries an Idempotency-Key. */
  READ_ONLY,
  /** Changes state, with the same effect when repeated; carries an Idempotency-Key. */
  IDEMPOTENT,
  /** Changes state; carries an Idempotency-Key so retries are safe. */
  NON_IDEMPOTENT;

  /**
   * The class's lowercase name, as the API definition and observers spell it ({@code read_only},
   * {@code idempotent}, {@code non_idempotent}).
   *
   * @return the name
   */
  public String wire() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }

  /**
   * Whether a call of this kind is safe to repeat ({@code READ_ONLY} or {@code IDEMPOTENT}).
   *
   * @return true when safe to repeat
   */
  public boolean safeToRepeat() {
    return this != NON_IDEMPOTENT;
  }
}
