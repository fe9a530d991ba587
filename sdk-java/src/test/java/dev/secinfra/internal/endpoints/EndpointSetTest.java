package dev.secinfra.internal.endpoints;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.EndpointOrder;
import dev.secinfra.EndpointState;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/** The endpoint order, cooldown and choice of spec 12, on a clock the test moves. */
class EndpointSetTest {
  private static final String A = "https://a.example:8443";
  private static final String B = "https://b.example:8443";
  private static final String C = "https://c.example:8443";
  private static final Duration SECOND = Duration.ofSeconds(1);

  private final AtomicLong clock = new AtomicLong();

  private EndpointSet listed(String... urls) {
    return new EndpointSet(
        List.of(urls), EndpointOrder.LISTED, SECOND, Duration.ofSeconds(30), clock::get, new Random(1));
  }

  private void advance(Duration by) {
    clock.addAndGet(by.toNanos());
  }

  private static List<String> urls(EndpointSet endpoints) {
    return endpoints.order().stream().map(EndpointSet.Endpoint::url).toList();
  }

  static Stream<Arguments> invalidLists() {
    return Stream.of(
        Arguments.of("empty", List.of(), "at least one"),
        Arguments.of("http", List.of("http://a.example"), "https://host"),
        Arguments.of("no host", List.of("https:///x"), "https://host"),
        Arguments.of("user-info", List.of("https://user:hunter2@a.example"), "user-info"),
        Arguments.of("query", List.of("https://a.example/?x=1"), "no query"),
        Arguments.of("twice", List.of(A, A + "/"), "listed twice"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("invalidLists")
  void invalidListsAreRejectedAtCreation(String name, List<String> urls, String message) {
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> EndpointSet.validate(urls));
    assertTrue(error.getMessage().contains(message), error.getMessage());
    assertFalse(error.getMessage().contains("hunter2"), "user-info is never repeated");
  }

  @Test
  void cooldownSettingsAreChecked() {
    assertThrows(
        IllegalArgumentException.class, () -> EndpointSet.validateCooldowns(Duration.ZERO, SECOND));
    IllegalArgumentException error =
        assertThrows(
            IllegalArgumentException.class,
            () -> EndpointSet.validateCooldowns(Duration.ofSeconds(2), SECOND));
    assertTrue(error.getMessage().contains("endpointCooldownMax"), error.getMessage());
  }

  @Test
  void theOrderIsTheListRotatedToTheHome() {
    assertEquals(List.of(A, B, C), urls(listed(A, B, C)));
    for (int seed = 0; seed < 20; seed++) {
      EndpointSet random =
          new EndpointSet(
              List.of(A, B, C),
              EndpointOrder.RANDOM,
              SECOND,
              SECOND,
              clock::get,
              new Random(seed));
      List<String> order = urls(random);
      int home = List.of(A, B, C).indexOf(order.get(0));
      assertEquals(
          List.of(List.of(A, B, C).get(home), List.of(A, B, C).get((home + 1) % 3),
              List.of(A, B, C).get((home + 2) % 3)),
          order);
    }
  }

  @Test
  void theRandomHomeIsUniform() {
    Random random = new Random(42);
    int[] homes = new int[3];
    for (int i = 0; i < 3000; i++) {
      EndpointSet e =
          new EndpointSet(List.of(A, B, C), EndpointOrder.RANDOM, SECOND, SECOND, clock::get, random);
      homes[List.of(A, B, C).indexOf(e.order().get(0).url())]++;
    }
    for (int count : homes) {
      assertTrue(count > 850 && count < 1150, "each of 3 homes near 1000 of 3000: " + count);
    }
  }

  @Test
  void aFailedEndpointIsAvoidedUntilItsCooldownEndsThenTriedAgain() {
    EndpointSet endpoints = listed(A, B);
    EndpointSet.Endpoint a = endpoints.choose();
    assertEquals(A, a.url());
    endpoints.record(a, true);
    assertEquals(B, endpoints.choose().url(), "a cools down: the attempt moves to b");
    advance(Duration.ofMillis(999));
    assertEquals(B, endpoints.choose().url());
    advance(Duration.ofMillis(1));
    assertEquals(A, endpoints.choose().url(), "a cooled down: back home");
  }

  @Test
  void cooldownDoublesPerFailureInARowUpToTheMaximumAndResetsOnAnyOtherOutcome() {
    EndpointSet endpoints =
        new EndpointSet(
            List.of(A, B), EndpointOrder.LISTED, SECOND, Duration.ofSeconds(5), clock::get, new Random());
    EndpointSet.Endpoint a = endpoints.order().get(0);
    List<Long> seen = new java.util.ArrayList<>();
    for (int i = 0; i < 5; i++) {
      endpoints.record(a, true);
      seen.add(endpoints.states().get(0).coolingFor().orElseThrow().toMillis());
    }
    assertEquals(List.of(1000L, 2000L, 4000L, 5000L, 5000L), seen);
    assertEquals(5, endpoints.states().get(0).failures());
    endpoints.record(a, false);
    EndpointState state = endpoints.states().get(0);
    assertEquals(0, state.failures());
    assertFalse(state.coolingDown());
    endpoints.record(a, true);
    assertEquals(1000L, endpoints.states().get(0).coolingFor().orElseThrow().toMillis());
  }

  @Test
  void whenAllCoolDownTheOldestLastFailureIsChosen() {
    EndpointSet endpoints = listed(A, B, C);
    List<EndpointSet.Endpoint> order = endpoints.order();
    endpoints.record(order.get(1), true);
    advance(Duration.ofMillis(100));
    endpoints.record(order.get(0), true);
    advance(Duration.ofMillis(100));
    endpoints.record(order.get(2), true);
    assertSame(order.get(1), endpoints.choose(), "b failed first: its failure is the oldest");
  }

  @Test
  void oneEndpointIsAlwaysChosen() {
    EndpointSet one = listed(A);
    EndpointSet.Endpoint a = one.choose();
    one.record(a, true);
    assertSame(a, one.choose());
    assertTrue(one.states().get(0).coolingDown());
  }

  @Test
  void endpointFailuresAreTheGatewayStatuses() {
    for (int status : new int[] {502, 503, 504}) {
      assertTrue(EndpointSet.isEndpointFailure(status));
    }
    for (int status : new int[] {200, 304, 400, 404, 409, 429, 500, 501}) {
      assertFalse(EndpointSet.isEndpointFailure(status), "not an endpoint failure: " + status);
    }
  }

  @Test
  void aRequestKeepsItsPathOnEveryEndpoint() {
    EndpointSet endpoints = listed(A, "https://b.example/prefix/");
    assertEquals(
        "https://b.example/prefix/v1/secrets/x?version=2",
        endpoints.order().get(1).resolve("/v1/secrets/x?version=2").toString());
    assertEquals(
        "https://a.example:8443/v1/secrets/x", endpoints.order().get(0).resolve("/v1/secrets/x").toString());
  }
}
