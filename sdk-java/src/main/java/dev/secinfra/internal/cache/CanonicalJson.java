package dev.secinfra.internal.cache;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;

/**
 * Canonical JSON (spec 7.3.2): members sorted by name (by code point), no whitespace, strings
 * with only the escapes JSON requires ({@code \"}, {@code \\}, and the control characters below
 * U+0020, as {@code \b \t \n \f \r} or {@code \}{@code u00XX}), non-ASCII characters as
 * themselves; the cache key's form. Written by hand because it is computed on every cacheable
 * call, cache hits included: the text is the one Jackson writes for the same values.
 *
 * <p>A {@link Writer} also hashes what it writes from the values' own hash codes (a request's
 * strings usually have theirs cached already), so that a cache lookup need not hash the whole
 * text again. The hash is a function of the text: equal texts have equal hashes.
 */
public final class CanonicalJson {
  private static final char[] HEX = "0123456789ABCDEF".toCharArray();
  private static final String[] NO_NAMES = new String[0];
  private static final JsonNode[] NO_VALUES = new JsonNode[0];
  private static final int OBJECT = 0x0b1ec7;
  private static final int ARRAY = 0xa77a1;
  private static final int END = 0xe4d;
  private static final int NULL = 0x4011;

  private CanonicalJson() {}

  /**
   * The canonical text of {@code value}.
   *
   * @param value the JSON value
   * @return the canonical text
   */
  public static String write(JsonNode value) {
    Writer writer = new Writer(128);
    writer.value(value);
    return writer.text();
  }

  /** Writes canonical JSON into a buffer and hashes it as it goes. Not thread-safe. */
  public static final class Writer {
    private final StringBuilder out;
    private int hash;

    /**
     * An empty writer.
     *
     * @param capacity the buffer's first capacity
     */
    public Writer(int capacity) {
      out = new StringBuilder(capacity);
    }

    /**
     * Appends literal text that is the same for every key of its kind (not hashed).
     *
     * @param text the text
     * @return this writer
     */
    public Writer raw(String text) {
      out.append(text);
      return this;
    }

    /**
     * Appends {@code text} as a JSON string.
     *
     * @param text the string
     * @return this writer
     */
    public Writer string(String text) {
      hash = 31 * hash + text.hashCode();
      appendString(out, text);
      return this;
    }

    /**
     * Appends {@code first + separator + second} as a JSON string, without joining them first:
     * text and hash are those of {@link #string} on the joined string.
     *
     * @param first the first part
     * @param separator the character between the parts
     * @param second the second part
     * @return this writer
     */
    public Writer joined(String first, char separator, String second) {
      int h = 31 * first.hashCode() + separator;
      for (int i = 0; i < second.length(); i++) {
        h *= 31;
      }
      hash = 31 * hash + h + second.hashCode();
      out.append('"');
      appendEscaped(out, first);
      if (separator < 0x20 || separator == '"' || separator == '\\') {
        appendEscaped(out, String.valueOf(separator));
      } else {
        out.append(separator);
      }
      appendEscaped(out, second);
      out.append('"');
      return this;
    }

    /**
     * Appends the canonical text of {@code value}.
     *
     * @param value the JSON value
     * @return this writer
     */
    public Writer value(JsonNode value) {
      if (value.isTextual()) {
        string(value.textValue());
      } else if (value.isObject()) {
        object(value);
      } else if (value.isArray()) {
        hash = 31 * hash + ARRAY;
        out.append('[');
        for (int i = 0; i < value.size(); i++) {
          if (i > 0) {
            out.append(',');
          }
          value(value.get(i));
        }
        out.append(']');
        hash = 31 * hash + END;
      } else if (value.isInt() || value.isLong()) {
        long number = value.longValue();
        hash = 31 * hash + Long.hashCode(number);
        out.append(number);
      } else if (value.isBoolean()) {
        hash = 31 * hash + Boolean.hashCode(value.booleanValue());
        out.append(value.booleanValue());
      } else if (value.isNull()) {
        hash = 31 * hash + NULL;
        out.append("null");
      } else {
        // Other numbers and node kinds never appear in requests; Jackson writes them.
        String text = value.toString();
        hash = 31 * hash + otherHash(text);
        out.append(text);
      }
      return this;
    }

    private void object(JsonNode value) {
      int size = value.size();
      String[] names = size == 0 ? NO_NAMES : new String[size];
      JsonNode[] values = size == 0 ? NO_VALUES : new JsonNode[size];
      int n = 0;
      for (Map.Entry<String, JsonNode> member : value.properties()) {
        String name = member.getKey();
        // Insertion sort: a request message has a handful of members.
        int i = n++;
        while (i > 0 && compareCodePoints(names[i - 1], name) > 0) {
          names[i] = names[i - 1];
          values[i] = values[i - 1];
          i--;
        }
        names[i] = name;
        values[i] = member.getValue();
      }
      hash = 31 * hash + OBJECT;
      out.append('{');
      for (int i = 0; i < n; i++) {
        if (i > 0) {
          out.append(',');
        }
        string(names[i]);
        out.append(':');
        value(values[i]);
      }
      out.append('}');
      hash = 31 * hash + END;
    }

    /**
     * The text written so far.
     *
     * @return the text
     */
    public String text() {
      return out.toString();
    }

    /**
     * The hash of what was written so far (literal text aside).
     *
     * @return the hash
     */
    public int hash() {
      return hash;
    }
  }

  /** A number's hash that agrees with the fast path's for the same integral text. */
  private static int otherHash(String text) {
    try {
      return Long.hashCode(Long.parseLong(text));
    } catch (NumberFormatException e) {
      return text.hashCode();
    }
  }

  /**
   * Appends {@code text} as a JSON string with only the escapes JSON requires.
   *
   * @param out where to write
   * @param text the string
   */
  static void appendString(StringBuilder out, String text) {
    out.append('"');
    appendEscaped(out, text);
    out.append('"');
  }

  /** Appends {@code text} with only the escapes JSON requires, without quotes. */
  private static void appendEscaped(StringBuilder out, String text) {
    int length = text.length();
    int i = 0;
    while (i < length) {
      char c = text.charAt(i);
      if (c < 0x20 || c == '"' || c == '\\') {
        break;
      }
      i++;
    }
    if (i == length) {
      out.append(text);
      return;
    }
    out.append(text, 0, i);
    int start = i;
    for (; i < length; i++) {
      char c = text.charAt(i);
      if (c >= 0x20 && c != '"' && c != '\\') {
        continue;
      }
      out.append(text, start, i);
      start = i + 1;
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\b' -> out.append("\\b");
        case '\t' -> out.append("\\t");
        case '\n' -> out.append("\\n");
        case '\f' -> out.append("\\f");
        case '\r' -> out.append("\\r");
        default -> out.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xF]);
      }
    }
    out.append(text, start, length);
  }

  /** Orders by Unicode code point, which differs from UTF-16 order only past surrogates. */
  static int compareCodePoints(String a, String b) {
    int length = Math.min(a.length(), b.length());
    for (int i = 0; i < length; i++) {
      char x = a.charAt(i);
      char y = b.charAt(i);
      if (x != y) {
        if (Character.isSurrogate(x) || Character.isSurrogate(y)) {
          return Integer.compare(a.codePointAt(i), b.codePointAt(i));
        }
        return x - y;
      }
    }
    return a.length() - b.length();
  }
}
