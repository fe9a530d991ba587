package dev.secinfra.rpc;

import java.time.Duration;
import java.util.Objects;

/**
 * The checks every setting passes when it is given (spec 1.4.4): per-call options here, and the
 * client's retry and rotation settings, so that an invalid value fails at once with an error that
 * names it, not later in a call.
 */
public final class Validate {
  private Validate() {}

  /**
   * An attempt limit: at least 1.
   *
   * @param value the limit
   * @return the value
   * @throws IllegalArgumentException naming {@code maxAttempts}
   */
  public static int attempts(int value) {
    if (value < 1) {
      throw new IllegalArgumentException("secinfra: config: maxAttempts must be at least 1, got " + value);
    }
    return value;
  }

  /**
   * A duration greater than zero.
   *
   * @param name the setting's name, for the error
   * @param value the duration
   * @return the value
   * @throws IllegalArgumentException naming the setting
   */
  public static Duration positive(String name, Duration value) {
    Objects.requireNonNull(value, name);
    if (value.isNegative() || value.isZero()) {
      throw new IllegalArgumentException("secinfra: config: " + name + " must be greater than zero");
    }
    return value;
  }

  /**
   * A duration not below zero.
   *
   * @param name the setting's name, for the error
   * @param value the duration
   * @return the value
   * @throws IllegalArgumentException naming the setting
   */
  public static Duration notNegative(String name, Duration value) {
    Objects.requireNonNull(value, name);
    if (value.isNegative()) {
      throw new IllegalArgumentException("secinfra: config: " + name + " must not be negative");
    }
    return value;
  }
}
