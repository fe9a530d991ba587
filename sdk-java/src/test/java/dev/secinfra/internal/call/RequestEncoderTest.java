package dev.secinfra.internal.call;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.secinfra.gen.GetSecretRequest;
import dev.secinfra.gen.ListSecretsRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.gen.SecretsClient;
import dev.secinfra.gen.UndeleteSecretRequest;
import dev.secinfra.rpc.Wire;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** A request's URL and body from its descriptor (spec 2.2). */
class RequestEncoderTest {
  private static final RequestEncoder ENCODER =
      new RequestEncoder(URI.create("https://127.0.0.1:8443//"));

  static Stream<Arguments> urls() {
    return Stream.of(
        Arguments.of(
            "a {name=**} variable keeps its slashes",
            GetSecretRequest.builder().name("payments/db/password").build().toJson(),
            "https://127.0.0.1:8443/v1/secrets/payments/db/password?version=0"),
        Arguments.of(
            "other bytes are percent-encoded",
            GetSecretRequest.builder().name("a b/é").build().toJson(),
            "https://127.0.0.1:8443/v1/secrets/a%20b/%C3%A9?version=0"),
        Arguments.of(
            "a GET sends its query fields",
            GetSecretRequest.builder().name("x").version(3).build().toJson(),
            "https://127.0.0.1:8443/v1/secrets/x?version=3"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("urls")
  void getUrlsFollowTheTemplate(String name, ObjectNode request, String want) {
    assertEquals(URI.create(want), ENCODER.uri(SecretsClient.GET_SECRET, request));
  }

  @Test
  void queryValuesAreFormEncodedInTheDescriptorsOrder() {
    ObjectNode request = ListSecretsRequest.builder().prefix("team a/&").build().toJson();
    assertEquals(
        URI.create("https://127.0.0.1:8443/v1/secrets?prefix=team+a%2F%26&page_size=0&page_token="),
        ENCODER.uri(SecretsClient.LIST_SECRETS, request));
  }

  @Test
  void aPutSendsItsBodyFieldsAndNoQuery() throws Exception {
    ObjectNode request =
        PutSecretRequest.builder()
            .name("app/db")
            .value("v".getBytes(StandardCharsets.UTF_8))
            .build()
            .toJson();
    assertEquals(
        URI.create("https://127.0.0.1:8443/v1/secrets/app/db"),
        ENCODER.uri(SecretsClient.PUT_SECRET, request));
    ObjectNode body =
        (ObjectNode) Wire.MAPPER.readTree(RequestEncoder.body(SecretsClient.PUT_SECRET, request));
    assertEquals("dg==", body.get("value").asText());
    assertNull(body.get("name"), "a path field is not repeated in the body");
    assertNull(RequestEncoder.body(SecretsClient.GET_SECRET, request), "a GET has no body");
  }

  @Test
  void anEmptyRepeatedFieldIsLeftOutOfTheBody() throws Exception {
    ObjectNode none = UndeleteSecretRequest.builder().name("app/db").build().toJson();
    assertEquals(
        "{}", new String(RequestEncoder.body(SecretsClient.UNDELETE_SECRET, none), StandardCharsets.UTF_8));
    ObjectNode two =
        UndeleteSecretRequest.builder().name("app/db").versions(List.of(2)).build().toJson();
    assertEquals(
        "{\"versions\":[2]}",
        new String(RequestEncoder.body(SecretsClient.UNDELETE_SECRET, two), StandardCharsets.UTF_8));
  }
}
