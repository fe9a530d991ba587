package dev.secinfra.mtls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** Each authorizer against IDs it must accept and IDs it must refuse. */
class AuthorizersTest {
  static Stream<Arguments> decisions() {
    Authorizer billing = Authorizers.id("spiffe://secinfra.local/billing");
    Authorizer set = Authorizers.oneOf("spiffe://secinfra.local/a", "spiffe://secinfra.local/b");
    Authorizer member = Authorizers.memberOf("secinfra.local");
    Authorizer payments = Authorizers.pathPrefix("secinfra.local", "/payments");
    Authorizer canary = Authorizers.predicate("canaries", id -> id.endsWith("/canary"));
    return Stream.of(
        Arguments.of("id: the ID", billing, "spiffe://secinfra.local/billing", true),
        Arguments.of("id: a sub-path", billing, "spiffe://secinfra.local/billing/x", false),
        Arguments.of("id: another domain", billing, "spiffe://other.org/billing", false),
        Arguments.of("oneOf: first", set, "spiffe://secinfra.local/a", true),
        Arguments.of("oneOf: second", set, "spiffe://secinfra.local/b", true),
        Arguments.of("oneOf: other", set, "spiffe://secinfra.local/c", false),
        Arguments.of("memberOf: member", member, "spiffe://secinfra.local/anything/x", true),
        Arguments.of("memberOf: suffix domain", member, "spiffe://secinfra.local.evil/x", false),
        Arguments.of("memberOf: other", member, "spiffe://other.org/x", false),
        Arguments.of("pathPrefix: exact", payments, "spiffe://secinfra.local/payments", true),
        Arguments.of("pathPrefix: below", payments, "spiffe://secinfra.local/payments/api", true),
        Arguments.of("pathPrefix: not a segment", payments, "spiffe://secinfra.local/payments-old", false),
        Arguments.of("pathPrefix: other domain", payments, "spiffe://other.org/payments", false),
        Arguments.of("predicate: yes", canary, "spiffe://secinfra.local/x/canary", true),
        Arguments.of("predicate: no", canary, "spiffe://secinfra.local/x", false),
        Arguments.of("any", Authorizers.any(), "spiffe://secinfra.local/x", true));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("decisions")
  void decides(String name, Authorizer authorizer, String peerId, boolean want) {
    assertEquals(want, authorizer.authorizes(peerId));
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "secinfra.local/x",
        "spiffe://",
        "spiffe://Secinfra.local/x",
        "spiffe://secinfra.local/",
        "spiffe://secinfra.local//x",
        "spiffe://secinfra.local/a/../b",
        "spiffe://secinfra.local/x?y",
        "spiffe://secinfra.local:443/x",
        "spiffe://user@secinfra.local/x"
      })
  void refusesToBuildOnSomethingThatIsNotASpiffeId(String bad) {
    assertThrows(IllegalArgumentException.class, () -> Authorizers.id(bad));
    assertThrows(IllegalArgumentException.class, () -> Authorizers.oneOf(Set.of(bad)));
  }

  @Test
  void refusesBadTrustDomainsPathsAndEmptySets() {
    assertThrows(IllegalArgumentException.class, () -> Authorizers.memberOf("spiffe://secinfra.local"));
    assertThrows(IllegalArgumentException.class, () -> Authorizers.memberOf(""));
    assertThrows(IllegalArgumentException.class, () -> Authorizers.pathPrefix("secinfra.local", "payments"));
    assertThrows(IllegalArgumentException.class, () -> Authorizers.pathPrefix("secinfra.local", "/payments/"));
    assertThrows(IllegalArgumentException.class, () -> Authorizers.oneOf(Set.of()));
    assertThrows(NullPointerException.class, () -> Authorizers.predicate("x", null));
  }

  @Test
  void oneOfToleratesRepeatsAndRefusesNulls() {
    Authorizer repeated = Authorizers.oneOf("spiffe://secinfra.local/a", "spiffe://secinfra.local/a");
    assertTrue(repeated.authorizes("spiffe://secinfra.local/a"));
    assertThrows(IllegalArgumentException.class, () -> Authorizers.oneOf("spiffe://secinfra.local/a", null));
  }

  @Test
  void describesWhatItAccepts() {
    assertTrue(Authorizers.any().toString().contains("any peer"));
    assertTrue(Authorizers.pathPrefix("secinfra.local", "/p").toString().contains("spiffe://secinfra.local/p"));
  }
}
