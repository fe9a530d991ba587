package dev.secinfra.internal.cache;

/** Revision tokens (spec 7.10.1): ASCII digits, compared as non-negative decimal integers. */
public final class Revision {
  private Revision() {}

  /**
   * Whether {@code token} parses: non-empty, ASCII digits only.
   *
   * @param token the token, or null
   * @return true when it parses
   */
  public static boolean parses(String token) {
    return token != null && !token.isEmpty() && token.chars().allMatch(c -> c >= '0' && c <= '9');
  }

  /**
   * Compares two tokens that parse.
   *
   * @param a a token
   * @param b a token
   * @return negative, zero or positive as {@code a} is lower, equal or higher
   */
  public static int compare(String a, String b) {
    String x = strip(a);
    String y = strip(b);
    if (x.length() != y.length()) {
      return Integer.compare(x.length(), y.length());
    }
    return x.compareTo(y);
  }

  private static String strip(String token) {
    int i = 0;
    while (i < token.length() - 1 && token.charAt(i) == '0') {
      i++;
    }
    return token.substring(i);
  }
}
