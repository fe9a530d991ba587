package dev.secinfra.internal.endpoints;

import dev.secinfra.EndpointOrder;
import dev.secinfra.EndpointState;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.function.LongSupplier;
import java.util.random.RandomGenerator;

/**
 * The endpoints of one client and their cooldowns (spec 12). It holds the endpoint order (the list
 * rotated to start at the home endpoint, 12.2) and, per endpoint, its endpoint failures in a row
 * and when its cooldown ends (12.4). An attempt goes to the first endpoint of the order that is not
 * cooling down or, when all are, to the one whose last failure is the oldest (12.3). Which outcomes
 * are endpoint failures is {@link #isEndpointFailure(int)}. No request is ever sent to probe an
 * endpoint (12.4.5). Thread-safe: one instance per client, shared by every call and by the
 * identity source's background work (12.4.4).
 */
public final class EndpointSet {
  /** Cooldown after an endpoint's first endpoint failure in a row (12.4.2). */
  public static final Duration DEFAULT_COOLDOWN = Duration.ofSeconds(1);

  /** The longest cooldown (12.4.2). */
  public static final Duration DEFAULT_COOLDOWN_MAX = Duration.ofSeconds(30);

  /** One endpoint and its state; guarded by the enclosing instance. */
  public static final class Endpoint {
    private final String url;
    private final String base;
    private int failures;
    private long until;
    private long failedAt;
    private boolean everFailed;

    private Endpoint(String url) {
      this.url = url;
      this.base = url;
    }

    /**
     * The URL as configured, a trailing {@code /} removed.
     *
     * @return the URL
     */
    public String url() {
      return url;
    }

    /**
     * The URL of a request to this endpoint.
     *
     * @param target the request's path and query ({@code /v1/secrets/a?version=2})
     * @return the absolute URL
     */
    public URI resolve(String target) {
      return URI.create(base + target);
    }

    @Override
    public String toString() {
      return url;
    }
  }

  private final List<Endpoint> order;
  private final long cooldownNanos;
  private final long cooldownMaxNanos;
  private final LongSupplier clock;

  /**
   * The endpoints of a client.
   *
   * @param urls the endpoint URLs, in the application's order (at least one)
   * @param endpointOrder how the home endpoint is chosen
   * @param cooldown the cooldown after the first endpoint failure in a row
   * @param cooldownMax the longest cooldown
   * @param clock the monotonic clock, in nanoseconds
   * @param random the client's random source (the home endpoint, {@link EndpointOrder#RANDOM})
   * @throws IllegalArgumentException naming the setting, when a URL or a value is invalid
   */
  public EndpointSet(
      List<String> urls,
      EndpointOrder endpointOrder,
      Duration cooldown,
      Duration cooldownMax,
      LongSupplier clock,
      RandomGenerator random) {
    List<String> cleaned = validate(urls);
    validateCooldowns(cooldown, cooldownMax);
    int home = 0;
    if (endpointOrder == EndpointOrder.RANDOM && cleaned.size() > 1) {
      home = random.nextInt(cleaned.size());
    }
    List<Endpoint> rotated = new ArrayList<>(cleaned.size());
    for (int i = 0; i < cleaned.size(); i++) {
      rotated.add(new Endpoint(cleaned.get((home + i) % cleaned.size())));
    }
    this.order = List.copyOf(rotated);
    this.cooldownNanos = cooldown.toNanos();
    this.cooldownMaxNanos = cooldownMax.toNanos();
    this.clock = clock;
  }

  /**
   * Checks endpoint URLs as a client is created (12.1.2, 12.8.3): at least one; each {@code
   * https://host[:port][/prefix]} without user-info, query or fragment; none twice once a trailing
   * {@code /} is removed.
   *
   * @param urls the URLs
   * @return the URLs without trailing {@code /}, in the same order
   * @throws IllegalArgumentException naming the setting and what to fix
   */
  public static List<String> validate(List<String> urls) {
    if (urls == null || urls.isEmpty()) {
      throw new IllegalArgumentException(
          "secinfra: config: endpoints: give at least one server URL");
    }
    List<String> cleaned = new ArrayList<>(urls.size());
    Set<String> seen = new HashSet<>();
    for (String url : urls) {
      String one = validate(url);
      if (!seen.add(one)) {
        throw new IllegalArgumentException(
            "secinfra: config: endpoints: " + one + " is listed twice");
      }
      cleaned.add(one);
    }
    return cleaned;
  }

