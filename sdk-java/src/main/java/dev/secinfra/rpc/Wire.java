package dev.secinfra.rpc;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigInteger;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * JSON wire helpers shared by the generated models.
 *
 * <p>Wire conventions: JSON names are the proto field names; 64-bit integers travel as decimal
 * strings (numbers are accepted when decoding); bytes are standard base64 with padding;
 * timestamps are RFC 3339 strings, emitted in UTC with {@code Z}; enums are lowercase strings
 * without their prefix. Unsigned 64-bit values are held in a {@code long} with unsigned meaning.
 */
public final class Wire {
  /** The shared, thread-safe mapper (its configuration is never changed). */
  public static final ObjectMapper MAPPER = new ObjectMapper();

  /** The empty byte array used as the default of bytes fields. */
  public static final byte[] EMPTY_BYTES = new byte[0];

  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
  private static final BigInteger UINT64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);

  private Wire() {}

  /** An enum that travels as a wire string. */
  public interface WireEnum {
    /**
     * The value's wire string.
     *
     * @return the lowercase wire name
     */
    String wire();
  }

  /**
   * Decodes one JSON value.
   *
   * @param <T> the decoded type
   */
  @FunctionalInterface
  public interface Decoder<T> {
    /**
     * Decodes {@code node}.
     *
     * @param node the JSON value (never null, never JSON null)
     * @param path its JSON path, for errors
     * @return the value
     */
    T decode(JsonNode node, String path);
  }

  /**
   * Decodes one JSON object key.
   *
   * @param <T> the decoded type
   */
  @FunctionalInterface
  public interface KeyDecoder<T> {
    /**
     * Decodes {@code key}.
     *
     * @param key the key text
     * @param path its JSON path, for errors
     * @return the value
     */
    T decode(String key, String path);
  }

  /** A JSON value that does not fit the message it should decode into. */
  public static final class DecodeException extends IllegalArgumentException {
    /** Serial form version. */
    private static final long serialVersionUID = 1L;

    /** The JSON path of the bad value. */
    private final String path;

    /**
     * A decode failure at {@code path}.
     *
     * @param path the JSON path
     * @param problem what is wrong
     */
    public DecodeException(String path, String problem) {
      super(path + ": " + problem);
      this.path = path;
    }

    /**
     * The JSON path of the bad value ({@code $.svid.not_after}).
     *
     * @return the path
     */
    public String path() {
      return path;
    }
  }

  // ---- building ---------------------------------------------------------------------------

  /**
   * A new, empty JSON object.
   *
   * @return the object
   */
  public static ObjectNode object() {
    return NODES.objectNode();
  }

  /**
   * A copy of {@code value}, or an empty list for null.
   *
   * @param <T> the element type
   * @param value the list
   * @return an unmodifiable list
   */
  public static <T> List<T> copyList(List<T> value) {
    return value == null ? List.of() : List.copyOf(value);
  }

  /**
   * A copy of {@code value} in its order, or an empty map for null.
   *
   * @param <K> the key type
   * @param <V> the value type
   * @param value the map
   * @return an unmodifiable map
   */
  public static <K, V> Map<K, V> copyMap(Map<K, V> value) {
    return value == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(value));
  }

  /**
   * A copy of {@code value}, or the empty array for null.
   *
   * @param value the bytes
   * @return the copy
   */
  public static byte[] copyBytes(byte[] value) {
    return value == null || value.length == 0 ? EMPTY_BYTES : value.clone();
  }

  /**
   * Checks that at most one member of a oneof is set.
   *
   * @param name the oneof's name
   * @param members the members' values
   * @throws IllegalArgumentException when more than one is set
   */
  public static void checkOneof(String name, Object... members) {
    int set = 0;
    for (Object member : members) {
      if (member != null) {
        set++;
      }
    }
    if (set > 1) {
      throw new IllegalArgumentException("at most one member of oneof " + name + " may be set");
    }
  }

  // ---- encoding ---------------------------------------------------------------------------

  /**
   * An int32.
   *
   * @param value the value
   * @return the JSON number
   */
  public static JsonNode encInt32(int value) {
    return NODES.numberNode(value);
  }

  /**
   * A uint32 held in a long.
   *
   * @param value the value
   * @return the JSON number
   */
  public static JsonNode encUint32(long value) {
    return NODES.numberNode(value);
  }

  /**
   * An int64, as a decimal string.
   *
   * @param value the value
   * @return the JSON string
   */
  public static JsonNode encInt64(long value) {
    return NODES.textNode(Long.toString(value));
  }

  /**
   * A uint64 (unsigned meaning), as a decimal string.
   *
   * @param value the value
   * @return the JSON string
   */
  public static JsonNode encUint64(long value) {
    return NODES.textNode(Long.toUnsignedString(value));
  }

  /**
   * A double; non-finite values as {@code "NaN"}, {@code "Infinity"}, {@code "-Infinity"}.
   *
   * @param value the value
   * @return the JSON value
   */
  public static JsonNode encDouble(double value) {
    if (Double.isNaN(value)) {
      return NODES.textNode("NaN");
    }
    if (Double.isInfinite(value)) {
      return NODES.textNode(value > 0 ? "Infinity" : "-Infinity");
    }
    return NODES.numberNode(value);
  }

  /**
   * A float, as {@link #encDouble}.
   *
   * @param value the value
   * @return the JSON value
   */
  public static JsonNode encFloat(float value) {
    if (Float.isNaN(value) || Float.isInfinite(value)) {
      return encDouble(value);
    }
    return NODES.numberNode(value);
  }

  /**
   * A bool.
   *
   * @param value the value
   * @return the JSON boolean
   */
  public static JsonNode encBool(boolean value) {
    return NODES.booleanNode(value);
  }

  /**
   * A string.
   *
   * @param value the value
   * @return the JSON string
   */
  public static JsonNode encString(String value) {
    return NODES.textNode(value);
  }

  /**
   * Bytes, as standard base64 with padding.
   *
   * @param value the value
   * @return the JSON string
   */
  public static JsonNode encBytes(byte[] value) {
    return NODES.textNode(Base64.getEncoder().encodeToString(value));
  }

  /**
   * A timestamp, RFC 3339 in UTC with {@code Z}.
   *
   * @param value the value
   * @return the JSON string
   */
  public static JsonNode encTimestamp(Instant value) {
    return NODES.textNode(DateTimeFormatter.ISO_INSTANT.format(value));
  }

  /**
   * The common form {@code YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)}, read without the
   * formatter (it is decoded on every call, cache hits included); null for any other text or a
   * value out of range, which the formatter then reads or refuses. Whatever this accepts, {@link
   * DateTimeFormatter#ISO_OFFSET_DATE_TIME} accepts with the same instant.
   */
  private static Instant quickTimestamp(String t) {
    int n = t.length();
    if (n < 20 || t.charAt(4) != '-' || t.charAt(7) != '-' || t.charAt(10) != 'T'
        || t.charAt(13) != ':' || t.charAt(16) != ':') {
      return null;
    }
    int year = digits(t, 0, 4);
    int month = digits(t, 5, 2);
    int day = digits(t, 8, 2);
    int hour = digits(t, 11, 2);
    int minute = digits(t, 14, 2);
    int second = digits(t, 17, 2);
    if ((year | month | day | hour | minute | second) < 0) {
      return null;
    }
    int i = 19;
    int nanos = 0;
    if (t.charAt(i) == '.') {
      int start = ++i;
      while (i < n && t.charAt(i) >= '0' && t.charAt(i) <= '9') {
        i++;
      }
      int count = i - start;
      if (count < 1 || count > 9) {
        return null;
      }
      nanos = digits(t, start, count);
      for (int k = count; k < 9; k++) {
        nanos *= 10;
      }
    }
    int offsetSeconds;
    if (i == n - 1 && t.charAt(i) == 'Z') {
      offsetSeconds = 0;
    } else if (i == n - 6 && (t.charAt(i) == '+' || t.charAt(i) == '-') && t.charAt(i + 3) == ':') {
      int hours = digits(t, i + 1, 2);
      int minutes = digits(t, i + 4, 2);
      if ((hours | minutes) < 0 || hours > 18 || minutes > 59 || (hours == 18 && minutes > 0)) {
        return null;
      }
      offsetSeconds = (hours * 3600 + minutes * 60) * (t.charAt(i) == '-' ? -1 : 1);
    } else {
      return null;
    }
    if (month < 1 || month > 12 || day < 1 || day > 28 && day > lengthOfMonth(year, month)
        || hour > 23 || minute > 59 || second > 59) {
      return null;
    }
    long epochDay = java.time.LocalDate.of(year, month, day).toEpochDay();
    long epochSecond = epochDay * 86_400L + hour * 3600L + minute * 60L + second - offsetSeconds;
    return Instant.ofEpochSecond(epochSecond, nanos);
  }

  /** The non-negative decimal number of {@code count} ASCII digits at {@code from}, or -1. */
  private static int digits(String t, int from, int count) {
    int value = 0;
    for (int k = from; k < from + count; k++) {
      char c = t.charAt(k);
      if (c < '0' || c > '9') {
        return -1;
      }
      value = value * 10 + (c - '0');
    }
    return value;
  }

  private static int lengthOfMonth(int year, int month) {
    return java.time.YearMonth.of(year, month).lengthOfMonth();
  }

  /**
   * A free-form JSON object.
   *
   * @param value the object's members
   * @return the JSON object
   */
  public static JsonNode encStruct(Map<String, Object> value) {
    return MAPPER.valueToTree(value);
  }

  /**
   * An enum, as its wire string.
   *
   * @param value the value
   * @return the JSON string
   */
  public static JsonNode encEnum(WireEnum value) {
    return NODES.textNode(value.wire());
  }

  /**
   * A repeated field.
   *
   * @param <T> the element type
   * @param values the elements
   * @param encoder encodes one element
   * @return the JSON array
   */
  public static <T> JsonNode encList(List<T> values, Function<? super T, JsonNode> encoder) {
    ArrayNode out = NODES.arrayNode();
    for (T value : values) {
      out.add(encoder.apply(value));
    }
    return out;
  }

  /**
   * A map field.
   *
   * @param <K> the key type
   * @param <V> the value type
   * @param values the entries
   * @param keys encodes a key as object-member text
   * @param encoder encodes one value
   * @return the JSON object
   */
  public static <K, V> JsonNode encMap(
      Map<K, V> values, Function<? super K, String> keys, Function<? super V, JsonNode> encoder) {
    ObjectNode out = NODES.objectNode();
    for (Map.Entry<K, V> entry : values.entrySet()) {
      out.set(keys.apply(entry.getKey()), encoder.apply(entry.getValue()));
    }
    return out;
  }

  /**
   * A string map key.
   *
   * @param key the key
   * @return its text
   */
  public static String keyOfString(String key) {
    return key;
  }

  /**
   * An int32 map key.
   *
   * @param key the key
   * @return its text
   */
  public static String keyOfInt32(Integer key) {
    return key.toString();
  }

  /**
   * A uint32 map key.
   *
   * @param key the key
   * @return its text
   */
  public static String keyOfUint32(Long key) {
    return key.toString();
  }

  /**
   * An int64 map key.
   *
   * @param key the key
   * @return its text
   */
  public static String keyOfInt64(Long key) {
    return key.toString();
  }

  /**
   * A uint64 map key.
   *
   * @param key the key
   * @return its text
   */
  public static String keyOfUint64(Long key) {
    return Long.toUnsignedString(key);
  }

  /**
   * A bool map key.
   *
   * @param key the key
   * @return its text
   */
  public static String keyOfBool(Boolean key) {
    return key.toString();
  }

  // ---- decoding ---------------------------------------------------------------------------

  /**
   * A JSON object, or an error naming {@code path}.
   *
   * @param json the value
   * @param path its path
   * @return the object
   */
  public static ObjectNode decObject(JsonNode json, String path) {
    if (json == null || json.isNull() || json.isMissingNode()) {
      return NODES.objectNode();
    }
    if (!json.isObject()) {
      throw new DecodeException(path, "expected an object, got " + kind(json));
    }
    return (ObjectNode) json;
  }

  /**
   * Rejects members that are not {@code known}.
   *
   * @param obj the object
   * @param known the known member names
   * @param path the object's path
   */
  public static void checkKnown(ObjectNode obj, Set<String> known, String path) {
    for (Iterator<String> names = obj.fieldNames(); names.hasNext(); ) {
      String name = names.next();
      if (!known.contains(name)) {
        throw new DecodeException(path, "unknown field " + quote(name));
      }
    }
  }

  /**
   * A singular field without presence: absent or null gives {@code zero}.
   *
   * @param <T> the type
   * @param obj the object
   * @param name the member name
   * @param path the object's path
   * @param decoder decodes the value
   * @param zero the default
   * @return the value
   */
  public static <T> T decField(
      ObjectNode obj, String name, String path, Decoder<T> decoder, T zero) {
    JsonNode node = obj.get(name);
    if (node == null || node.isNull()) {
      return zero;
    }
    return decoder.decode(node, path + "." + name);
  }

  /**
   * A field with presence: absent or null gives null.
   *
   * @param <T> the type
   * @param obj the object
   * @param name the member name
   * @param path the object's path
   * @param decoder decodes the value
   * @return the value or null
   */
  public static <T> T decOptional(ObjectNode obj, String name, String path, Decoder<T> decoder) {
    return decField(obj, name, path, decoder, null);
  }

  /**
   * A repeated field: absent or null gives an empty list.
   *
   * @param <T> the element type
   * @param obj the object
   * @param name the member name
   * @param path the object's path
   * @param decoder decodes one element
   * @return the list
   */
  public static <T> List<T> decList(
      ObjectNode obj, String name, String path, Decoder<T> decoder) {
    JsonNode node = obj.get(name);
    if (node == null || node.isNull()) {
      return List.of();
    }
    String here = path + "." + name;
    if (!node.isArray()) {
      throw new DecodeException(here, "expected an array, got " + kind(node));
    }
    List<T> out = new ArrayList<>(node.size());
    for (int i = 0; i < node.size(); i++) {
      JsonNode item = node.get(i);
      String at = here + "[" + i + "]";
      if (item.isNull()) {
        throw new DecodeException(at, "null element");
      }
      out.add(decoder.decode(item, at));
    }
    return Collections.unmodifiableList(out);
  }

  /**
   * A map field: absent or null gives an empty map.
   *
   * @param <K> the key type
   * @param <V> the value type
   * @param obj the object
   * @param name the member name
   * @param path the object's path
   * @param keys decodes a key
   * @param decoder decodes one value
   * @return the map
   */
  public static <K, V> Map<K, V> decMap(
      ObjectNode obj, String name, String path, KeyDecoder<K> keys, Decoder<V> decoder) {
    JsonNode node = obj.get(name);
    if (node == null || node.isNull()) {
      return Map.of();
    }
    String here = path + "." + name;
    if (!node.isObject()) {
      throw new DecodeException(here, "expected an object, got " + kind(node));
    }
    Map<K, V> out = new LinkedHashMap<>();
    for (Map.Entry<String, JsonNode> entry : node.properties()) {
      String at = here + "[" + quote(entry.getKey()) + "]";
      if (entry.getValue().isNull()) {
        throw new DecodeException(at, "null value");
      }
      out.put(keys.decode(entry.getKey(), at), decoder.decode(entry.getValue(), at));
    }
    return Collections.unmodifiableMap(out);
  }

  /**
   * An int32.
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static Integer decInt32(JsonNode node, String path) {
    return integer(node, path, BigInteger.valueOf(Integer.MIN_VALUE), BigInteger.valueOf(Integer.MAX_VALUE))
        .intValue();
  }

  /**
   * A uint32.
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static Long decUint32(JsonNode node, String path) {
    return integer(node, path, BigInteger.ZERO, BigInteger.valueOf(0xFFFFFFFFL)).longValue();
  }

  /**
   * An int64 (string or number).
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static Long decInt64(JsonNode node, String path) {
    return integer(node, path, BigInteger.valueOf(Long.MIN_VALUE), BigInteger.valueOf(Long.MAX_VALUE))
        .longValue();
  }

  /**
   * A uint64 (string or number), held in a long with unsigned meaning.
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static Long decUint64(JsonNode node, String path) {
    return integer(node, path, BigInteger.ZERO, UINT64_MAX).longValue();
  }

  /**
   * A double: a number, or {@code "NaN"}, {@code "Infinity"}, {@code "-Infinity"}.
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static Double decDouble(JsonNode node, String path) {
    if (node.isTextual()) {
      switch (node.textValue()) {
        case "NaN":
          return Double.NaN;
        case "Infinity":
          return Double.POSITIVE_INFINITY;
        case "-Infinity":
          return Double.NEGATIVE_INFINITY;
        default:
          break;
      }
    }
    if (!node.isNumber()) {
      throw new DecodeException(path, "expected a number, got " + kind(node));
    }
    return node.doubleValue();
  }

  /**
   * A float, as {@link #decDouble}.
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static Float decFloat(JsonNode node, String path) {
    return decDouble(node, path).floatValue();
  }

  /**
   * A bool.
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static Boolean decBool(JsonNode node, String path) {
    if (!node.isBoolean()) {
      throw new DecodeException(path, "expected a boolean, got " + kind(node));
    }
    return node.booleanValue();
  }

  /**
   * A string.
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static String decString(JsonNode node, String path) {
    if (!node.isTextual()) {
      throw new DecodeException(path, "expected a string, got " + kind(node));
    }
    return node.textValue();
  }

  /**
   * Bytes: standard base64 (URL-safe base64 is accepted too).
   *
   * @param node the value
   * @param path its path
   * @return the value
   */
  public static byte[] decBytes(JsonNode node, String path) {
    String text = decString(node, path);
    try {
      if (text.indexOf('-') >= 0 || text.indexOf('_') >= 0) {
        return Base64.getUrlDecoder().decode(text);
      }
      return Base64.getDecoder().decode(text);
    } catch (IllegalArgumentException e) {
      throw new DecodeException(path, "expected base64");
    }
  }

  /**
   * An RFC 3339 timestamp.
   *
   * @param node the value
   * @param path its path
   * @return the instant
   */
  public static Instant decTimestamp(JsonNode node, String path) {
    String text = decString(node, path);
    Instant quick = quickTimestamp(text);
    if (quick != null) {
      return quick;
    }
    try {
      return OffsetDateTime.parse(text, DateTimeFormatter.ISO_OFFSET_DATE_TIME)
          .withOffsetSameInstant(ZoneOffset.UTC)
          .toInstant();
    } catch (DateTimeParseException e) {
      throw new DecodeException(path, "expected an RFC 3339 timestamp, got " + quote(text));
    }
  }

  /**
   * A free-form JSON object.
   *
   * @param node the value
   * @param path its path
   * @return the members
   */
  public static Map<String, Object> decStruct(JsonNode node, String path) {
    if (!node.isObject()) {
      throw new DecodeException(path, "expected an object, got " + kind(node));
    }
    return Collections.unmodifiableMap(
        MAPPER.convertValue(node, new TypeReference<LinkedHashMap<String, Object>>() {}));
  }

  /**
   * A string map key.
   *
   * @param key the key
   * @param path its path
   * @return the key
   */
  public static String keyString(String key, String path) {
    return key;
  }

  /**
   * An int32 map key.
   *
   * @param key the key
   * @param path its path
   * @return the key
   */
  public static Integer keyInt32(String key, String path) {
    return decInt32(NODES.textNode(key), path);
  }

  /**
   * A uint32 map key.
   *
   * @param key the key
   * @param path its path
   * @return the key
   */
  public static Long keyUint32(String key, String path) {
    return decUint32(NODES.textNode(key), path);
  }

  /**
   * An int64 map key.
   *
   * @param key the key
   * @param path its path
   * @return the key
   */
  public static Long keyInt64(String key, String path) {
    return decInt64(NODES.textNode(key), path);
  }

  /**
   * A uint64 map key.
   *
   * @param key the key
   * @param path its path
   * @return the key
   */
  public static Long keyUint64(String key, String path) {
    return decUint64(NODES.textNode(key), path);
  }

  /**
   * A bool map key.
   *
   * @param key the key
   * @param path its path
   * @return the key
   */
  public static Boolean keyBool(String key, String path) {
    if (key.equals("true") || key.equals("false")) {
      return Boolean.valueOf(key);
    }
    throw new DecodeException(path, "expected a boolean key");
  }

  /**
   * A JSON string literal of {@code text}, for messages.
   *
   * @param text the text
   * @return the quoted text
   */
  public static String quote(String text) {
    return NODES.textNode(text).toString();
  }

  private static BigInteger integer(JsonNode node, String path, BigInteger min, BigInteger max) {
    BigInteger value;
    if (node.isIntegralNumber()) {
      value = node.bigIntegerValue();
    } else if (node.isNumber() && node.doubleValue() == Math.rint(node.doubleValue())
        && !Double.isInfinite(node.doubleValue())) {
      value = node.decimalValue().toBigInteger();
    } else if (node.isTextual() && node.textValue().matches("-?[0-9]+")) {
      value = new BigInteger(node.textValue());
    } else {
      throw new DecodeException(path, "expected an integer, got " + kind(node));
    }
    if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
      throw new DecodeException(path, "integer out of range");
    }
    return value;
  }

  private static String kind(JsonNode node) {
    return node.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
  }
}
