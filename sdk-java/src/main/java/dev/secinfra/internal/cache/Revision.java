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
    if (token == null || token.isEmpty()) {
      return false;
    }
    for (int i = 0; i < token.length(); i++) {
      char c = token.charAt(i);
      if (c < '0' || c > '9') {
        return false;
      }
    }
    return true;
  }

  /**
   * Compares two tokens that parse.
   *
   * @param a a token
   * @param b a token
   * @return negative, zero or positive as {@code a} is lower, equal or higher
   */
  public static int compare(String a, String b) {
    int i = leadingZeros(a);
    int j = leadingZeros(b);
    int x = a.length() - i;
    int y = b.length() - j;
    if (x != y) {
      return Integer.compare(x, y);
    }
    for (int k = 0; k < x; k++) {
      char c = a.charAt(i + k);
      char d = b.charAt(j + k);
      if (c != d) {
        return c - d;
      }
    }
    return 0;
  }

  /** The leading zeros of {@code token}, all but its last digit at most. */
  private static int leadingZeros(String token) {
    int i = 0;
    while (i < token.length() - 1 && token.charAt(i) == '0') {
      i++;
    }
    return i;
  }
}