  /**
   * Checks one server URL (2.1.1, 12.8.3).
   *
   * @param url the URL
   * @return the URL without trailing {@code /}
   * @throws IllegalArgumentException naming the setting and what to fix
   */
  public static String validate(String url) {
    if (url == null) {
      throw new IllegalArgumentException("secinfra: config: endpoints: a server URL is null");
    }
    URI uri;
    try {
      uri = URI.create(url);
    } catch (IllegalArgumentException e) {
      // The input may hold user-info: the message never repeats it.
      throw new IllegalArgumentException(
          "secinfra: config: endpoints: a server URL does not parse (want https://host[:port])");
    }
    if (uri.getRawUserInfo() != null) {
      throw new IllegalArgumentException(
          "secinfra: config: endpoints: a server URL must not carry user-info (user:password@);"
              + " the client authenticates with its certificate");
    }
    if (uri.getScheme() == null
        || !uri.getScheme().toLowerCase(Locale.ROOT).equals("https")
        || uri.getHost() == null) {
      throw new IllegalArgumentException(
          "secinfra: config: the server URL must be https://host[:port], got " + url);
    }
    if (uri.getRawQuery() != null || uri.getRawFragment() != null) {
      throw new IllegalArgumentException(
          "secinfra: config: endpoints: a server URL takes no query or fragment, got " + url);
    }
    String text = url;
    while (text.endsWith("/")) {
      text = text.substring(0, text.length() - 1);
    }
    return text;
  }

  /**
   * Checks the cooldown settings (12.4.6).
   *
   * @param cooldown the first cooldown
   * @param cooldownMax the longest cooldown
   * @throws IllegalArgumentException naming the setting
   */
  public static void validateCooldowns(Duration cooldown, Duration cooldownMax) {
    requirePositive("endpointCooldown", cooldown);
    requirePositive("endpointCooldownMax", cooldownMax);
    if (cooldownMax.compareTo(cooldown) < 0) {
      throw new IllegalArgumentException(
          "secinfra: config: endpointCooldownMax ("
              + cooldownMax
              + ") must be at least endpointCooldown ("
              + cooldown
              + ")");
    }
  }

  /**
   * Checks that a cooldown setting is above zero (12.4.6).
   *
   * @param name the setting's name, for the message
   * @param value the value
   * @throws IllegalArgumentException naming the setting
   */
  public static void requirePositive(String name, Duration value) {
    if (value == null || value.isNegative() || value.isZero()) {
      throw new IllegalArgumentException(
          "secinfra: config: " + name + " must be above zero, got " + value);
    }
  }

  /**
   * Whether an attempt answered with {@code status} is an endpoint failure (12.4.1): 502, 503 and
   * 504. An attempt that got no answer (other than a verification failure) is one too; 429, 500
   * and every other status are not.
   *
   * @param status the HTTP status
   * @return true for 502, 503 and 504
   */
  public static boolean isEndpointFailure(int status) {
    return status == 502 || status == 503 || status == 504;
  }

  /**
   * The endpoint order: the home endpoint first (12.2.1).
   *
   * @return the endpoints, in order
   */
  public List<Endpoint> order() {
    return order;
  }

  /**
   * The endpoint of the next attempt (12.3.1, 12.3.2): the first not cooling down, else the one
   * whose last endpoint failure is the oldest (the earlier in the order on ties).
   *
   * @return the endpoint
   */
  public synchronized Endpoint choose() {
    long now = clock.getAsLong();
    Endpoint oldest = null;
    for (Endpoint endpoint : order) {
      if (!endpoint.everFailed || endpoint.until - now <= 0) {
        return endpoint;
      }
      if (oldest == null || endpoint.failedAt - oldest.failedAt < 0) {
        oldest = endpoint;
      }
    }
    return oldest;
  }

  /**
   * Records an attempt's outcome at {@code endpoint} (12.4.2, 12.4.3): an endpoint failure starts
   * or lengthens its cooldown; any other outcome ends it and resets the count.
   *
   * @param endpoint the endpoint the attempt went to
   * @param failed whether the outcome was an endpoint failure
   */
  public synchronized void record(Endpoint endpoint, boolean failed) {
    if (!failed) {
      endpoint.failures = 0;
      endpoint.everFailed = false;
      return;
    }
    long now = clock.getAsLong();
    endpoint.failures++;
    int doublings = Math.min(endpoint.failures - 1, 30);
    long wait = cooldownNanos;
    for (int i = 0; i < doublings && wait < cooldownMaxNanos; i++) {
      wait = wait > Long.MAX_VALUE / 2 ? Long.MAX_VALUE : wait * 2;
    }
    endpoint.failedAt = now;
    endpoint.until = now + Math.min(wait, cooldownMaxNanos);
    endpoint.everFailed = true;
  }

  /**
   * Every endpoint's state now, in endpoint order (12.8.4).
   *
   * @return the states
   */
  public synchronized List<EndpointState> states() {
    long now = clock.getAsLong();
    List<EndpointState> states = new ArrayList<>(order.size());
    for (Endpoint e : order) {
      Optional<Duration> cooling =
          e.everFailed && e.until - now > 0
              ? Optional.of(Duration.ofNanos(e.until - now))
              : Optional.empty();
      states.add(new EndpointState(e.url, e.failures, cooling));
    }
    return List.copyOf(states);
  }
}
