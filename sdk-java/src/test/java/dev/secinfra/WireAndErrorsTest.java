package dev.secinfra;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.secinfra.errors.ApiException;
import dev.secinfra.errors.ConflictException;
import dev.secinfra.errors.ErrorInfo;
import dev.secinfra.errors.InternalErrorException;
import dev.secinfra.errors.InvalidArgumentException;
import dev.secinfra.errors.SecinfraException;
import dev.secinfra.errors.UnavailableException;
import dev.secinfra.gen.CheckRequest;
import dev.secinfra.gen.Consistency;
import dev.secinfra.gen.IssueCertificateRequest;
import dev.secinfra.gen.PutSecretRequest;
import dev.secinfra.gen.Secret;
import dev.secinfra.internal.call.Answers;
import dev.secinfra.rpc.Wire;
import java.time.Instant;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The JSON wire form of generated records, and the error tables (spec 1.6, 11). */
class WireAndErrorsTest {
  @ParameterizedTest(name = "{0}")
  @MethodSource("timestamps")
  void timestampsDecodeAsTheIsoFormatterReadsThem(String text) {
    Instant expected;
    try {
      expected =
          java.time.OffsetDateTime.parse(text, java.time.format.DateTimeFormatter.ISO_OFFSET_DATE_TIME)
              .toInstant();
    } catch (java.time.format.DateTimeParseException e) {
      expected = null;
    }
    if (expected == null) {
      assertThrows(Wire.DecodeException.class, () -> Wire.decTimestamp(Wire.encString(text), "$"));
    } else {
      assertEquals(expected, Wire.decTimestamp(Wire.encString(text), "$"));
    }
  }

  static Stream<String> timestamps() {
    return Stream.of(
        "2026-12-06T21:37:29Z",
        "2026-12-06T21:37:29.5Z",
        "2026-12-06T21:37:29.123456789Z",
        "2026-12-06T21:37:29.1234567891Z",
        "2026-12-06T21:37:29+05:30",
        "2026-12-06T21:37:29.001-08:00",
        "2026-12-06T21:37:29-00:00",
        "2026-12-06T21:37:29+18:00",
        "2026-12-06T21:37:29+18:01",
        "2026-12-06T21:37:29+01:00:30",
        "2026-12-06t21:37:29z",
        "2026-12-06T21:37Z",
        "2024-02-29T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-12-06T24:00:00Z",
        "2026-12-06T23:59:60Z",
        "2026-12-06T21:37:29.Z",
        "0000-01-01T00:00:00Z",
        "+12026-12-06T21:37:29Z",
        "2026-12-06 21:37:29Z",
        "2026-12-06T21:37:29",
        "2026-1a-06T21:37:29Z");
  }

  @Test
  void bytesAreBase64AndOptionalFieldsKeepPresence() {
    PutSecretRequest request =
        PutSecretRequest.builder().name("a/b").value(new byte[] {1, 2, 3}).ifVersion(0).build();
    JsonNode json = request.toJson();
    assertEquals("AQID", json.get("value").textValue());
    assertEquals(0, json.get("if_version").intValue(), "a set optional field is sent at its default");
    assertFalse(PutSecretRequest.builder().name("a/b").build().toJson().has("if_version"));
  }

  @Test
  void decodingIgnoresUnknownFieldsUnlessStrict() throws Exception {
    JsonNode json = Wire.MAPPER.readTree("{\"name\":\"a\",\"version\":3,\"value\":\"aGk=\",\"extra\":1}");
    Secret secret = Secret.fromJson(json, false);
    assertEquals(3, secret.version());
    assertArrayEquals("hi".getBytes(java.nio.charset.StandardCharsets.US_ASCII), secret.value());
    Wire.DecodeException error = assertThrows(Wire.DecodeException.class, () -> Secret.fromJson(json, true));
    assertTrue(error.getMessage().contains("extra"));
  }

  @Test
  void unknownEnumStringsMapToUnspecified() throws Exception {
    JsonNode json = Wire.MAPPER.readTree("{\"consistency\":\"from_the_future\"}");
    assertEquals(Consistency.UNSPECIFIED, CheckRequest.fromJson(json, false).consistency());
    assertThrows(Wire.DecodeException.class, () -> CheckRequest.fromJson(json, true));
    assertEquals("at_least_as_fresh", Consistency.AT_LEAST_AS_FRESH.wire());
  }

  @Test
  void timestampsAreRfc3339InUtc() throws Exception {
    JsonNode json = Wire.MAPPER.readTree("{\"create_time\":\"2026-11-22T09:00:00+01:00\"}");
    Secret secret = Secret.fromJson(json, false);
    assertEquals("2026-11-22T08:00:00Z", secret.toJson().get("create_time").textValue());
    assertNull(Secret.fromJson(Wire.object(), false).createTime());
  }

  @Test
  void toStringNeverShowsSecretsOrTokens() {
    Secret secret = new Secret("a", 1, "hunter2".getBytes(java.nio.charset.StandardCharsets.UTF_8), null);
    assertFalse(secret.toString().contains("hunter2"));
    IssueCertificateRequest request =
        IssueCertificateRequest.builder().csrPem("csr").joinToken("sjt_abc.secret").build();
    assertFalse(request.toString().contains("secret"), request.toString());
  }

  @Test
  void oneofAllowsAtMostOneMember() {
    assertThrows(
        IllegalArgumentException.class,
        () -> IssueCertificateRequest.builder().joinToken("a").jwt("b").build());
  }

  static Stream<Arguments> codes() {
    return Stream.of(
        Arguments.of("invalid_argument", InvalidArgumentException.class),
        Arguments.of("idempotency_key_reused", InvalidArgumentException.class),
        Arguments.of("already_exists", ConflictException.class),
        Arguments.of("deadline_exceeded", UnavailableException.class),
        Arguments.of("unimplemented", InternalErrorException.class),
        Arguments.of("something_new", InternalErrorException.class));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("codes")
  void codesMapToTheirTypes(String code, Class<? extends ApiException> type) {
    SecinfraException error =
        Answers.typedError(new ErrorInfo(code, "m", 400, "rid", false, null, 1, null), null);
    assertInstanceOf(type, error);
    assertEquals(code, error.code());
    assertTrue(error.toString().endsWith("(request id rid)"));
  }

  static Stream<Arguments> statuses() {
    return Stream.of(
        Arguments.of(400, "invalid_argument"), Arguments.of(401, "unauthenticated"),
        Arguments.of(408, "unavailable"), Arguments.of(418, "invalid_argument"),
        Arguments.of(422, "idempotency_key_reused"), Arguments.of(504, "deadline_exceeded"),
        Arguments.of(599, "internal"));
  }

  @ParameterizedTest(name = "{0} -> {1}")
  @MethodSource("statuses")
  void statusesWithoutAnEnvelopeMapToCodes(int status, String code) {
    assertEquals(code, Answers.codeForStatus(status));
  }
}
