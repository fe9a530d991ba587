package dev.secinfra;

import dev.secinfra.gen.AuthzClient;
import dev.secinfra.gen.EntriesClient;
import dev.secinfra.gen.IdentityClient;
import dev.secinfra.gen.SecretsClient;
import dev.secinfra.identity.IdentitySnapshot;
import dev.secinfra.identity.IdentitySource;
import dev.secinfra.identity.Pem;
import dev.secinfra.identity.RotationEvent;
import dev.secinfra.identity.SpiffeId;
import dev.secinfra.identity.X509Bundle;
import dev.secinfra.observe.Observer;
import dev.secinfra.internal.cache.ResponseCache;
import dev.secinfra.internal.call.CallPipeline;
import dev.secinfra.internal.endpoints.EndpointSet;
import dev.secinfra.internal.identity.RotatingIdentitySource;
import dev.secinfra.internal.observe.Observers;
import dev.secinfra.internal.transport.HttpTransport;
import dev.secinfra.rpc.CallOptions;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Supplier;
import java.util.random.RandomGenerator;

/**
 * A secinfra client: an mTLS identity, and the {@link #secrets()}, {@link #authz()} and {@link
 * #identity()} services. One client owns one retry budget, one cache, one identity and its
 * connection pools; share it between threads. Close it to stop its rotation threads.
 *
 * <pre>{@code
 * try (SecinfraClient client =
 *     SecinfraClient.builder("https://secinfra.internal:8443")
 *         .bundlePem(Files.readString(Path.of("bundle.pem")))
 *         .joinToken(System.getenv("SECINFRA_JOIN_TOKEN"))
 *         .build()) {
 *   Secret secret =
 *       client.secrets().getSecret(GetSecretRequest.builder().name("payments/db/password").build());
 * }
 * }</pre>
 */
public final class SecinfraClient implements AutoCloseable {
  /** This SDK's version, as sent in {@code User-Agent}. */
  public static final String VERSION = "0.1.0";

  private final RotatingIdentitySource identitySource;
  private final CallPipeline pipeline;
  private final HttpTransport transport;
  private final EndpointSet endpoints;
  private final ExecutorService executor;
  private final SecretsClient secrets;
  private final AuthzClient authz;
  private final IdentityClient identity;
  private final EntriesClient entries;

