package dev.secinfra.internal.call;

/**
 * What the call pipeline asks of the identity source: a valid identity before each mTLS attempt
 * (not for a fresh cache hit, which sends nothing), and one bundle refresh after a server
 * verification failure. Defined here, where it is needed, and implemented by the rotating
 * identity source.
 */
public interface IdentityGate {
  /**
   * Returns when the client has a valid identity for an mTLS attempt; waits (until the deadline)
   * for a re-enrolment in progress.
   *
   * @param deadlineNanos the call's deadline on the monotonic clock
   * @throws dev.secinfra.errors.SecinfraException {@code identity_expired}, or the deadline
   */
  void awaitIdentity(long deadlineNanos);

  /**
   * Fetches the trust bundle once, now, after a verification failure (spec 10.3).
   *
   * @param deadlineNanos the call's deadline
   * @return true when a newer bundle was installed
   */
  boolean refreshBundleNow(long deadlineNanos);
}
