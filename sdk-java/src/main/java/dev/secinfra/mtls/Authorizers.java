package dev.secinfra.mtls;

import dev.secinfra.identity.SpiffeId;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * The authorizers a TLS configuration can be built with (the forms of go-spiffe's {@code
 * tlsconfig} authorizers). Every argument is checked when the authorizer is built, so a typo in a
 * SPIFFE ID fails at start-up, not as refused handshakes later. Each one's {@code toString()}
 * says what it allows; refusals quote it.
 *
 * <pre>{@code
 * Authorizers.id("spiffe://secinfra.local/billing")
 * Authorizers.oneOf("spiffe://secinfra.local/billing", "spiffe://secinfra.local/reports")
 * Authorizers.memberOf("secinfra.local")
 * Authorizers.pathPrefix("secinfra.local", "/payments")
 * Authorizers.predicate("a canary workload", id -> id.endsWith("/canary"))
 * Authorizers.any()
 * }</pre>
 */
public final class Authorizers {
  private Authorizers() {}

  /**
   * Accepts any peer whose chain verifies against the trust bundle: every workload of the trust
   * domain. The name says so on purpose; prefer a narrower authorizer.
   *
   * @return the authorizer
   */
  public static Authorizer any() {
    return new Named("any peer of the trust bundle", peerId -> true);
  }

  /**
   * Accepts exactly one SPIFFE ID.
   *
   * @param spiffeId the peer's ID, for example {@code spiffe://secinfra.local/billing}
   * @return the authorizer
   * @throws IllegalArgumentException when {@code spiffeId} is not a SPIFFE ID
   */
  public static Authorizer id(String spiffeId) {
    String expected = requireId(spiffeId);
    return new Named("the SPIFFE ID " + expected, expected::equals);
  }

  /**
   * Accepts any of a set of SPIFFE IDs.
   *
   * @param spiffeIds the IDs (at least one)
   * @return the authorizer
   * @throws IllegalArgumentException when the set is empty or an element is not a SPIFFE ID
   */
  public static Authorizer oneOf(String... spiffeIds) {
    return oneOf(new LinkedHashSet<>(Arrays.asList(spiffeIds)));
  }

  /**
   * Accepts any of a set of SPIFFE IDs.
   *
   * @param spiffeIds the IDs (at least one)
   * @return the authorizer
   * @throws IllegalArgumentException when the set is empty or an element is not a SPIFFE ID
   */
  public static Authorizer oneOf(Set<String> spiffeIds) {
    if (spiffeIds == null || spiffeIds.isEmpty()) {
      throw new IllegalArgumentException(
          "secinfra: mtls: Authorizers.oneOf needs at least one SPIFFE ID");
    }
    Set<String> allowed = new TreeSet<>();
    for (String id : spiffeIds) {
      allowed.add(requireId(id));
    }
    Set<String> frozen = Set.copyOf(allowed);
    return new Named("one of the SPIFFE IDs " + allowed, frozen::contains);
  }

  /**
   * Accepts every workload of one trust domain.
   *
   * @param trustDomain the trust domain, for example {@code secinfra.local}
   * @return the authorizer
   * @throws IllegalArgumentException when {@code trustDomain} is not a trust domain name
   */
  public static Authorizer memberOf(String trustDomain) {
    String domain = requireTrustDomain(trustDomain);
    return new Named(
        "any member of the trust domain " + domain,
        peerId -> SpiffeId.trustDomain(peerId).equals(domain));
  }

  /**
   * Accepts the workloads of one trust domain whose path is {@code pathPrefix} or lies below it,
   * segment by segment: {@code /payments} accepts {@code /payments} and {@code /payments/api},
   * never {@code /payments-old}.
   *
   * @param trustDomain the trust domain, for example {@code secinfra.local}
   * @param pathPrefix the path, for example {@code /payments}
   * @return the authorizer
   * @throws IllegalArgumentException when an argument is not a trust domain name or a SPIFFE ID
   *     path
   */
  public static Authorizer pathPrefix(String trustDomain, String pathPrefix) {
    String domain = requireTrustDomain(trustDomain);
    if (!SpiffeId.isValidPath(pathPrefix)) {
      throw new IllegalArgumentException(
          "secinfra: mtls: not a SPIFFE ID path (segments of [a-zA-Z0-9._-] after a /): "
              + pathPrefix);
    }
    String exact = "spiffe://" + domain + pathPrefix;
    String below = exact + "/";
    return new Named(
        "the SPIFFE IDs at or below " + exact,
        peerId -> peerId.equals(exact) || peerId.startsWith(below));
  }

  /**
   * Accepts the peers a predicate accepts: a rule the other forms cannot say.
   *
   * @param description what it accepts, quoted in refusals, for example {@code "canary
   *     workloads"}
   * @param predicate the rule; thread-safe and fast (no I/O)
   * @return the authorizer
   */
  public static Authorizer predicate(String description, Predicate<String> predicate) {
    Objects.requireNonNull(description, "description");
    return new Named(description, Objects.requireNonNull(predicate, "predicate"));
  }

  private static String requireId(String spiffeId) {
    if (!SpiffeId.isValid(spiffeId)) {
      throw new IllegalArgumentException("secinfra: mtls: not a SPIFFE ID: " + spiffeId);
    }
    return spiffeId;
  }

  private static String requireTrustDomain(String trustDomain) {
    if (!SpiffeId.isValidTrustDomain(trustDomain)) {
      throw new IllegalArgumentException(
          "secinfra: mtls: not a trust domain name ([a-z0-9._-], without spiffe://): "
              + trustDomain);
    }
    return trustDomain;
  }

  /** An authorizer with a description for refusals. */
  private static final class Named implements Authorizer {
    private final String description;
    private final Predicate<String> rule;

    Named(String description, Predicate<String> rule) {
      this.description = description;
      this.rule = rule;
    }

    @Override
    public boolean authorizes(String peerId) {
      return rule.test(peerId);
    }

    @Override
    public String toString() {
      return description;
    }
  }
}