  private SecinfraClient(Builder b) {
    this.endpoints =
        new EndpointSet(
            b.endpoints,
            b.endpointOrder,
            b.endpointCooldown,
            b.endpointCooldownMax,
            b.time::nanoTime,
            b.random);
    if (b.bundle == null) {
      throw new IllegalArgumentException("secinfra: config: a trust bundle is required (bundlePem or bundleFile)");
    }
    String serverId = b.serverId;
    if (serverId == null) {
      serverId =
          SpiffeId.serverId(
              b.bundle
                  .trustDomain()
                  .orElseThrow(
                      () ->
                          new IllegalArgumentException(
                              "secinfra: config: the bundle names no trust domain; set serverId")));
    }
    boolean rotating = b.staticIdentity == null;
    if (rotating && b.joinToken == null && b.jwtProvider == null) {
      throw new IllegalArgumentException(
          "secinfra: config: give a join token, a JWT provider or a static identity");
    }
    AtomicInteger threads = new AtomicInteger();
    this.executor =
        Executors.newCachedThreadPool(
            r -> {
              Thread t = new Thread(r, "secinfra-client-" + threads.incrementAndGet());
              t.setDaemon(true);
              return t;
            });
    this.identitySource =
        new RotatingIdentitySource(b.bundle, b.rotation, b.time, b.random, b.jwtProvider, rotating);
    ResponseCache cache = new ResponseCache(b.cacheMaxEntries);
    String userAgent =
        "secinfra-java/" + VERSION + " (Java/" + System.getProperty("java.version", "unknown") + ")"
            + (b.userAgentSuffix == null ? "" : " " + b.userAgentSuffix);
    this.pipeline =
        new CallPipeline(
            new CallPipeline.Settings(
                endpoints,
                b.retryPolicy,
                b.useCache,
                userAgent,
                b.time,
                b.random,
                b.observers.isEmpty() ? Observers.NONE : new Observers(b.observers)),
            b.budget,
            cache,
            executor);
    this.transport = new HttpTransport(identitySource, serverId);
    pipeline.attach(transport, identitySource);
    this.secrets = new SecretsClient(pipeline);
    this.authz = new AuthzClient(pipeline);
    this.identity = new IdentityClient(pipeline);
    this.entries = new EntriesClient(pipeline);
    identitySource.attach(identity, transport, cache::clear);
    b.listeners.forEach(identitySource::subscribe);
    dev.secinfra.identity.FileSink sink = null;
    if (b.fileSink != null) {
      sink = new dev.secinfra.identity.FileSink(b.fileSink, identitySource);
      identitySource.subscribe(sink);
    }
    try {
      if (b.staticIdentity != null) {
        identitySource.installStatic(b.staticIdentity);
        if (sink != null) {
          sink.write();
        }
      } else {
        identitySource.enrol(b.joinToken, CallOptions.DEFAULTS);
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /**
   * A builder for a client of the server at {@code serverUrl} ({@code https} only): one
   * endpoint, the same as {@code builder(List.of(serverUrl))}.
   *
   * @param serverUrl the server URL
   * @return a new builder
   * @throws IllegalArgumentException when the URL is not {@code https://host[:port]}
   */
  public static Builder builder(String serverUrl) {
    return new Builder(List.of(Objects.requireNonNull(serverUrl, "serverUrl")));
  }

  /**
   * A builder for a client of several replicas of one server (spec 12): every call's attempts go
   * to the first endpoint, in the client's endpoint order, that is not cooling down after a
   * connection failure or a 502/503/504, and a move to another endpoint is an ordinary retry,
   * within the retry policy and budget. The home endpoint is chosen at random unless {@link
   * Builder#endpointOrder(EndpointOrder)} says {@link EndpointOrder#LISTED}.
   *
   * <pre>{@code
   * SecinfraClient client =
   *     SecinfraClient.builder(List.of("https://secinfra-a:8443", "https://secinfra-b:8443"))
   *         .bundleFile(Path.of("bundle.pem"))
   *         .joinToken(token)
   *         .build();
   * }</pre>
   *
   * @param endpoints every replica's URL ({@code https} only; at least one, none twice)
   * @return a new builder
   * @throws IllegalArgumentException when the list is empty, a URL is invalid or listed twice
   */
  public static Builder builder(List<String> endpoints) {
    return new Builder(endpoints);
  }

  /**
   * Enrols with a one-time join token; the first bundle comes from the application.
   *
   * @param serverUrl the server URL
   * @param joinToken the join token (used once, not kept)
   * @param bundlePem the trust bundle (PEM or SPIFFE bundle JSON)
   * @return the enrolled client
   * @throws dev.secinfra.errors.SecinfraException when enrolment fails
   */
  public static SecinfraClient enrol(String serverUrl, String joinToken, String bundlePem) {
    return builder(serverUrl).bundlePem(bundlePem).joinToken(joinToken).build();
  }

  /**
   * A client with a static identity from files (never renewed), for example the admin identity.
   *
   * @param serverUrl the server URL
   * @param certFile the certificate chain (PEM, leaf first)
   * @param keyFile the private key (PEM, PKCS #8)
   * @param bundleFile the trust bundle
   * @return the client
   */
  public static SecinfraClient fromFiles(
      String serverUrl, Path certFile, Path keyFile, Path bundleFile) {
    return builder(serverUrl).bundleFile(bundleFile).identityFiles(certFile, keyFile).build();
  }

  /**
   * The secrets service.
   *
   * @return its client
   */
  public SecretsClient secrets() {
    return secrets;
  }

  /**
   * The authorization service.
   *
   * @return its client
   */
  public AuthzClient authz() {
    return authz;
  }

  /**
   * The identity service (enrolment, bundle, CA administration).
   *
   * @return its client
   */
  public IdentityClient identity() {
    return identity;
  }

  /**
   * The entry service (registration entries for node agents).
   *
   * @return its client
   */
  public EntriesClient entries() {
    return entries;
  }

  /**
   * The identity source the transport asks on every handshake: current snapshot and bundle.
   *
   * @return the source
   */
  public IdentitySource source() {
    return identitySource;
  }

  /**
   * Subscribes to rotation events ({@code enrolled}, {@code renewed}, {@code renewal_failed},
   * {@code expired}, {@code bundle_updated}). Subscribers run on the thread that made the change,
   * in order, never under a lock a call needs; one that throws does not stop the others.
   *
   * @param listener the subscriber
   */
  public void onRotation(Consumer<RotationEvent> listener) {
    identitySource.subscribe(Objects.requireNonNull(listener, "listener"));
  }

  /**
   * Unsubscribes a rotation listener.
   *
   * @param listener the subscriber
   */
  public void removeRotationListener(Consumer<RotationEvent> listener) {
    identitySource.unsubscribe(listener);
  }

  /**
   * The client's retry budget (tokens left, for metrics and tests).
   *
   * @return the budget
   */
  public RetryBudget retryBudget() {
    return pipeline.budget();
  }

  /**
   * Every endpoint's state now, in the client's endpoint order (home first), for metrics and
   * tests (spec 12.8.4).
   *
   * @return the endpoints and whether each is cooling down
   */
  public List<EndpointState> endpoints() {
    return endpoints.states();
  }

  /**
   * Stops rotation, drops the cache and the connection pools; later calls fail. Idempotent.
   */
  @Override
  public void close() {
    pipeline.close();
    identitySource.close();
    pipeline.cache().clear();
    if (transport != null) {
      transport.close();
    }
    executor.shutdown();
  }

  @Override
  public String toString() {
    return "SecinfraClient{" + identitySource + "}";
  }

  /** Builds a {@link SecinfraClient}; {@link #build()} enrols. */
  public static final class Builder {
    private final List<String> endpoints;
    private EndpointOrder endpointOrder = EndpointOrder.RANDOM;
    private Duration endpointCooldown = EndpointSet.DEFAULT_COOLDOWN;
    private Duration endpointCooldownMax = EndpointSet.DEFAULT_COOLDOWN_MAX;
    private X509Bundle bundle;
    private String serverId;
    private String joinToken;
    private Supplier<String> jwtProvider;
    private IdentitySnapshot staticIdentity;
    private RetryPolicy retryPolicy = RetryPolicy.DEFAULTS;
    private RotationPolicy rotation = RotationPolicy.DEFAULTS;
    private RetryBudget budget;
    private boolean useCache = true;
    private int cacheMaxEntries = ResponseCache.DEFAULT_MAX_ENTRIES;
    private TimeSource time = TimeSource.SYSTEM;
    private RandomGenerator random = RandomGenerator.getDefault();
    private String userAgentSuffix;
    private Path fileSink;
    private final java.util.List<Consumer<RotationEvent>> listeners = new java.util.ArrayList<>();
    private final java.util.List<Observer> observers = new java.util.ArrayList<>();

    private Builder(List<String> endpoints) {
      this.endpoints = EndpointSet.validate(endpoints);
    }

    /**
     * How the home endpoint is chosen (spec 12.2; default {@link EndpointOrder#RANDOM}). Has no
     * effect with one endpoint.
     *
     * @param value random or listed
     * @return this builder
     */
    public Builder endpointOrder(EndpointOrder value) {
      this.endpointOrder = Objects.requireNonNull(value, "endpointOrder");
      return this;
    }

    /**
     * How long an endpoint is avoided after its first endpoint failure in a row (spec 12.4.2;
     * default 1 s); each further failure in a row doubles it, up to {@link
     * #endpointCooldownMax(Duration)}.
     *
     * @param value above zero
     * @return this builder
     * @throws IllegalArgumentException when not above zero
     */
    public Builder endpointCooldown(Duration value) {
      EndpointSet.requirePositive("endpointCooldown", value);
      this.endpointCooldown = value;
      return this;
    }

    /**
     * The longest cooldown of an endpoint (spec 12.4.2; default 30 s), at least {@link
     * #endpointCooldown(Duration)} (checked by {@link #build()}).
     *
     * @param value above zero
     * @return this builder
     * @throws IllegalArgumentException when not above zero
     */
    public Builder endpointCooldownMax(Duration value) {
      EndpointSet.requirePositive("endpointCooldownMax", value);
      this.endpointCooldownMax = value;
      return this;
    }

    /**
     * Sets the first trust bundle: PEM CA certificates, or a SPIFFE bundle document.
     *
     * @param text the bundle
     * @return this builder
     */
    public Builder bundlePem(String text) {
      this.bundle = X509Bundle.parse(Objects.requireNonNull(text, "bundle"));
      return this;
    }

    /**
     * Reads the first trust bundle from a file (PEM or SPIFFE bundle JSON).
     *
     * @param file the file
     * @return this builder
     */
    public Builder bundleFile(Path file) {
      return bundlePem(read(file));
    }

    /**
     * Sets the SPIFFE ID the server must present (default {@code
     * spiffe://<trust domain of the bundle>/secinfra/server}).
     *
     * @param value the server ID
     * @return this builder
     */
    public Builder serverId(String value) {
      if (value == null || !value.startsWith("spiffe://")) {
        throw new IllegalArgumentException("secinfra: config: serverId must be a spiffe:// ID");
      }
      this.serverId = value;
      return this;
    }

    /**
     * Enrols with a one-time join token (used for one enrolment call, not kept after it).
     *
     * @param token the join token
     * @return this builder
     */
    public Builder joinToken(String token) {
      if (token == null || token.isEmpty()) {
        throw new IllegalArgumentException("secinfra: config: the join token is empty");
      }
      this.joinToken = token;
      return this;
    }

    /**
     * Enrols (and re-enrols after expiry) with a JWT from {@code provider}, asked at each
     * enrolment.
     *
     * @param provider the JWT provider
     * @return this builder
     */
    public Builder jwtProvider(Supplier<String> provider) {
      this.jwtProvider = Objects.requireNonNull(provider, "provider");
      return this;
    }

    /**
     * Uses a static identity from files (read once; never renewed).
     *
     * @param certFile the certificate chain (PEM, leaf first)
     * @param keyFile the private key (PEM, PKCS #8)
     * @return this builder
     */
    public Builder identityFiles(Path certFile, Path keyFile) {
      try {
        this.staticIdentity =
            new IdentitySnapshot(
                Pem.parseCertificates(read(certFile)),
                Pem.parsePrivateKey(read(keyFile)),
                time.now());
      } catch (GeneralSecurityException e) {
        throw new IllegalArgumentException("secinfra: identity: the identity files do not load", e);
      }
      return this;
    }

    /**
     * Subscribes to rotation events from the start, so the first {@code enrolled} event is seen
     * too (see {@link SecinfraClient#onRotation}).
     *
     * @param listener the subscriber
     * @return this builder
     */
    public Builder onRotation(Consumer<RotationEvent> listener) {
      listeners.add(Objects.requireNonNull(listener, "listener"));
      return this;
    }

    /**
     * Registers an observer of the client's calls, cache lookups and attempts (spec 14), its own
     * calls included (enrolment, renewal, bundle refresh); call it again for more observers, which
     * are notified in the order registered. An observer that throws never fails a call. Without
     * an observer the client sends no trace context (14.3.3).
     *
     * <pre>{@code
     * SecinfraClient client = SecinfraClient.builder(url)
     *     .bundleFile(bundle)
     *     .joinToken(token)
     *     .observer(new SecinfraTelemetry(openTelemetry).observer())
     *     .observer(auditTrail)
     *     .build();
     * }</pre>
     *
     * @param observer the observer
     * @return this builder
     */
    public Builder observer(Observer observer) {
      observers.add(Objects.requireNonNull(observer, "observer"));
      return this;
    }

    /**
     * Keeps the identity and bundle in files under {@code directory} ({@code cert.pem}, {@code
     * key.pem} with mode 0600, {@code bundle.pem}), rewritten atomically after every change. Off
     * by default: without it the SDK never writes key material to disk.
     *
     * @param directory where to write
     * @return this builder
     */
    public Builder fileSink(Path directory) {
      this.fileSink = Objects.requireNonNull(directory, "directory");
      return this;
    }

    /**
     * Sets the retry and time-limit defaults.
     *
     * @param value the policy
     * @return this builder
     */
    public Builder retryPolicy(RetryPolicy value) {
      this.retryPolicy = Objects.requireNonNull(value, "retryPolicy");
      return this;
    }

    /**
     * Sets the rotation settings.
     *
     * @param value the policy
     * @return this builder
     */
    public Builder rotationPolicy(RotationPolicy value) {
      this.rotation = Objects.requireNonNull(value, "rotationPolicy");
      return this;
    }

    /**
     * Sets the retry budget's sizes (a new, full budget).
     *
     * @param capacity tokens held at most
     * @param retryCost cost of a retry
     * @param timeoutRetryCost cost of a retry after a timeout
     * @param successRefund refund per successful call
     * @return this builder
     */
    public Builder retryBudget(int capacity, int retryCost, int timeoutRetryCost, int successRefund) {
      this.budget = new RetryBudget(capacity, retryCost, timeoutRetryCost, successRefund);
      return this;
    }

    /**
     * Sets whether cacheable calls use the cache by default.
     *
     * @param value false to bypass the cache
     * @return this builder
     */
    public Builder useCache(boolean value) {
      this.useCache = value;
      return this;
    }

    /**
     * Sets the cache size.
     *
     * @param value entries held at most (at least 1)
     * @return this builder
     */
    public Builder cacheMaxEntries(int value) {
      if (value < 1) {
        throw new IllegalArgumentException("secinfra: config: cacheMaxEntries must be at least 1");
      }
      this.cacheMaxEntries = value;
      return this;
    }

    /**
     * Replaces the clocks (tests).
     *
     * @param value the clocks
     * @return this builder
     */
    public Builder timeSource(TimeSource value) {
      this.time = Objects.requireNonNull(value, "timeSource");
      return this;
    }

    /**
     * Replaces the random source of jitter (tests pin it with a seeded generator).
     *
     * @param value the generator
     * @return this builder
     */
    public Builder random(RandomGenerator value) {
      this.random = Objects.requireNonNull(value, "random");
      return this;
    }

    /**
     * Appends product tokens to {@code User-Agent}, after the SDK's own.
     *
     * @param value the tokens, for example {@code billing/2.3}
     * @return this builder
     */
    public Builder userAgentSuffix(String value) {
      this.userAgentSuffix = value;
      return this;
    }

    /**
     * Creates the client and enrols (or loads its static identity).
     *
     * @return the client
     * @throws dev.secinfra.errors.SecinfraException when enrolment fails
     * @throws IllegalArgumentException when the configuration is invalid
     */
    public SecinfraClient build() {
      if (budget == null) {
        budget = new RetryBudget();
      }
      try {
        return new SecinfraClient(this);
      } finally {
        joinToken = null; // single use: never kept after the enrolment call (spec 8.7.2)
      }
    }

    private static String read(Path file) {
      try {
        return Files.readString(file, StandardCharsets.UTF_8);
      } catch (IOException e) {
        throw new UncheckedIOException("secinfra: config: cannot read " + file, e);
      }
    }
  }
}
