package dev.secinfra.internal.cache;

import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A parsed {@code Cache-Control} header (spec 7.4): directive names case-insensitive, values quoted
 * or not, unknown directives ignored, the first occurrence wins.
 *
 * @param maxAgeSeconds the freshness lifetime (0 without max-age or with no-cache)
 * @param staleIfErrorSeconds the error window (0 when missing or invalid)
 * @param noStore the response must not be stored
 */
public record CacheControl(long maxAgeSeconds, long staleIfErrorSeconds, boolean noStore) {
  /** The largest delta-seconds value (RFC 9111 1.2.2). */
  public static final long MAX_DELTA_SECONDS = 2147483648L;

  /**
   * Parses a header value (null for none).
   *
   * @param header the value
   * @return the directives
   */
  public static CacheControl parse(String header) {
    Map<String, String> directives = new HashMap<>();
    if (header != null) {
      for (String part : splitOutsideQuotes(header)) {
        String item = part.strip();
        if (item.isEmpty()) {
          continue;
        }
        int eq = item.indexOf('=');
        String name = (eq < 0 ? item : item.substring(0, eq)).strip().toLowerCase(Locale.ROOT);
        String value = eq < 0 ? null : item.substring(eq + 1).strip();
        if (value != null && value.length() >= 2 && value.startsWith("\"") && value.endsWith("\"")) {
          value = value.substring(1, value.length() - 1);
        }
        directives.putIfAbsent(name, value);
      }
    }
    boolean noCache = directives.containsKey("no-cache");
    long maxAge = noCache ? 0 : delta(directives.get("max-age"));
    return new CacheControl(
        maxAge, delta(directives.get("stale-if-error")), directives.containsKey("no-store"));
  }

  /**
   * Delta-seconds: digits only, capped at {@link #MAX_DELTA_SECONDS}; anything else is 0.
   *
   * @param value the text, or null
   * @return the seconds
   */
  public static long delta(String value) {
    if (value == null || value.isEmpty() || !value.chars().allMatch(c -> c >= '0' && c <= '9')) {
      return 0;
    }
    if (value.length() > 10) {
      return MAX_DELTA_SECONDS;
    }
    return Math.min(MAX_DELTA_SECONDS, Long.parseLong(value));
  }

  private static java.util.List<String> splitOutsideQuotes(String header) {
    java.util.List<String> parts = new java.util.ArrayList<>();
    StringBuilder current = new StringBuilder();
    boolean quoted = false;
    for (char c : header.toCharArray()) {
      if (c == '"') {
        quoted = !quoted;
      }
      if (c == ',' && !quoted) {
        parts.add(current.toString());
        current.setLength(0);
      } else {
        current.append(c);
      }
    }
    parts.add(current.toString());
    return parts;
  }
}
