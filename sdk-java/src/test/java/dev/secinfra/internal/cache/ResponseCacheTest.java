package dev.secinfra.internal.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.secinfra.gen.CheckRequest;
import dev.secinfra.gen.TupleKey;
import dev.secinfra.rpc.Wire;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Cache-Control, cache keys, revision tokens and the LRU store (spec 7). */
class ResponseCacheTest {
  static Stream<Arguments> headers() {
    return Stream.of(
        Arguments.of("private, max-age=60, stale-if-error=300", 60, 300, false),
        Arguments.of("MAX-AGE=\"5\"", 5, 0, false),
        Arguments.of("max-age=5, max-age=9", 5, 0, false),
        Arguments.of("max-age=abc, stale-if-error=-1", 0, 0, false),
        Arguments.of("no-cache, max-age=60", 0, 0, false),
        Arguments.of("no-store", 0, 0, true),
        Arguments.of("max-age=99999999999999", CacheControl.MAX_DELTA_SECONDS, 0, false),
        Arguments.of(null, 0, 0, false));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("headers")
  void cacheControlIsReadAsTheSpecSays(String header, long maxAge, long staleIfError, boolean noStore) {
    CacheControl control = CacheControl.parse(header);
    assertEquals(maxAge, control.maxAgeSeconds());
    assertEquals(staleIfError, control.staleIfErrorSeconds());
    assertEquals(noStore, control.noStore());
  }

  @Test
  void cacheKeysAreCanonicalAndDistinguishEveryField() {
    CheckRequest a = CheckRequest.builder().tupleKey(new TupleKey("user:a#b", "c", "d", null)).build();
    CheckRequest b = CheckRequest.builder().tupleKey(new TupleKey("user:a", "b#c", "d", null)).build();
    ResponseCache.Key keyA = ResponseCache.key("secinfra.v1.AuthzService/Check", a.toJson());
    assertEquals(keyA, ResponseCache.key("secinfra.v1.AuthzService/Check", a.toJson()));
    assertEquals(keyA.hashCode(), ResponseCache.key("secinfra.v1.AuthzService/Check", a.toJson()).hashCode());
    assertNotEquals(keyA, ResponseCache.key("secinfra.v1.AuthzService/Check", b.toJson()));
    ResponseCache.Key joined = ResponseCache.key("secinfra.v1.AuthzService", "Check", a.toJson());
    assertEquals(keyA, joined);
    assertEquals(keyA.hashCode(), joined.hashCode());
    assertEquals(keyA.text(), joined.text());
    ResponseCache.Key escaped = ResponseCache.key("a\"\u00e9", "b\\", a.toJson());
    assertEquals(ResponseCache.key("a\"\u00e9/b\\", a.toJson()), escaped);
    assertEquals(ResponseCache.key("a\"\u00e9/b\\", a.toJson()).hashCode(), escaped.hashCode());
    assertTrue(keyA.text().startsWith("{\"method\":\"secinfra.v1.AuthzService/Check\",\"request\":{"));
    assertFalse(keyA.text().contains(" "));
  }

  @Test
  void canonicalJsonSortsByCodePointAndEscapesOnlyWhatJsonRequires() {
    String tricky = "x\"\\\n\t\u0001\u001f\u007f\u00e9\uD83D\uDE00/";
    var request = Wire.object();
    request.put("b", 1);
    request.put("a", tricky);
    request.put("\uFFFF", true);
    request.set("\uD83D\uDE00", Wire.object().putNull("z").set("y", Wire.MAPPER.createArrayNode().add(2L).add("")));
    String text = CanonicalJson.write(request);
    // U+1F600 sorts after U+FFFF by code point, though not by UTF-16 unit.
    assertEquals(
        "{\"a\":" + Wire.encString(tricky).toString()
            + ",\"b\":1,\"\uFFFF\":true,\"\uD83D\uDE00\":{\"y\":[2,\"\"],\"z\":null}}",
        text);
    assertEquals("\"x\\\"\\\\\\n\\t\\u0001\\u001F\u007f\u00e9\uD83D\uDE00/\"", Wire.encString(tricky).toString());
  }

  @Test
  void equalKeysHashAlikeWhateverTheNumberNode() {
    var asInt = Wire.object().put("n", 7);
    var asLong = Wire.object().put("n", 7L);
    var asBig = Wire.object().put("n", java.math.BigInteger.valueOf(7));
    ResponseCache.Key key = ResponseCache.key("m", asInt);
    for (var other : java.util.List.of(asLong, asBig)) {
      assertEquals(key, ResponseCache.key("m", other));
      assertEquals(key.hashCode(), ResponseCache.key("m", other).hashCode());
    }
    assertNotEquals(key, ResponseCache.key("m", Wire.object().put("n", "7")));
  }

  @Test
  void revisionsCompareAsNumbers() {
    assertTrue(Revision.compare("00000000000000000042", "41") > 0);
    assertTrue(Revision.compare("9", "10") < 0);
    assertEquals(0, Revision.compare("007", "7"));
    assertFalse(Revision.parses(""));
    assertFalse(Revision.parses("12a"));
  }

  @Test
  void lruEvictsTheLeastRecentlyUsedAndInvalidationDropsAFamily() {
    ResponseCache cache = new ResponseCache(2);
    long now = System.nanoTime();
    store(cache, "a", "secret", "x", null, now);
    store(cache, "b", "secret", "y", null, now);
    assertNotNull(cache.lookup(key("a"), now));
    store(cache, "c", "authz", "", null, now);
    assertNull(cache.lookup(key("b"), now), "b was the least recently used");
    assertNotNull(cache.lookup(key("a"), now));
    cache.invalidate("secret", "x");
    assertNull(cache.lookup(key("a"), now));
    assertNotNull(cache.lookup(key("c"), now));
    assertFalse(cache.toString().contains("value="), cache.toString());
  }

  @Test
  void writeMarksBypassOlderEntriesAndOutliveThem() {
    ResponseCache cache = new ResponseCache(10);
    long now = System.nanoTime();
    store(cache, "k", "authz", "", "00000000000000000041", now);
    cache.mark("authz", "00000000000000000042");
    assertNull(cache.lookup(key("k"), now));
    cache.clear();
    assertFalse(store(cache, "k", "authz", "", "00000000000000000041", now));
    assertTrue(store(cache, "k", "authz", "", "00000000000000000042", now));
  }

  @Test
  void aResponseSentBeforeAnInvalidationIsNotStored() {
    ResponseCache cache = new ResponseCache(10);
    long generation = cache.generation("secret");
    cache.invalidate("secret", "x");
    assertFalse(storeAt(cache, "k", "secret", "x", null, System.nanoTime(), generation));
  }

  /** A key standing for one request, named {@code name}. */
  private static ResponseCache.Key key(String name) {
    return ResponseCache.key("test/Rpc", Wire.encString(name));
  }

  private static boolean store(ResponseCache cache, String key, String family, String resource, String revision, long now)
      {
    return storeAt(cache, key, family, resource, revision, now, cache.generation(family));
  }

  private static boolean storeAt(
      ResponseCache cache, String key, String family, String resource, String revision, long now, long generation) {
    ResponseCache.Entry entry =
        new ResponseCache.Entry(
            Wire.object(), "\"e\"", CacheControl.parse("max-age=60"), now, revision, family, resource, "r", 200);
    return cache.store(key(key), entry, generation);
  }
}
