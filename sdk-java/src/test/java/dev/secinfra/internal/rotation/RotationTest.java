package dev.secinfra.internal.rotation;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.secinfra.RotationPolicy;
import dev.secinfra.identity.X509Bundle;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Rotation timing (spec 9.2, 9.4, 10.2) as tables. */
class RotationTest {
  private static final Instant T0 = Instant.parse("2026-11-22T12:00:00Z");
  private static final RotationPolicy DEFAULTS = RotationPolicy.DEFAULTS;

  static Stream<Arguments> renewalTimes() {
    return Stream.of(
        // name, lifetime, u, want (spec 9.2 example table: 1 h renews between 12:24 and 12:30)
        Arguments.of("1 h, no jitter drawn", Duration.ofHours(1), 0.0, "2026-11-22T12:30:00Z"),
        Arguments.of("1 h, largest jitter", Duration.ofHours(1), 1.0, "2026-11-22T12:24:00Z"),
        Arguments.of("10 s, half jitter", Duration.ofSeconds(10), 0.5, "2026-11-22T12:00:04.500Z"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("renewalTimes")
  void renewalTimeIsHalfTheLifetimeMinusJitter(
      String name, Duration lifetime, double u, String want) {
    assertEquals(Instant.parse(want), Rotation.renewalTime(T0, lifetime, DEFAULTS, u));
  }

  static Stream<Arguments> retryDelays() {
    Instant notAfter = T0.plusSeconds(3600);
    return Stream.of(
        // name, failures, u, now, want delay, want last chance
        Arguments.of("first failure, ceiling 1 s", 1, 0.5, T0, Duration.ofMillis(500), false),
        Arguments.of("fourth failure, ceiling 8 s", 4, 0.5, T0, Duration.ofSeconds(4), false),
        Arguments.of("ceiling capped at 60 s", 20, 1.0, T0, Duration.ofSeconds(60), false),
        Arguments.of(
            "never past the margin before NotAfter", 20, 1.0, notAfter.minusSeconds(11),
            Duration.ofSeconds(10), false),
        Arguments.of(
            "past the margin: one last try at once", 1, 0.5, notAfter.minusMillis(500),
            Duration.ZERO, true));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("retryDelays")
  void retryDelayBacksOffUntilTheExpiryMargin(
      String name, int failures, double u, Instant now, Duration want, boolean lastChance) {
    assertEquals(
        new Rotation.RetryDelay(want, lastChance),
        Rotation.retryDelay(failures, DEFAULTS, u, now, T0.plusSeconds(3600)));
  }

  static Stream<Arguments> bundleRefreshes() {
    return Stream.of(
        // name, hint, want refresh, want retry
        Arguments.of("no hint: the default", null, Duration.ofSeconds(300), Duration.ofSeconds(30)),
        Arguments.of("a hint is used", 120, Duration.ofSeconds(120), Duration.ofSeconds(30)),
        Arguments.of("a short hint shortens the retry", 5, Duration.ofSeconds(5), Duration.ofSeconds(5)),
        Arguments.of("zero is not a hint", 0, Duration.ofSeconds(300), Duration.ofSeconds(30)),
        Arguments.of("clamped to a day", 999_999, Duration.ofDays(1), Duration.ofSeconds(30)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("bundleRefreshes")
  void bundleRefreshFollowsTheHint(String name, Integer hint, Duration refresh, Duration retry) {
    X509Bundle bundle = new X509Bundle(List.of(ca()), 1, hint);
    assertEquals(refresh, Rotation.bundleRefresh(bundle, DEFAULTS));
    assertEquals(retry, Rotation.bundleRetry(bundle, DEFAULTS));
  }

  private static X509Certificate ca() {
    return dev.secinfra.testing.TestAuthority.create("secinfra.local").certificate();
  }
}
