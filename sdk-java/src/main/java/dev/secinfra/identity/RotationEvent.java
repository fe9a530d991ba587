package dev.secinfra.identity;

import java.time.Instant;

/**
 * A change of a client's identity or trust bundle, delivered to subscribers after it is installed.
 *
 * @param kind what happened
 * @param snapshot the identity snapshot current after the change (null if none)
 * @param bundle the trust bundle current after the change
 * @param error the error, for {@link Kind#RENEWAL_FAILED} and {@link Kind#EXPIRED}; else null
 * @param at when the change happened (wall clock)
 */
public record RotationEvent(
    Kind kind, IdentitySnapshot snapshot, X509Bundle bundle, Throwable error, Instant at) {

  /** The event kinds (spec 9.8.2). */
  public enum Kind {
    /** The client enrolled (first enrolment or re-enrolment). */
    ENROLLED("enrolled"),
    /** The certificate was renewed. */
    RENEWED("renewed"),
    /** A renewal attempt failed; the current certificate stays in use. */
    RENEWAL_FAILED("renewal_failed"),
    /** The certificate expired without a successful renewal. */
    EXPIRED("expired"),
    /** A new trust bundle was installed. */
    BUNDLE_UPDATED("bundle_updated");

    private final String wire;

    Kind(String wire) {
      this.wire = wire;
    }

    /**
     * The kind's lowercase name ({@code renewal_failed}).
     *
     * @return the name
     */
    public String wire() {
      return wire;
    }
  }
}
