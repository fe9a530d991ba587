package dev.secinfra.internal;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Locale;

/** {@code Retry-After} in both forms of RFC 9110 (spec 3.6). */
public final class RetryAfter {
  private static final DateTimeFormatter IMF =
      DateTimeFormatter.ofPattern("EEE, dd MMM yyyy HH:mm:ss 'GMT'", Locale.US).withZone(ZoneOffset.UTC);
  private static final DateTimeFormatter RFC850 =
      DateTimeFormatter.ofPattern("EEEE, dd-MMM-yy HH:mm:ss 'GMT'", Locale.US).withZone(ZoneOffset.UTC);
  private static final DateTimeFormatter ASCTIME =
      DateTimeFormatter.ofPattern("EEE MMM ppd HH:mm:ss yyyy", Locale.US).withZone(ZoneOffset.UTC);

  private RetryAfter() {}

  /**
   * The delay in seconds, or null when the value is absent or invalid.
   *
   * @param value the header value, or null
   * @param now the wall-clock time
   * @return seconds (0 for a past date), or null
   */
  public static Double parse(String value, Instant now) {
    if (value == null) {
      return null;
    }
    String text = value.strip();
    if (text.isEmpty()) {
      return null;
    }
    if (text.chars().allMatch(c -> c >= '0' && c <= '9')) {
      try {
        return (double) Long.parseLong(text);
      } catch (NumberFormatException e) {
        return Double.MAX_VALUE;
      }
    }
    Instant date = parseDate(text);
    if (date == null) {
      return null;
    }
    double seconds = (date.toEpochMilli() - now.toEpochMilli()) / 1000.0;
    return Math.max(0.0, seconds);
  }

  private static Instant parseDate(String text) {
    for (DateTimeFormatter format : new DateTimeFormatter[] {IMF, ASCTIME}) {
      try {
        return ZonedDateTime.parse(text, format).toInstant();
      } catch (DateTimeParseException e) {
        // next form
      }
    }
    try {
      ZonedDateTime parsed = ZonedDateTime.parse(text, RFC850);
      // Two-digit years: RFC 9110 reads a year more than 50 years ahead as the past century.
      if (parsed.getYear() > ZonedDateTime.now(ZoneOffset.UTC).getYear() + 50) {
        parsed = parsed.minusYears(100);
      }
      return parsed.toInstant();
    } catch (DateTimeParseException e) {
      return null;
    }
  }
}
